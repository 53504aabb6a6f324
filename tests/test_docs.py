"""The documentation: every relative link resolves, no page cites the tracker, the README stays short.

Pages: ``README.md``, ``docs/**/*.md`` and ``configs/**/README.md``. A link is
``[text](target)`` or ``![alt](target)`` outside code; a relative target must
name an existing file or folder (relative to the page), and its ``#anchor``,
when the target is a Markdown page, one of that page's headings (GitHub's
anchors: lower case, punctuation dropped, spaces as hyphens, ``-1``, ``-2``
for repeats).
"""
import os
import os.path as osp
import re
from typing import Dict, List, Set, Tuple

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
README_MAX_LINES = 300

LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
FENCE = re.compile(r'^\s*(```|~~~)')
INLINE_CODE = re.compile(r'`[^`]*`')
HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
HTML_ANCHOR = re.compile(r'<a\s+(?:name|id)="([^"]+)"')
#: A reference to the issue tracker: "issue 13", "issues 12 and 13", "#13", "PR 5".
TRACKER = re.compile(r'\b(?:issues?|pull request|PR)\s+#?\d+|(?<![\w&/#])#\d+\b', re.I)


def pages(root: str = REPO) -> List[str]:
    """The documentation pages under ``root``, relative to it."""
    found = ['README.md'] if osp.isfile(osp.join(root, 'README.md')) else []
    for top, keep in (('docs', lambda name: name.endswith('.md')),
                      ('configs', lambda name: name == 'README.md')):
        for dirpath, dirnames, filenames in os.walk(osp.join(root, top)):
            dirnames.sort()
            found += [osp.relpath(osp.join(dirpath, name), root)
                      for name in sorted(filenames) if keep(name)]
    return found


def unfenced_lines(text: str) -> List[Tuple[int, str]]:
    """``(line number, line)`` of the lines outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(text.split('\n'), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            out.append((number, line))
    return out


def prose_lines(text: str) -> List[Tuple[int, str]]:
    """:func:`unfenced_lines` with inline code removed."""
    return [(number, INLINE_CODE.sub('', line)) for number, line in unfenced_lines(text)]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading's text (before de-duplication)."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # links: their text
    text = re.sub(r'<[^>]+>', '', text).strip().lower()
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(text: str) -> Set[str]:
    """Every anchor a page offers: its headings' and its explicit ``<a name=...>``."""
    seen: Dict[str, int] = {}
    found = set(HTML_ANCHOR.findall(text))
    for _, line in unfenced_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        base = github_anchor(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f'{base}-{count}')
    return found


def broken_links(root: str = REPO) -> List[str]:
    """``page:line: target (why)`` for every relative link that does not resolve."""
    broken = []
    cache: Dict[str, Set[str]] = {}
    for page in pages(root):
        with open(osp.join(root, page), encoding='utf-8') as f:
            text = f.read()
        for number, line in prose_lines(text):
            for target in LINK.findall(line):
                if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I):  # http:, mailto:, ...
                    continue
                path, _, anchor = target.partition('#')
                where = (osp.normpath(osp.join(osp.dirname(osp.join(root, page)), path))
                         if path else osp.join(root, page))
                if not osp.exists(where):
                    broken.append(f'{page}:{number}: {target} (no such file)')
                    continue
                if anchor and where.endswith('.md'):
                    if where not in cache:
                        with open(where, encoding='utf-8') as f:
                            cache[where] = anchors(f.read())
                    if anchor not in cache[where]:
                        broken.append(f'{page}:{number}: {target} (no such heading)')
    return broken


def test_every_relative_link_resolves():
    assert len(pages()) >= 5, pages()
    broken = broken_links()
    assert not broken, 'broken links:\n' + '\n'.join(broken)


def test_no_page_cites_the_tracker():
    found = []
    for page in pages():
        with open(osp.join(REPO, page), encoding='utf-8') as f:
            text = f.read()
        found += [f'{page}:{number}: {match.group(0)!r}' for number, line in prose_lines(text)
                  for match in TRACKER.finditer(line)]
    assert not found, ('name the change or the commit, not the tracker:\n' + '\n'.join(found))


def test_the_readme_is_a_front_page():
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    assert text.count('\n') <= README_MAX_LINES, 'README over 300 lines: move a section to docs/'
    linked = {osp.normpath(target.partition('#')[0]) for _, line in prose_lines(text)
              for target in LINK.findall(line) if target.startswith('docs/')}
    assert len({t for t in linked if t.endswith('.md')}) >= 3, linked
    for command in ('make main', 'make test'):
        assert command in text


@pytest.mark.parametrize('heading, anchor', [
    ('The study (`tools/study.py`)', 'the-study-toolsstudypy'),
    ("Replacing MMDetection's `GHMC` / `GHMR`", 'replacing-mmdetections-ghmc--ghmr'),
    ('GHM-C in FCOS, ATSS and GFL', 'ghm-c-in-fcos-atss-and-gfl'),
    ('What is verified, what is untested', 'what-is-verified-what-is-untested'),
])
def test_github_anchor(heading, anchor):
    assert github_anchor(heading) == anchor


def test_a_broken_link_or_heading_is_reported(tmp_path):
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'docs' / 'a.md').write_text('# A page\n\n## Two words\n')
    (tmp_path / 'README.md').write_text(
        '[ok](docs/a.md) [ok](docs/a.md#two-words) [web](https://example.com/x)\n'
        '[gone](docs/b.md) [bad anchor](docs/a.md#three) ![img](docs/c.png)\n'
        '```\n[in code](nowhere.md)\n```\n`[inline](nowhere.md)`\n')
    assert broken_links(str(tmp_path)) == [
        'README.md:2: docs/b.md (no such file)', 'README.md:2: docs/a.md#three (no such heading)',
        'README.md:2: docs/c.png (no such file)']


@pytest.mark.parametrize('line, cites', [
    ('The kernels of issue 13 (edges by division)', True),
    ('fixed in #42', True),
    ('see PR 7', True),
    ('the first kernel rewrite (`338e210`)', False),
    ('[a](docs/a.md#two-words) and C# code', False),
])
def test_tracker_references_are_recognised(line, cites):
    assert bool(TRACKER.search(line)) == cites
