"""Tests of GHM's halves against FL + L1 in the corrected crowns cells."""
import pytest

from mmdet_ghm.study.aggregate import update_study_blocks
from mmdet_ghm.study.decomposition import (cell_variant, decomposition_rows,
                                           render_decomposition_summary)

from .test_ablation import study_of


def adamw(fl, ghmc_l1, fl_ghmr, ghm):
    return {cell_variant('adamw', 'fl'): fl, cell_variant('adamw', 'ghmc-l1'): ghmc_l1,
            cell_variant('adamw', 'fl-ghmr'): fl_ghmr, cell_variant('adamw', 'ghm'): ghm}


def test_variant_names_are_the_corrected_cells():
    assert cell_variant('adamw', 'ghmc-l1') == 'lite0-corrected-crowns-ghmc-l1'
    assert cell_variant('sgd', 'fl-ghmr') == 'lite0-corrected-crowns-sgd-fl-ghmr'


def test_shares_are_read_on_the_seeds_all_four_have():
    # FL + L1 and the whole have seed 2 as well; with it FL's mean would be 0.08, not 0.10
    study = study_of(adamw(fl={0: 0.10, 1: 0.10, 2: 0.04}, ghmc_l1={0: 0.04, 1: 0.06},
                           fl_ghmr={0: 0.05, 1: 0.07}, ghm={0: 0.02, 1: 0.03, 2: 0.01}))
    rows = {r['recipe']: r for r in decomposition_rows(study)}
    row = rows['adamw']
    assert row['seeds'] == [0, 1] and row['baseline'] == pytest.approx(0.10)
    assert row['parts']['ghmc-l1']['share'] == pytest.approx(0.5)
    assert row['parts']['fl-ghmr']['share'] == pytest.approx(0.6)
    assert row['parts']['ghm']['share'] == pytest.approx(0.25)
    assert row['halves_order'] == 2  # GHM-C + L1 below FL + GHM-R on both seeds
    assert rows['sgd']['seeds'] == [] and rows['sgd']['baseline'] is None


def test_summary_names_the_costlier_half_and_marks_a_lead():
    study = study_of(adamw(fl={0: 0.10, 1: 0.10}, ghmc_l1={0: 0.04, 1: 0.09},
                           fl_ghmr={0: 0.05, 1: 0.07}, ghm={0: 0.02, 1: 0.03}))
    text = render_decomposition_summary(study, results='results')
    assert ('With AdamW (seeds 0, 1; [FL + L1](results/runs/lite0-corrected-crowns-fl/) '
            '0.100): GHM-C + L1 [0.065](results/runs/lite0-corrected-crowns-ghmc-l1/) (0.65), '
            'FL + GHM-R [0.060](results/runs/lite0-corrected-crowns-fl-ghmr/) (0.60), '
            'GHM-C + GHM-R [0.025](results/runs/lite0-corrected-crowns-ghm/) (0.25).') in text
    assert 'Each half alone keeps more of FL + L1\'s mAP than the two together' in text
    # FL + GHM-R keeps less on average, yet is lower on seed 1 only; the means 0.065 and
    # 0.060 differ by less than GHM-C + L1's std over its two seeds (0.035)
    assert ('FL + GHM-R ends lower on 1 of 2 seeds, by less than their seeds\' spread '
            '(means 0.065 and 0.060, std up to 0.035).') in text
    assert '(2 of 3 seeds: a lead, not a result.)' in text
    assert 'With SGD step: not yet trained' in text


def test_a_half_as_low_as_the_whole_is_said_so_and_three_seeds_are_a_result():
    study = study_of(adamw(fl={0: 0.1, 1: 0.1, 2: 0.1}, ghmc_l1={0: 0.02, 1: 0.03, 2: 0.025},
                           fl_ghmr={0: 0.09, 1: 0.08, 2: 0.1}, ghm={0: 0.03, 1: 0.03, 2: 0.03}))
    text = render_decomposition_summary(study)
    assert 'One half alone keeps no more of FL + L1\'s mAP than the two together' in text
    assert 'GHM-C + L1 ends lower on 3 of 3 seeds.' in text  # far apart: no spread clause
    assert 'a lead' not in text.split('With SGD step')[0]


def test_the_page_block_is_generated():
    study = study_of(adamw(fl={0: 0.1}, ghmc_l1={0: 0.05}, fl_ghmr={0: 0.06}, ghm={0: 0.02}))
    page = ('a\n<!-- study:decomposition-summary:begin -->\nold\n'
            '<!-- study:decomposition-summary:end -->\nb\n')
    out = update_study_blocks(page, study, results='results')
    assert 'old' not in out and 'With AdamW (seed 0;' in out
