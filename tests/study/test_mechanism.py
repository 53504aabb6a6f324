"""Tests of the gradient-split summary: counts per region to shares, the table, the records."""
import os.path as osp

import pytest

from mmdet_ghm.study.mechanism import (load_gradient_splits, render_gradient_split_table,
                                       split_summary)

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
