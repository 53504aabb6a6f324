"""Generated Markdown blocks: found by kind and name, bodies replaced, the rest kept."""
from mmdet_ghm.utils.doc_blocks import block_pattern, regenerate_blocks


def test_blocks_of_one_kind_are_regenerated_and_counted():
    text = ('intro\n<!-- t:a:begin -->\nold\n<!-- t:a:end -->\nmiddle\n'
            '<!-- t:b.c,d:begin --><!-- t:b.c,d:end -->\n'
            '<!-- other:a:begin -->keep<!-- other:a:end -->\n')
    out, count = regenerate_blocks(text, block_pattern('t'), lambda name: f'[{name}]')
    assert count == 2
    assert out == ('intro\n<!-- t:a:begin -->\n[a]\n<!-- t:a:end -->\nmiddle\n'
                   '<!-- t:b.c,d:begin -->\n[b.c,d]\n<!-- t:b.c,d:end -->\n'
                   '<!-- other:a:begin -->keep<!-- other:a:end -->\n')
    assert regenerate_blocks(out, block_pattern('t'), lambda name: f'[{name}]') == (out, 2)


def test_names_outside_the_pattern_and_mismatched_ends_are_left_alone():
    text = '<!-- t:a.b:begin -->x<!-- t:a.b:end --><!-- t:c:begin -->y<!-- t:d:end -->'
    assert regenerate_blocks(text, block_pattern('t', r'[\w-]+'), str.upper) == (text, 0)
