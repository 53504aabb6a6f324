"""Tests of the fair crowns grid's rule: candidates, best against best, the shared set-up."""
import json
import os.path as osp

import pytest

from mmdet_ghm.study.ablation import ablation_name, cell_name
from mmdet_ghm.study.fair_grid import (CORRECTED, FAIR_LOSSES, best_setup, candidate_setups,
                                       combine, fair_name, factor_gain, qualifying_factors,
                                       render_fair_summary, render_fair_table,
                                       render_tuning_table, setup_name, shared_setup)
from mmdet_ghm.study.variants import ABLATION_FACTORS, FAIR_SETUPS, VARIANTS, fair_variants

from .test_ablation import study_of

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def ablation(gains, cell=(0.10, 0.12)):
    """Cell and ablation runs: ``{(loss, factor): (seed 0, seed 1)}`` for the factors
    given, every other factor equal to the cell (``cell``: its seeds 0, 1)."""
    maps = {}
    for loss in ('fl', 'ghm'):
        maps[cell_name(loss)] = dict(enumerate(cell))
        for factor in ABLATION_FACTORS:
            maps[ablation_name(loss, factor)] = dict(enumerate(gains.get((loss, factor), cell)))
    return maps


def test_a_factor_qualifies_by_more_than_the_spreads_added_up():
    # cell 0.11 ± 0.014; anchors3 for FL 0.21 ± 0.014 (gain 0.10 > 0.028): qualifies;
    # no-jitter for GHM 0.13 ± 0.014: gain 0.02 < 0.028: does not
    maps = ablation({('fl', 'anchors3'): (0.20, 0.22), ('ghm', 'no-jitter'): (0.12, 0.14),
                     ('ghm', 'anchors3'): (0.2, 0.2), ('ghm', 'batch8'): (0.2, 0.2)})
    study = study_of(maps)
    gain, spreads = factor_gain(study, 'fl', 'anchors3')
    assert gain == pytest.approx(0.10) and spreads == pytest.approx(2 * 0.02 / 2 ** 0.5)
    assert qualifying_factors(study, 'fl') == ['anchors3']
    assert qualifying_factors(study, 'ghm') == ['anchors3', 'batch8']
    assert candidate_setups(study) == {CORRECTED: (), 'anchors3': ('anchors3',),
                                       'anchors3+batch8': ('anchors3', 'batch8')}


def test_candidates_wait_for_every_factor_on_the_tuning_seeds():
    maps = ablation({})
    del maps[ablation_name('ghm', 'no-clip')][1]
    study = study_of(maps)
    assert qualifying_factors(study, 'ghm') is None and candidate_setups(study) is None
    assert 'not decided yet' in render_fair_table(study)
    # a third seed does not change the decision (only the tuning seeds count)
    maps = ablation({('fl', 'anchors3'): (0.20, 0.22)})
    maps[ablation_name('fl', 'anchors3')][2] = 0.0
    assert candidate_setups(study_of(maps)) == {CORRECTED: (), 'anchors3': ('anchors3',)}


def test_names_of_set_ups_and_their_variants():
    assert setup_name(['no-jitter', 'anchors3']) == 'anchors3+no-jitter'
    assert setup_name([]) == CORRECTED
    assert fair_name(CORRECTED, 'adamw', 'ghm') == cell_name('ghm')
    assert fair_name(CORRECTED, 'sgd', 'ce') == 'lite0-corrected-crowns-sgd-ce'
    assert fair_name('anchors3', 'sgd', 'ghm-cap') == 'lite0-fair-anchors3-crowns-sgd-ghm-cap'
    # the ablation trains FL and GHM on a one-factor set-up with AdamW already
    assert fair_name('anchors3', 'adamw', 'fl') == ablation_name('fl', 'anchors3')
    assert fair_name('anchors3', 'adamw', 'ce') == 'lite0-fair-anchors3-crowns-ce'
    assert fair_name('anchors3+batch8', 'adamw', 'ghm') == 'lite0-fair-anchors3+batch8-crowns-ghm'


def grid(tuning):
    """Runs of the fair grid, ``{(setup, recipe, loss): (seed 0, seed 1[, seed 2])}``, beside
    the ablation: FL's anchors3 qualifies, nothing else; FL's and GHM's corrected runs are
    the cell's (0.10, 0.12)."""
    maps = ablation({('fl', 'anchors3'): (0.20, 0.22)})
    for (setup, recipe, loss), values in tuning.items():
        maps[fair_name(setup, recipe, loss)] = dict(enumerate(values))
    return study_of(maps)


