"""Tests of the gradient-split summary: counts per region to shares, the table, the records."""
import json
import os.path as osp

import pytest

from mmdet_ghm.study.aggregate import aggregate
from mmdet_ghm.study.analysis_records import final_checkpoint
from mmdet_ghm.study.mechanism import (cls_grad_summary, load_gradient_splits, mean_cls_grad,
                                       render_cls_gradient_table, render_gradient_split_table,
                                       split_record, split_summary)

from .test_analysis_records import attempt

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def record(split='train'):
    """Four regions of g (edges 0, .25, .5, .75, 1): 2 positives at g >= 0.5, 1 below;
    negatives 90 in the easiest region, 6 at g in [0.25, 0.5), 1 above."""
    return dict(split=split, checkpoint=dict(variant='lite0-corrected-crowns-ghm', seed=1),
                classification=dict(
                    edges=[0.0, 0.25, 0.5, 0.75, 1.0], counts_positive=[0, 1, 1, 1],
                    counts_negative=[90, 6, 1, 0],
                    gradient_on_positives={k: dict(all=v) for k, v in
                                           (('ce', 0.1), ('fl', 0.5), ('ghmc', 0.8))}))


def test_summary_of_one_record():
    s = split_summary(record())
    assert s['positives'] == 3 and s['positive_fraction'] == pytest.approx(0.03)
    assert s['easiest_fraction'] == pytest.approx(0.90)
    # g >= 0.3 starts at the region whose lower edge is >= 0.3: [0.5, 0.75)
    assert s['negatives_overlapping'] == pytest.approx(1 / 97)
    assert s['positives_hard'] == pytest.approx(2 / 3)
    assert (s['on_positives_ce'], s['on_positives_fl'], s['on_positives_ghmc']) == (0.1, 0.5, 0.8)


def test_table_has_a_row_per_train_record_linking_it():
    table = render_gradient_split_table({'a-train': record(), 'a-val': record('val')}, 'results')
    lines = table.splitlines()
    assert len(lines) == 3
    assert lines[2] == ('| [`lite0-corrected-crowns-ghm` seed 1]'
                        '(results/analysis/gradient_split/a-train.json) | 3 (3.00 %) | 90 % '
                        '| 1.0 % | 67 % | 10 % | 50 % | 80 % |')
    assert render_gradient_split_table({'a-val': record('val')}) == \
        '_No gradient-split records yet._'


def test_committed_records_name_their_run():
    records = load_gradient_splits(osp.join(REPO, 'docs', 'results'))
    assert records
    for name, r in records.items():
        ck = r['checkpoint']
        assert name == f'{ck["variant"]}-seed{ck["seed"]}-{r["split"]}'
        assert osp.isfile(osp.join(REPO, ck['record']))


def test_split_record_names_files_relative_to_the_repository(tmp_path):
    path = attempt(tmp_path, '20261207_010000', 'v', 3, 48)
    spec, checkpoint = final_checkpoint(str(tmp_path), 'v', 3, 48)
    result = dict(classification={}, histogram={}, num_images=2, params={}, regression={})
    env = dict(date='2026-12-07T05:00:00+00:00', machine=dict(cpu='AMD EPYC', cores=2))
    out = split_record(result, spec, 'docs/results/runs/v/seed3.json', 48, 'val',
                       dict(commit='abc', dirty=False), env)
    assert out['cfg_options'] == {'data_root': 'data/'}  # the portable overrides
    assert out['checkpoint'] == dict(epoch=48, note=out['checkpoint']['note'],
                                     record='docs/results/runs/v/seed3.json', seed=3,
                                     variant='v')
    assert out['provenance'] == dict(code_commit='abc', code_dirty=False, date='2026-12-07',
                                     machine='AMD EPYC, 2 cores, CPU',
                                     tool='tools/analysis_tools/gradient_split_records.py')
    assert str(path) not in json.dumps(out) and '/machine/' not in json.dumps(out)


def run_with_shares(seed, shares, epochs=20, **late):
    """A record whose ``cls_grad_stats`` give ``pos_share = shares[epoch - 1]``."""
    stats = [dict(epoch=e, pos_share=shares[e - 1], pos_frac=0.01, neg_overlap=0.1,
                  pos_hard=late.get('pos_hard', 0.5)) for e in range(1, epochs + 1)]
    if 'neg_overlap_share' in late:  # recorded since the hook logs it
        for s in stats:
            s['neg_overlap_share'] = late['neg_overlap_share']
    return dict(variant='lite0-ablation-crowns-ghm-x', seed=seed, epochs=epochs,
                bbox_mAP=0.05, final={'AP50': 0.2}, val_curve=[], cls_grad_stats=stats)


def test_cls_grad_summary_reads_first_quarter_half_and_last_tenth():
    shares = [e / 100 for e in range(1, 21)]  # 0.01 .. 0.20
    s = cls_grad_summary(run_with_shares(0, shares))
    assert s['pos_share_first'] == pytest.approx(0.01)
    assert s['pos_share_quarter'] == pytest.approx(0.05)  # epoch 5 of 20
    assert s['pos_share_half'] == pytest.approx(0.10)  # epoch 10
    assert s['pos_share_late'] == pytest.approx((0.19 + 0.20) / 2)  # epochs 19, 20
    assert s['pos_frac_late'] == pytest.approx(0.01)
    assert cls_grad_summary(dict(epochs=20, cls_grad_stats=[])) is None


def test_cls_grad_averages_over_runs_and_the_table_links_them():
    runs = [run_with_shares(0, [0.2] * 20),
            run_with_shares(1, [0.4] * 20, pos_hard=0.7, neg_overlap_share=0.25),
            dict(run_with_shares(2, [0.9] * 20), cls_grad_stats=[])]  # an older record
    mean = mean_cls_grad(runs)
    assert mean['n'] == 2 and mean['pos_share_late'] == pytest.approx(0.3)
    assert mean['pos_hard_late'] == pytest.approx(0.6)
    study = aggregate([dict(r, variant_spec=dict(name='lite0-ablation-crowns-ghm-x', label='x',
                                                 config='c.py', group='lite0-ablation'))
                       for r in runs])
    table = render_cls_gradient_table(study, 'results')
    assert ('| [`lite0-ablation-crowns-ghm-x`](results/runs/lite0-ablation-crowns-ghm-x/) | 2 '
            '| 30 % | 30 % | 30 % | 30 % | 1.00 % | 10.0 % | 25 % | 60 % | 0.050 |') in table
    study['variants']['lite0-ablation-crowns-ghm-x']['cls_grad'] = None
    assert 'No run has recorded' in render_cls_gradient_table(study)
