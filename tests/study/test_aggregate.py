"""Tests of the study's aggregation: mean ± std, curves, tables, the pages' generated blocks."""
import json
import math
import os.path as osp

import pytest

from mmdet_ghm.study.aggregate import (GRID_PREFIXES, aggregate, mean_std,
                                       render_control_table, render_cost_table,
                                       render_grid_table, render_table, text_table,
                                       update_study_blocks)
from mmdet_ghm.study.coverage import load_coverage_records
from mmdet_ghm.study.detection_errors import load_detection_errors
from mmdet_ghm.study.mechanism import load_gradient_splits
from mmdet_ghm.study.records import load_records, record_path, write_json_atomic

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def make_record(variant, seed, curve, ap50=0.8, stats=None):
    """A minimal record: ``curve`` is ``[(epoch, mAP), ...]``, the last is final."""
    return dict(variant=variant, seed=seed, bbox_mAP=curve[-1][1],
                final=dict(bbox_mAP=curve[-1][1], AP50=ap50),
                val_curve=[dict(epoch=e, bbox_mAP=m) for e, m in curve],
                ghm_stats=stats or [], s_per_iter=0.2, epochs=30,
                code=dict(commit='abc', dirty=False), env=dict(date='2026-11-29'))


def test_mean_std_is_the_sample_std():
    stat = mean_std([0.5, 0.6, 0.7])
    assert stat['n'] == 3
    assert stat['mean'] == pytest.approx(0.6)
    assert stat['std'] == pytest.approx(0.1)  # ddof=1: sqrt(0.02 / 2)
    assert mean_std([0.4]) == dict(mean=0.4, std=None, n=1)
    assert mean_std([]) == dict(mean=None, std=None, n=0)
    assert mean_std([0.2, None, 0.4])['mean'] == pytest.approx(0.3)


def test_aggregate_gives_means_curves_and_runs():
    records = [make_record('fl', s, [(10, 0.1 * (s + 1)), (30, 0.5 + 0.1 * s)], ap50=0.7 + s / 10,
                           stats=[dict(epoch=1, **{'cls/regions': 10.0 + s}),
                                  dict(epoch=30, **{'cls/regions': 20.0 + s})])
               for s in (2, 0, 1)] + [make_record('ghm', 0, [(10, 0.2), (30, 0.4)])]
    study = aggregate(records)
    assert list(study['variants']) == ['fl', 'ghm']
    fl = study['variants']['fl']
    assert fl['n'] == 3 and fl['mean'] == pytest.approx(0.6) and fl['std'] == pytest.approx(0.1)
    assert fl['AP50']['mean'] == pytest.approx(0.8)
    assert [r['seed'] for r in fl['runs']] == [0, 1, 2]
    assert [r['bbox_mAP'] for r in fl['runs']] == pytest.approx([0.5, 0.6, 0.7])
    assert [p['epoch'] for p in fl['curve']] == [10, 30]
    assert fl['curve'][0]['mean'] == pytest.approx(0.2) and fl['curve'][0]['n'] == 3
    assert fl['ghm_stats']['first_epoch']['cls/regions'] == pytest.approx(11.0)
    assert fl['ghm_stats']['last_epoch']['cls/regions'] == pytest.approx(21.0)
    assert fl['label'] == 'FL + L1' and fl['group'] == 'main'
    ghm = study['variants']['ghm']
    assert ghm['n'] == 1 and ghm['std'] is None and ghm['mean'] == pytest.approx(0.4)
    json.dumps(study)  # JSON-ready


def test_tables_and_page_blocks():
    study = aggregate([make_record('fl', s, [(10, 0.3), (20, 0.4), (30, 0.5 + s / 10)])
                       for s in (0, 1)] + [make_record('fl-noise0', 0, [(30, 0.66)])])
    table = render_table(study, 'main')
    assert '| `fl`: FL + L1 | 2 | 0.550 ± 0.071 | 0.800 ± 0.000 | 0.300 ± 0.000 ' \
           '| 0.400 ± 0.000 | [runs](docs/results/runs/fl/) |' in table
    assert 'fl-noise0' not in table
    assert '0.660' in render_table(study, 'noise')
    assert render_table(study, '60e') == '_No runs recorded yet._'
    long_run = make_record('fl-60e', 0, [(10, 0.3), (30, 0.6), (60, 0.7)])
    long_run['epochs'] = 60
    table_60 = render_table(aggregate([long_run]), '60e')
    assert '| mAP at epoch 30 |' in table_60
    assert '| `fl-60e`: FL + L1, 60 epochs | 1 | 0.700 | 0.800 | 0.300 | – | 0.600 |' \
        in table_60
    text = ('intro\n<!-- study:main:begin -->\nold table\n<!-- study:main:end -->\nmiddle\n'
            '<!-- study:noise:begin -->\n\n<!-- study:noise:end -->\nend\n')
    updated = update_study_blocks(text, study)
    assert 'old table' not in updated
    assert updated.startswith('intro\n<!-- study:main:begin -->\n| variant |')
    assert '\nmiddle\n' in updated and updated.endswith('<!-- study:noise:end -->\nend\n')
    assert update_study_blocks(updated, study) == updated  # idempotent
    # links to the records are relative to the page
    assert '[runs](results/runs/fl/)' in update_study_blocks(text, study, 'results')
    assert '[runs](runs/fl/)' in render_table(study, 'main', '.')
    assert '0.550 ± 0.071' in text_table(study)