TUNING = {(CORRECTED, 'adamw', 'ce'): (0.05, 0.05), ('anchors3', 'adamw', 'ce'): (0.04, 0.04),
          ('anchors3', 'adamw', 'fl'): (0.20, 0.22), ('anchors3', 'adamw', 'ghm'): (0.06, 0.06),
          (CORRECTED, 'adamw', 'ghm-cap'): (0.09, 0.09),
          ('anchors3', 'adamw', 'ghm-cap'): (0.08, 0.08)}


def test_best_against_best_and_the_shared_set_up():
    setups = [CORRECTED, 'anchors3']
    study = grid(TUNING)
    assert candidate_setups(study) == {CORRECTED: (), 'anchors3': ('anchors3',)}
    assert best_setup(study, setups, 'adamw', 'ce') == CORRECTED
    assert best_setup(study, setups, 'adamw', 'fl') == 'anchors3'
    assert best_setup(study, setups, 'adamw', 'ghm') == CORRECTED
    assert best_setup(study, setups, 'adamw', 'ghm-cap') == CORRECTED
    # relative scores: corrected 1 + 0.11 / 0.21 + 1 + 1; anchors3 0.8 + 1 + 0.55 + 0.89
    assert shared_setup(study, setups, 'adamw') == CORRECTED
    assert best_setup(study, setups, 'sgd', 'fl') is None  # not trained
    # anchors3 best for three losses: corrected 0.83 + 0.52 + 0.55 + 1, anchors3 1 + 1 + 1 + 0.89
    study = grid({**TUNING, ('anchors3', 'adamw', 'ce'): (0.06, 0.06),
                  ('anchors3', 'adamw', 'ghm'): (0.2, 0.2)})
    assert shared_setup(study, setups, 'adamw') == 'anchors3'
    assert best_setup(study, setups, 'adamw', 'ghm-cap') == CORRECTED


def test_table_reports_three_seeds_at_the_chosen_set_ups():
    study = grid({**TUNING, ('anchors3', 'adamw', 'ce'): (0.06, 0.06),
                  ('anchors3', 'adamw', 'fl'): (0.20, 0.22, 0.24),
                  ('anchors3', 'adamw', 'ghm'): (0.20, 0.20, 0.14),
                  (CORRECTED, 'adamw', 'ghm-cap'): (0.09, 0.09, 0.09)})
    table = render_fair_table(study, 'results')
    rows = {line.split(' | ')[0].strip('| '): line for line in table.splitlines()}
    # FL at anchors3 over seeds 0-2: 0.22 ± 0.02; GHM 0.18 ± 0.035, 0.82 of FL's; both shared
    fl = '[0.220 ± 0.020](results/runs/lite0-ablation-crowns-fl-anchors3/) | 1.00'
    assert f'| FL | `anchors3` | {fl} | {fl} |' in rows['FL']
    ghm = '[0.180 ± 0.035](results/runs/lite0-ablation-crowns-ghm-anchors3/) | 0.82'
    assert f'| `anchors3` | {ghm} | {ghm} |' in rows['GHM, published']
    # GHM + cap's best is the corrected cell (3 seeds); at the shared anchors3 it lacks seed 2
    cap = '[0.090 ± 0.000](results/runs/lite0-corrected-crowns-ghm-cap/) | 0.41'
    assert f'| `corrected` | {cap} | seeds missing | – |' in rows['GHM, cap 100']
    assert '| `anchors3` | seeds missing | – | seeds missing | – |' in rows['CE']
    assert '| tuning runs missing |' in rows['FL']  # the SGD recipe: nothing trained
    assert 'Shared set-up: AdamW: `anchors3`, SGD step: `not decided`.' in table


