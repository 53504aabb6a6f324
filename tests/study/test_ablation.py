"""Tests of the crowns factor ablation's table: shares on the same seeds, ranking, pages."""
import pytest

from mmdet_ghm.study.ablation import (ablation_name, ablation_rows, cell_name,
                                      render_ablation_summary, render_ablation_table)
from mmdet_ghm.study.aggregate import aggregate, update_study_blocks
from mmdet_ghm.study.variants import VARIANTS

from .test_aggregate import make_record


def study_of(maps):
    """A study from ``{variant: {seed: final mAP}}`` (variants not yet defined get a spec)."""
    records = []
    for name, by_seed in maps.items():
        for seed, value in by_seed.items():
            record = make_record(name, seed, [(48, value)])
            if name not in VARIANTS:
                record['variant_spec'] = dict(name=name, label=name, config='c.py')
            records.append(record)
    return aggregate(records)


CELL = {cell_name('fl'): {0: 0.10, 1: 0.10, 2: 0.05},
        cell_name('ghm'): {0: 0.03, 1: 0.03, 2: 0.03}}


def test_a_factor_is_read_against_the_cell_on_its_own_seeds():
    study = study_of(dict(CELL, **{ablation_name('fl', 'anchors3'): {0: 0.2, 1: 0.2},
                                   ablation_name('ghm', 'anchors3'): {0: 0.1, 1: 0.12}}))
    rows = {r['factor']: r for r in ablation_rows(study)}
    row = rows['anchors3']
    assert row['seeds'] == [0, 1] and row['cell_seeds'] == [0, 1]
    assert row['share'] == pytest.approx(0.11 / 0.2)
    # the cell on seeds 0 and 1 only (with seed 2 its share would be 0.09 / 0.25)
    assert row['cell_share'] == pytest.approx(0.3)
    assert row['change'] == pytest.approx(0.55 - 0.3)
    assert row['fl_factor'] == pytest.approx(2.0) and row['ghm_factor'] == pytest.approx(11 / 3)
    assert rows['no-clip']['change'] is None and rows['no-clip']['share'] is None


def test_a_ghm_side_factor_uses_the_cells_fl_runs():
    study = study_of(dict(CELL, **{ablation_name('ghm', 'momentum0'): {2: 0.02}}))
    row = {r['factor']: r for r in ablation_rows(study)}['momentum0']
    assert row['fl'] == cell_name('fl') and row['seeds'] == [2]
    assert row['share'] == pytest.approx(0.4) and row['cell_share'] == pytest.approx(0.6)
    assert row['change'] == pytest.approx(-0.2) and row['fl_factor'] is None


def test_table_and_summary_rank_factors_by_the_size_of_their_change():
    study = study_of(dict(CELL, **{
        ablation_name('fl', 'batch8'): {0: 0.1, 1: 0.1},
        ablation_name('ghm', 'batch8'): {0: 0.04, 1: 0.04},
        ablation_name('fl', 'no-clip'): {0: 0.1}, ablation_name('ghm', 'no-clip'): {0: 0.01}}))
    table = render_ablation_table(study, 'results')
    lines = table.splitlines()
    assert lines[2].startswith('| the corrected AdamW cell |') and '0.36 (0, 1, 2)' in lines[2]
    # no-clip: 0.1 against the cell's 0.3 on seed 0
    assert '| `no-clip`: no gradient clipping |' in lines[3] and '| -0.20 |' in lines[3]
    assert '| `batch8`: batch 8 |' in lines[4] and '| +0.10 |' in lines[4]
    assert '(results/runs/lite0-ablation-crowns-ghm-batch8/)' in lines[4]
    # not trained yet: listed, after the measured ones
    assert '`p3-p7`: five FPN levels, P3-P7 | – |' in table
    summary = render_ablation_summary(ablation_rows(study), top=1, results='results')
    assert ('`no-clip`, no gradient clipping: 0.30 → 0.10 (GHM ×0.33, FL ×1.00; seeds 0; '
            '[FL](results/runs/lite0-ablation-crowns-fl-no-clip/), '
            '[GHM](results/runs/lite0-ablation-crowns-ghm-no-clip/))') in summary
    assert 'The other 1 measured factor moved it by at most 0.10.' in summary
    assert 'Not yet measured: `anchors3`, `anchors2`, `assigner-0.4`, `p3-p7`' in summary


def test_page_blocks_regenerate_and_a_study_without_the_cell_says_so():
    study = study_of(CELL)
    page = ('<!-- study:ablation-factors:begin -->\nold\n<!-- study:ablation-factors:end -->\n'
            '<!-- study:ablation-summary:begin -->\nold\n<!-- study:ablation-summary:end -->\n')
    out = update_study_blocks(page, study, 'results')
    assert 'old' not in out and '| the corrected AdamW cell |' in out
    assert 'No factor measured yet' in out
    assert render_ablation_table(study_of({cell_name('fl'): {0: 0.1}})) == '_No runs recorded yet._'
    # a change that rounds to zero has no sign of its own
    study = study_of(dict(CELL, **{ablation_name('fl', 'batch8'): {0: 0.1},
                                   ablation_name('ghm', 'batch8'): {0: 0.0299}}))
    assert '| +0.00 |' in render_ablation_table(study)