def test_records_round_trip(tmp_path):
    for seed in (1, 0):
        write_json_atomic(record_path(str(tmp_path), 'ce', seed),
                          make_record('ce', seed, [(30, 0.3 + seed)]))
    loaded = load_records(str(tmp_path))
    assert [(r['variant'], r['seed']) for r in loaded] == [('ce', 0), ('ce', 1)]
    assert loaded[0]['record'] == osp.join('ce', 'seed0.json')
    (tmp_path / 'ce' / 'seed2.json').write_text('{"variant": "ce"}')
    with pytest.raises(ValueError, match='seed2.json is not a study record'):
        load_records(str(tmp_path))


#: The pages with generated study blocks, and the block each must hold.
PAGES = {'README.md': '<!-- study:grid:begin -->', 'docs/study.md': '<!-- study:main:begin -->'}


def test_committed_study_matches_its_records_and_the_pages():
    """docs/results/study.json is the aggregate of the committed records, and the
    study tables of the README and docs/study.md are generated from it."""
    study_path = osp.join(REPO, 'docs', 'results', 'study.json')
    with open(study_path) as f:
        study = json.load(f)
    records = load_records(osp.join(REPO, 'docs', 'results', 'runs'))
    assert records, 'no committed records'
    assert json.loads(json.dumps(aggregate(records))) == study, \
        'study.json is stale: run python3 tools/study.py --aggregate'
    for page, marker in PAGES.items():
        with open(osp.join(REPO, page)) as f:
            text = f.read()
        assert marker in text, f'{page} has lost its generated block {marker}'
        results = osp.relpath(osp.join(REPO, 'docs', 'results'), osp.dirname(osp.join(REPO, page)))
        analysis = load_gradient_splits(osp.join(REPO, 'docs', 'results'))
        coverage = load_coverage_records(osp.join(REPO, 'docs', 'results'))
        errors = load_detection_errors(osp.join(REPO, 'docs', 'results'))
        assert update_study_blocks(text, study, results, analysis, coverage, errors) == text, \
            f'{page} study tables are stale: run python3 tools/study.py --aggregate'
    for name, variant in study['variants'].items():
        assert variant['n'] == len(variant['runs'])
        assert all(not math.isnan(r['bbox_mAP']) for r in variant['runs'])


def test_stats_table_shows_first_and_last_epoch_means():
    def stats(regions, share, beta):
        return [dict(epoch=1, **{'cls/regions': regions[0], 'cls/w_hard_half': share[0],
                                 'cls/beta_max': beta[0]}),
                dict(epoch=30, **{'cls/regions': regions[1], 'cls/w_hard_half': share[1],
                                  'cls/beta_max': beta[1]})]
    study = aggregate([
        make_record('ghm-cap', 0, [(30, 0.6)], stats=stats((12, 29), (0.2, 0.1), (100, 100))),
        make_record('ghm-cap', 1, [(30, 0.7)], stats=stats((14, 30), (0.1, 0.05), (90, 100))),
        make_record('fl', 0, [(30, 0.7)])])
    table = update_study_blocks('<!-- study:ghm-stats:begin -->\n<!-- study:ghm-stats:end -->', study)
    # the positives' weight share is recorded by newer runs only: a dash for these
    assert '| `ghm-cap` | 13.0 → 29.5 | 0.150 → 0.075 | 95 → 100 | – |' in table
    assert '`fl`' not in table  # no GHM loss, no statistics
    newer = stats((12, 29), (0.2, 0.1), (100, 100))
    newer[0]['cls/w_pos'], newer[1]['cls/w_pos'] = 0.8, 0.6
    table = update_study_blocks('<!-- study:ghm-stats:begin -->\n<!-- study:ghm-stats:end -->',
                                aggregate([make_record('ghm', 0, [(30, 0.5)], stats=newer)]))
    assert '| `ghm` | 12.0 → 29.0 | 0.200 → 0.100 | 100 → 100 | 0.800 → 0.600 |' in table