def test_summary_gives_the_verdict_where_every_loss_has_its_final_seeds():
    tuning = {**TUNING, ('anchors3', 'adamw', 'ce'): (0.06, 0.06, 0.06),
              ('anchors3', 'adamw', 'fl'): (0.20, 0.22, 0.24),
              ('anchors3', 'adamw', 'ghm'): (0.20, 0.20, 0.14),
              (CORRECTED, 'adamw', 'ghm-cap'): (0.09, 0.09, 0.09),
              (CORRECTED, 'sgd', 'fl'): (0.1, 0.1)}
    adamw, sgd = render_fair_summary(grid(tuning), 'results').split('\n\n')
    # best against best: GHM 0.18 ± 0.035 against FL 0.22 ± 0.02 is level (-0.04 within
    # 0.055), GHM + cap's 0.09 ± 0 behind; the shared set-up (anchors3) lacks cap's seed 2
    assert adamw == (
        '**AdamW**, seeds 0-2: each loss at its own best set-up: '
        'CE [0.060 ± 0.000](results/runs/lite0-fair-anchors3-crowns-ce/) (`anchors3`), '
        'FL [0.220 ± 0.020](results/runs/lite0-ablation-crowns-fl-anchors3/) (`anchors3`), '
        'GHM, published [0.180 ± 0.035](results/runs/lite0-ablation-crowns-ghm-anchors3/) '
        '(`anchors3`; 0.82 of FL, level), '
        'GHM, cap 100 [0.090 ± 0.000](results/runs/lite0-corrected-crowns-ghm-cap/) '
        '(`corrected`; 0.41 of FL, behind); the rest not decided yet (every tuning run '
        'recorded; still to train: `python3 tools/study.py --variants '
        'lite0-fair-anchors3-crowns-ghm-cap --seeds 2`).')
    assert sgd.startswith('**SGD step**: not decided yet (2 of 16 tuning runs recorded;')
    tuning[('anchors3', 'adamw', 'ghm-cap')] = (0.08, 0.08, 0.08)
    adamw = render_fair_summary(grid(tuning), 'results').split('\n\n')[0]
    assert adamw.endswith(
        '; every loss at the shared set-up `anchors3`: '
        'CE [0.060 ± 0.000](results/runs/lite0-fair-anchors3-crowns-ce/), '
        'FL [0.220 ± 0.020](results/runs/lite0-ablation-crowns-fl-anchors3/), '
        'GHM, published [0.180 ± 0.035](results/runs/lite0-ablation-crowns-ghm-anchors3/) '
        '(0.82 of FL, level), '
        'GHM, cap 100 [0.080 ± 0.000](results/runs/lite0-fair-anchors3-crowns-ghm-cap/) '
        '(0.36 of FL, behind).')


def test_summary_names_the_seed_2_runs_once_the_tuning_runs_are_in():
    # AdamW's tuning runs complete, no seed 2: bests CE, GHM, cap on the corrected set-up,
    # FL on anchors3; the shared set-up is the corrected one, so FL is needed there too
    adamw = render_fair_summary(grid(TUNING), 'results').split('\n\n')[0]
    assert adamw == (
        '**AdamW**: not decided yet (every tuning run recorded; still to train: '
        '`python3 tools/study.py --variants lite0-ablation-crowns-fl-anchors3 '
        'lite0-corrected-crowns-ce lite0-corrected-crowns-fl lite0-corrected-crowns-ghm '
        'lite0-corrected-crowns-ghm-cap --seeds 2`).')
    tuning = {**TUNING, (CORRECTED, 'adamw', 'ce'): (0.05, 0.05, 0.05)}
    assert 'lite0-corrected-crowns-ce' not in render_fair_summary(grid(tuning))
    del tuning[(CORRECTED, 'adamw', 'ce')]
    assert 'not decided yet (14 of 16 tuning runs' in render_fair_summary(grid(tuning))


def test_tuning_table_shows_the_runs_as_they_land():
    tuning = dict(TUNING)
    tuning[(CORRECTED, 'sgd', 'fl')] = (0.07,)  # seed 1 still training
    tuning[('anchors3', 'sgd', 'ghm')] = (0.03, 0.05)  # FL has no run there yet
    del tuning[('anchors3', 'adamw', 'ghm-cap')]
    rows = {tuple(c.strip() for c in line.split(' | ')[:2]): line
            for line in render_tuning_table(grid(tuning), 'results').splitlines()[2:-2]}
    # CE's corrected 0.05 against the corrected FL cell's 0.11 on the same seeds; its best
    ce_corrected = '**[0.050 ± 0.000](results/runs/lite0-corrected-crowns-ce/) (÷ FL 0.45)**'
    assert rows['| AdamW', 'CE'].endswith(
        f'| {ce_corrected} | [0.040 ± 0.000](results/runs/lite0-fair-anchors3-crowns-ce/) '
        '(÷ FL 0.19) |')
    # FL's own row has no ratio; its best (anchors3: the ablation's runs) in bold
    assert rows['| AdamW', 'FL'].endswith(
        '| [0.110 ± 0.014](results/runs/lite0-corrected-crowns-fl/) | '
        '**[0.210 ± 0.014](results/runs/lite0-ablation-crowns-fl-anchors3/)** |')
    # GHM + cap lacks a candidate: no best yet
    assert rows['| AdamW', 'GHM, cap 100'].endswith(
        '| [0.090 ± 0.000](results/runs/lite0-corrected-crowns-ghm-cap/) (÷ FL 0.82) | '
        'not trained |')
    assert rows['| SGD step', 'FL'].endswith(
        '| [0.070](results/runs/lite0-corrected-crowns-sgd-fl/); seed 1 missing | not trained |')
    assert rows['| SGD step', 'GHM, published'].endswith(
        '| not trained | [0.040 ± 0.014](results/runs/lite0-fair-anchors3-crowns-sgd-ghm/) |')
    # before the candidates are decided the table says so
    maps = ablation({})
    del maps[ablation_name('fl', 'batch8')][0]
    assert 'not decided yet' in render_tuning_table(study_of(maps))


