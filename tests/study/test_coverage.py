"""The crowns set-ups' anchor coverage beside GHM's share: which set-ups get a record, the
table, and the committed records (one per set-up, matching today's overrides)."""
import json
import os.path as osp

import pytest

from mmdet_ghm.study.aggregate import aggregate
from mmdet_ghm.study.coverage import (changes_coverage, coverage_setups, coverage_summary,
                                      load_coverage_records, render_coverage_table)
from mmdet_ghm.study.variants import ABLATION_FACTORS, get_variant

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_only_set_ups_that_change_anchors_assigner_neck_or_boxes_get_a_record():
    assert changes_coverage({'model.bbox_head.anchor_generator.octave_base_scale': 3.0})
    assert changes_coverage({'train_dataloader.dataset.pipeline': []})
    assert not changes_coverage({'train_dataloader.batch_size': 8})
    assert not changes_coverage({'optim_wrapper.clip_grad': None})
    setups = coverage_setups()
    assert setups[0] == 'corrected'
    assert {'anchors3', 'anchors2', 'assigner-0.4', 'p3-p7', 'no-jitter',
            'crowds-as-background'} <= set(setups)
    assert not {'batch8', 'no-clip', '96e'} & set(setups)


def _record(variant, seed, m):
    return dict(variant=variant, seed=seed, epochs=48, bbox_mAP=m, final={'AP50': m},
                val_curve=[], variant_spec=dict(name=variant, label=variant, config='c.py',
                                                group='lite0-ablation'))


def _coverage(mean, median, uncovered, none=0.0):
    return dict(report=dict(overall=dict(num_boxes=100, uncovered_share=uncovered,
                                         no_positive_share=none,
                                         positives_per_box=dict(mean=mean, median=median))))


def test_table_sets_positives_per_crown_beside_the_change_of_the_share():
    p = 'lite0-ablation-crowns-'
    records = [_record('lite0-corrected-crowns-fl', 0, 0.08),
               _record('lite0-corrected-crowns-ghm', 0, 0.02),
               _record(f'{p}fl-anchors3', 0, 0.10), _record(f'{p}ghm-anchors3', 0, 0.06)]
    coverage = dict(corrected=_coverage(4.4, 4, 0.146), anchors3=_coverage(14.3, 17, 0.141),
                    anchors2=_coverage(7.4, 8.0, 0.095, 0.01))
    table = render_coverage_table(aggregate(records), coverage, 'results')
    lines = table.splitlines()
    assert lines[2] == ('| [the corrected cell](results/analysis/anchor_coverage/corrected.json) '
                        '| 4.4 (4) | 14.6 % | 0.0 % | 0.25 (0) | – |')
    assert lines[3] == ('| [`anchors3`](results/analysis/anchor_coverage/anchors3.json) '
                        '| 14.3 (17) | 14.1 % | 0.0 % | 0.60 (0) | +0.35 |')
    assert lines[4].endswith('| 7.4 (8) | 9.5 % | 1.0 % | not trained yet | – |')
    assert len(lines) == 5  # set-ups without a record have no row
    assert 'No anchor-coverage records' in render_coverage_table(aggregate(records), {})


def test_committed_records_cover_every_set_up_with_todays_overrides():
    records = load_coverage_records(osp.join(REPO, 'docs', 'results'))
    assert sorted(records) == sorted(coverage_setups())
    for setup, record in records.items():
        variant = get_variant(record['variant'])
        assert record['setup'] == setup and record['config'] == variant.config
        assert record['cfg_options'] == json.loads(json.dumps(variant.overrides)), setup
        if setup != 'corrected':
            for key, value in ABLATION_FACTORS[setup][1].items():
                assert record['cfg_options'][key] == json.loads(json.dumps(value))
        assert record['report']['data']['id'] == 'tree_crowns'
        assert not record['provenance']['code_dirty']
        assert '/work/' not in str(record) and '/root/' not in str(record)
        s = coverage_summary(record)
        assert 0 < s['positives_mean'] and 0 <= s['uncovered'] < 1