def test_grid_tables_per_regime_bold_the_best_and_drop_empty_rows():
    records = [make_record('crowns-fl', s, [(60, 0.06 + s / 100)], ap50=0.3) for s in (0, 1)]
    records += [make_record('lite0-pretrained-crowns-fl', 0, [(48, 0.084)], ap50=0.40),
                make_record('lite0-pretrained-crowns-ghm', 0, [(48, 0.026)], ap50=0.45),
                make_record('lite0-pretrained-sgd-ce', 0, [(24, 0.8)], ap50=0.9)]
    study = aggregate(records)
    tiny = render_grid_table(study)
    assert '| FL | – | – | [**0.065 ± 0.007 (n=2)**](docs/results/runs/crowns-fl/) | – |' \
        in tiny
    assert 'GHM' not in tiny and 'lite0' not in tiny  # no rows without runs, no other regime
    pretrained = render_grid_table(study, prefix=GRID_PREFIXES['grid-pretrained'],
                                   results='results')
    assert ('| FL | – | – | [**0.084 (n=1)**](results/runs/lite0-pretrained-crowns-fl/) '
            '| – |') in pretrained
    assert ('| GHM, published | – | – '
            '| [0.026 (n=1)](results/runs/lite0-pretrained-crowns-ghm/)') in pretrained
    assert '| CE | – | [**0.800 (n=1)**](results/runs/lite0-pretrained-sgd-ce/) |' in pretrained
    assert '[**0.450 (n=1)**]' in render_grid_table(study, 'AP50', prefix='lite0-pretrained-')
    # the page blocks pick the regime and metric from the block's name
    page = update_study_blocks('<!-- study:grid-pretrained-ap50:begin -->\n'
                               '<!-- study:grid-pretrained-ap50:end -->', study)
    assert '[0.400 (n=1)](docs/results/runs/lite0-pretrained-crowns-fl/)' in page
    assert render_grid_table(aggregate([records[0]]), prefix='lite0-pretrained-') \
        == '_No runs recorded yet._'


def test_corrected_grid_shows_ghms_halves_on_the_crowns_only():
    study = aggregate([make_record('lite0-corrected-crowns-sgd-ghmc-l1', 0, [(48, 0.05)]),
                       make_record('lite0-corrected-crowns-fl', 0, [(48, 0.07)]),
                       make_record('lite0-pretrained-crowns-ghm', 0, [(48, 0.02)])])
    page = update_study_blocks('<!-- study:grid-corrected:begin -->\n'
                               '<!-- study:grid-corrected:end -->', study, 'results')
    assert '| loss | tree crowns, AdamW | tree crowns, SGD step |' in page
    halves = '[**0.050 (n=1)**](results/runs/lite0-corrected-crowns-sgd-ghmc-l1/)'
    assert f'| GHM-C + L1 | – | {halves} |' in page
    assert '| FL + L1 | [**0.070 (n=1)**](results/runs/lite0-corrected-crowns-fl/) | – |' in page
    assert 'GHM-C + GHM-R' not in page  # the pretrained cell's run is not a corrected one


def test_control_and_cost_tables():
    def run(name, seed, m_ap, rss, wall):
        record = make_record(name, seed, [(48, m_ap)])
        record.update(peak_rss_mib=rss, train_wall_s=wall, s_per_iter=2.0 + seed / 10)
        return record
    study = aggregate([run('lite0-pretrained-crowns-fl', 0, 0.08, 1900.0, 1080.0),
                       run('lite0-pretrained-crowns-fl', 1, 0.09, 2100.0, 1140.0),
                       run('lite0-scratch-crowns-sgd-ghm', 0, 0.01, 2048.0, 2400.0),
                       run('crowns-fl', 0, 0.07, 500.0, 300.0)])
    control = render_control_table(study)
    assert control.splitlines()[0] == ('| loss | AdamW, pretrained | AdamW, from scratch '
                                       '| SGD step, pretrained | SGD step, from scratch |')
    assert '| FL | [0.085 ± 0.007 (n=2)](docs/results/runs/lite0-pretrained-crowns-fl/) ' \
           '| – | – | – |' in control
    assert '| GHM, published | – | – | – ' \
           '| [0.010 (n=1)](docs/results/runs/lite0-scratch-crowns-sgd-ghm/) |' in control
    cost = render_cost_table(study)
    assert '| `lite0-pretrained-crowns-fl` | 2 | 30 | 2.05 | 18 | 2.1 |' in cost
    assert '| `lite0-scratch-crowns-sgd-ghm` | 1 | 30 | 2.00 | 40 | 2.0 |' in cost
    assert 'crowns-fl`' not in cost.replace('lite0-pretrained-crowns-fl`', '')