def test_the_fair_set_ups_are_what_the_rule_decides_from_the_committed_records():
    with open(osp.join(REPO, 'docs', 'results', 'study.json')) as f:
        study = json.load(f)
    decided = candidate_setups(study)
    if decided is None:
        assert FAIR_SETUPS == {}, 'fair set-ups defined before the ablation decides them'
    else:
        assert {CORRECTED: (), **FAIR_SETUPS} == decided
    for setup in FAIR_SETUPS:
        for recipe in ('adamw', 'sgd'):
            for loss, _ in FAIR_LOSSES:
                assert fair_name(setup, recipe, loss) in VARIANTS


def test_fair_variants_change_the_set_ups_factors_on_the_corrected_cells():
    variants = {v.name: v for v in fair_variants({'anchors3': ('anchors3',),
                                                  'anchors3+96e': ('anchors3', '96e')})}
    assert len(variants) == 6 + 8  # anchors3: AdamW FL and GHM are the ablation's runs
    assert 'lite0-fair-anchors3-crowns-fl' not in variants
    anchors = {'model.bbox_head.anchor_generator.octave_base_scale': 3.0}
    ce = variants['lite0-fair-anchors3-crowns-sgd-ce']
    cell = VARIANTS['lite0-corrected-crowns-sgd-ce']
    assert ce.overrides == dict(cell.overrides, **anchors) and ce.config == cell.config
    assert ce.epochs == cell.epochs == 48 and ce.group == 'lite0-fair-crowns-sgd'
    # 96 epochs: the SGD steps move with them (8/12 and 11/12 of training)
    long_sgd = variants['lite0-fair-anchors3+96e-crowns-sgd-ghm']
    assert long_sgd.epochs == 96
    assert long_sgd.overrides['param_scheduler'][1]['milestones'] == [64, 88]
    # with AdamW the set-up trains as the ablation defines its factors
    long_fl = variants['lite0-fair-anchors3+96e-crowns-fl']
    assert long_fl.overrides == VARIANTS[ablation_name('fl', 'anchors3')].overrides
    assert long_fl.epochs == VARIANTS[ablation_name('fl', '96e')].epochs == 96
    assert 'anchors twice as large' in long_fl.label and '96 epochs' in long_fl.label
    with pytest.raises(ValueError, match="'wider'"):
        fair_variants({'wider': ('wider',)})


def test_factors_that_change_the_same_setting_are_alternatives():
    # anchors2 and anchors3 both set octave_base_scale: the larger gain is taken
    study = study_of(ablation({('ghm', 'anchors2'): (0.30, 0.30), ('ghm', 'anchors3'): (0.20, 0.20),
                               ('ghm', 'no-jitter'): (0.25, 0.25)}))
    assert qualifying_factors(study, 'ghm') == ['anchors2', 'no-jitter', 'anchors3']
    assert combine(['anchors2', 'no-jitter', 'anchors3']) == ['anchors2', 'no-jitter']
    assert candidate_setups(study) == {CORRECTED: (), 'anchors2+no-jitter': ('anchors2',
                                                                           'no-jitter')}
    assert combine(['96e', 'anchors3', 'no-clip']) == ['96e', 'anchors3', 'no-clip']


def test_a_factor_that_changes_a_corrected_setting_wins_over_it():
    """crowds-as-background sets ignore_iof_thr -1 where the corrected cells set 0.5;
    the fair variant trains with the factor's value, in both recipes."""
    variants = {v.name: v for v in fair_variants({'crowds': ('crowds-as-background', '96e')})}
    for recipe in ('', 'sgd-'):
        variant = variants[f'lite0-fair-crowds-crowns-{recipe}ghm']
        assert variant.overrides['model.train_cfg.assigner.ignore_iof_thr'] == -1
        assert variant.epochs == 96
    corrected = VARIANTS['lite0-corrected-crowns-sgd-ghm']
    assert corrected.overrides['model.train_cfg.assigner.ignore_iof_thr'] == 0.5
