import json
import os.path as osp

import pytest

from mmdet_ghm.study.aggregate import update_study_blocks
from mmdet_ghm.study.detection_errors import (fl_partner, ghm_fl_pairs, load_detection_errors,
                                              render_anchor_roles_table,
                                              render_detection_errors_table)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RESULTS = osp.join(REPO, 'docs', 'results')


@pytest.mark.parametrize('variant, partner', [
    ('lite0-ablation-crowns-ghm-anchors2', 'lite0-ablation-crowns-fl-anchors2'),
    ('lite0-ablation-crowns-ghm-assigner-0.4', 'lite0-ablation-crowns-fl-assigner-0.4'),
    ('lite0-corrected-crowns-ghm', 'lite0-corrected-crowns-fl'),
    ('lite0-corrected-crowns-ghmc-l1', 'lite0-corrected-crowns-fl'),
    ('lite0-corrected-crowns-fl-ghmr', 'lite0-corrected-crowns-fl'),
    ('lite0-corrected-crowns-sgd-ghm', 'lite0-corrected-crowns-sgd-fl'),
    ('lite0-corrected-crowns-ghm-cap', 'lite0-corrected-crowns-fl'),
    ('lite0-fair-anchors3-crowns-sgd-ghm-cap', 'lite0-fair-anchors3-crowns-sgd-fl'),
    ('lite0-ablation-crowns-ghm-momentum0', 'lite0-corrected-crowns-fl'),
    ('lite0-corrected-crowns-fl', None), ('lite0-ablation-crowns-fl-anchors2', None),
    ('lite0-corrected-crowns-ce', None), ('lite0-corrected-crowns-sgd-fl', None)])
def test_fl_partner(variant, partner):
    assert fl_partner(variant) == partner


def record(variant, seed, split, ap, recall=None, thrs=(0.1, 0.5), background=0.25):
    return dict(checkpoint=dict(variant=variant, seed=seed), split=split, iou_thrs=list(thrs),
                ap=list(ap), recall=list(recall or ap),
                ap_without_background=[min(1.0, 2 * a) for a in ap],
                top_boxes=dict(hit=0.5, duplicate=0.1, loose=0.4 - background, crowd=0.0,
                               background=background))


def test_pairs_need_the_same_set_up_seed_and_split():
    records = {
        'g0': record('lite0-ablation-crowns-ghm-p3-p7', 0, 'train', (0.4, 0.1), background=0.3),
        'f0': record('lite0-ablation-crowns-fl-p3-p7', 0, 'train', (0.8, 0.4), (0.9, 0.6),
                     background=0.02),
        'g1': record('lite0-ablation-crowns-ghm-p3-p7', 1, 'train', (0.4, 0.1)),  # no FL seed 1
        'f0v': record('lite0-ablation-crowns-fl-p3-p7', 0, 'val', (0.8, 0.4)),  # no GHM val
        'g-other': record('lite0-ablation-crowns-ghm-batch8', 0, 'train', (0.4, 0.1)),
    }
    assert [(g, f) for g, _, f, _ in ghm_fl_pairs(records)] == [
        ('g-other', None), ('g0', 'f0'), ('g1', None)]
    table = render_detection_errors_table(records, 'results')
    assert table.splitlines()[0] == (
        '| GHM-side model against FL (seed): GHM / FL | AP0.1 (÷) | AP0.5 (÷) | recall0.1 | '
        'recall0.5 | AP0.1 without background boxes | AP0.5 without background boxes | '
        'top boxes: hit | top boxes: duplicate | top boxes: loose | top boxes: background |')
    row = table.splitlines()[3]
    assert '[`lite0-ablation-crowns-ghm-p3-p7`](results/analysis/detection_errors/g0.json)' in row
    assert '[FL](results/analysis/detection_errors/f0.json) (0)' in row
    assert ('0.400 / 0.800 (0.50) | 0.100 / 0.400 (0.25) | 0.40 / 0.90 | 0.10 / 0.60 | '
            '0.800 / 1.000 | 0.200 / 0.800 | 50 % / 50 % | 10 % / 10 % | 10 % / 38 % | '
            '30 % / 2 % |') in row
    assert len(table.splitlines()) == 5
    lonely = table.splitlines()[4]  # no FL seed 1: GHM's values alone
    assert '(`lite0-ablation-crowns-fl-p3-p7` has no record) (1) | 0.400 / – | 0.100 / – |' \
        in lonely and '30 % / – |' not in lonely and '25 % / – |' in lonely
    assert 'No detection-errors records of the val split' in \
        render_detection_errors_table(records, 'results', 'val')


def test_records_with_other_thresholds_are_refused():
    records = {'g': record('lite0-corrected-crowns-ghm', 0, 'train', (0.4, 0.1)),
               'f': record('lite0-corrected-crowns-fl', 0, 'train', (0.8, 0.4), thrs=(0.3, 0.5))}
    with pytest.raises(ValueError, match='different IoU thresholds'):
        render_detection_errors_table(records)


def test_the_block_needs_its_records():
    page = '<!-- study:detection-errors:begin -->\n<!-- study:detection-errors:end -->'
    with pytest.raises(ValueError, match='load_detection_errors'):
        update_study_blocks(page, dict(variants={}))


def test_committed_val_records_reproduce_their_runs_ap50():
    """At IoU 0.5 on the val split the evaluation is the training's own CocoMetric:
    the record's AP must be its run's final AP50 (rounded to 3 decimals there)."""
    records = load_detection_errors(RESULTS)
    checked = 0
    for name, rec in records.items():
        with open(osp.join(REPO, rec['checkpoint']['record'])) as f:
            run = json.load(f)
        assert run['seed'] == rec['checkpoint']['seed'] and run['variant'] == \
            rec['checkpoint']['variant'], name
        if rec['split'] == 'val' and 0.5 in rec['iou_thrs']:
            ap50 = rec['ap'][rec['iou_thrs'].index(0.5)]
            assert abs(ap50 - run['final']['AP50']) <= 0.0005 + 1e-9, name
            checked += 1
    assert checked or not records


def roles(hit_pos, loose_neg, loose_ign=0, background_neg=0):
    zero = dict(positive=0, ignored=0, negative=0)
    return dict(hit=dict(zero, positive=hit_pos), duplicate=dict(zero),
                loose=dict(zero, ignored=loose_ign, negative=loose_neg), crowd=dict(zero),
                background=dict(zero, negative=background_neg))


def test_anchor_roles_table_gives_shares_of_the_top_boxes():
    records = {
        'g0': dict(record('lite0-ablation-crowns-ghm-p3-p7', 0, 'train', (0.4, 0.1)),
                   top_box_anchor_roles=roles(2, 6, loose_ign=2)),
        'f0': dict(record('lite0-ablation-crowns-fl-p3-p7', 0, 'train', (0.8, 0.4)),
                   top_box_anchor_roles=roles(8, 1, background_neg=1)),
        'g1': dict(record('lite0-ablation-crowns-ghm-p3-p7', 1, 'train', (0.4, 0.1))),  # older
    }
    table = render_anchor_roles_table(records, 'results').splitlines()
    assert table[0] == ('| GHM-side model against FL (seed): GHM / FL | top boxes from positive '
                        'anchors | top boxes from ignored anchors | top boxes from negative '
                        'anchors | loose top boxes from negative anchors |')
    assert len(table) == 3  # the record without roles is left out
    assert table[2].endswith('| 20 % / 80 % | 20 % / 0 % | 60 % / 20 % | 75 % / 100 % |')
    assert 'No detection-errors records of the val split' in \
        render_anchor_roles_table(records, 'results', 'val')