def test_signature_block_of_the_lite0_runs_leaves_the_tiny_runs_out():
    fl_config = 'configs/tree_crowns/retinanet_{}_fpn_fl_tree-crowns.py'
    ghm_config = 'configs/tree_crowns/retinanet_{}_fpn_ghm_tree-crowns.py'
    records = []
    for net, prefix, fl, ghm in (('tiny-r18', '', 0.068, 0.004),
                                 ('efficientnet-lite0', 'lite0-pretrained-', 0.084, 0.026)):
        for loss, config, m_ap, stats in (
                ('fl', fl_config, fl, None),
                ('ghm', ghm_config, ghm, [dict(epoch=e, **{'cls/w_hard_half': 0.2,
                                                           'cls/easy_frac': 0.4})
                                          for e in range(1, 11)])):
            record = make_record(f'{prefix}crowns-{loss}', 0, [(10, m_ap)], stats=stats)
            record.update(epochs=10, variant_spec=dict(
                name=record['variant'], label=loss, config=config.format(net), dataset='crowns'))
            records.append(record)
    study = aggregate(records)
    assert [r['variant'] for r in study['signature']] == ['crowns-ghm',
                                                          'lite0-pretrained-crowns-ghm']
    page = update_study_blocks('<!-- study:signature-lite0:begin -->\n'
                               '<!-- study:signature-lite0:end -->', study)
    assert '| yes | 1 | `lite0-pretrained-crowns-ghm` | 0.31 (0.31 – 0.31) | 1 of 1 |' in page
    assert '`crowns-ghm`' not in page and '| no | 0 |' in page


def test_signature_error_blocks_split_by_sampling_and_by_network():
    records = []
    for net, prefix in (('tiny-r18', ''), ('efficientnet-lite0', 'lite0-pretrained-')):
        for loss, seed, m_ap, share, sampling in (('fl', 0, 0.1, None, None),
                                                  ('ghm', 0, 0.02, 0.3, None),
                                                  ('ghm', 1, 0.03, 0.1, 'window'),
                                                  ('ghm', 2, 0.09, 0.3, 'window')):
            stats = None if share is None else [dict(epoch=e, **{'cls/w_hard_half': share})
                                                for e in range(1, 11)]
            record = make_record(f'{prefix}crowns-{loss}', seed, [(10, m_ap)], stats=stats)
            record.update(epochs=10, variant_spec=dict(
                name=record['variant'], label=loss, config=config_for(loss, net),
                dataset='crowns'))
            if sampling:
                record['ghm_stats_sampling'] = sampling
            records.append(record)
    study = aggregate(records)
    assert [(r['variant'], r['sampling']) for r in study['signature']][:3] == [
        ('crowns-ghm', 'last-batch'), ('crowns-ghm', 'window'), ('crowns-ghm', 'window')]
    page = update_study_blocks('<!-- study:signature-errors:begin -->\n'
                               '<!-- study:signature-errors:end -->\n'
                               '<!-- study:signature-errors-lite0:begin -->\n'
                               '<!-- study:signature-errors-lite0:end -->', study)
    every, lite0 = page.split('<!-- study:signature-errors-lite0:begin -->')
    # per network: window seed 1 missed (no sign, 0.3 of FL), seed 2 a false alarm (0.9)
    assert ('| every iteration of each logging window (`window`) | 4 | 2 | 2 of 2: '
            '`crowns-ghm`, `lite0-pretrained-crowns-ghm` | 2 | 2 of 2: `crowns-ghm`, '
            '`lite0-pretrained-crowns-ghm` |') in every
    assert '(older records, no `ghm_stats_sampling`) | 2 | 2 | 0 of 2 | 0 | 0 of 0 |' in every
    assert ('| every iteration of each logging window (`window`) | 2 | 1 | 1 of 1: '
            '`lite0-pretrained-crowns-ghm` | 1 | 1 of 1: `lite0-pretrained-crowns-ghm` |') in lite0
    assert '`crowns-ghm`' not in lite0
    with pytest.raises(ValueError, match="'signature-errors-tiny'"):
        update_study_blocks('<!-- study:signature-errors-tiny:begin -->\n'
                            '<!-- study:signature-errors-tiny:end -->', study)


def config_for(loss, net):
    return f'configs/tree_crowns/retinanet_{net}_fpn_{loss}_tree-crowns.py'
