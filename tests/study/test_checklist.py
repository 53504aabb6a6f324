"""Tests of the users' checklist: items ordered by what the records measured, checked
against them."""
import pytest

from mmdet_ghm.study.ablation import ablation_name, cell_name
from mmdet_ghm.study.checklist import CHECKLIST, render_checklist
from mmdet_ghm.study.variants import ABLATION_FACTORS

from .test_ablation import study_of


def ablation(ghm_by_factor):
    """FL and GHM on the cell (0.10 and 0.03 on seeds 0, 1: share 0.30) and on every
    set-up factor, FL as on the cell, GHM as given (``{factor: mAP}``, else the cell's)."""
    maps = {cell_name('fl'): {0: 0.10, 1: 0.10}, cell_name('ghm'): {0: 0.03, 1: 0.03}}
    for factor in ABLATION_FACTORS:
        maps[ablation_name('fl', factor)] = {0: 0.10, 1: 0.10}
        ghm = ghm_by_factor.get(factor, 0.03)
        maps[ablation_name('ghm', factor)] = {0: ghm, 1: ghm}
    return study_of(maps)


def test_items_are_ordered_by_the_change_they_measured_with_their_runs():
    # no-jitter moves the share most (+0.40), then the assigner (-0.20), then anchors (+0.10)
    study = ablation({'no-jitter': 0.07, 'assigner-0.4': 0.01, 'anchors3': 0.04,
                      'anchors2': 0.035, 'batch8': 0.035})
    lines = render_checklist(study, 'docs/results').splitlines()
    assert [line.split('**')[1] for line in lines] == [
        'Scale augmentation.', 'Not a looser assigner.', 'Anchors that fit your objects.',
        'The rest matter less here.']
    assert (': 0.30 → 0.70 (GHM ×2.33, FL ×1.00; seeds 0, 1; '
            '[FL](docs/results/runs/lite0-ablation-crowns-fl-no-jitter/), '
            '[GHM](docs/results/runs/lite0-ablation-crowns-ghm-no-jitter/)).') in lines[0]
    assert '(octave_base_scale 3: 24-38 px on P3): 0.30 → 0.40' in lines[2]
    assert '(octave_base_scale 2: 16-25 px on P3): 0.30 → 0.35' in lines[2]
    # links from the page: the README's to docs/, docs/study.md's to the same folder
    assert '[anchor_coverage.md](docs/anchor_coverage.md)' in lines[2]
    assert '[anchor_coverage.md](anchor_coverage.md)' in render_checklist(study, 'results')
    # the rest: the factors outside the items, each with its change
    assert '`batch8` +0.05' in lines[3] and '`no-clip` +0.00' in lines[3]
    assert 'anchors2' not in lines[3] and 'no-jitter' not in lines[3]


def test_an_unmeasured_item_says_so():
    maps = {cell_name('fl'): {0: 0.10, 1: 0.10}, cell_name('ghm'): {0: 0.03, 1: 0.03},
            ablation_name('fl', 'no-jitter'): {0: 0.1},
            ablation_name('ghm', 'no-jitter'): {0: 0.05}}
    lines = render_checklist(study_of(maps)).splitlines()
    assert lines[0].startswith('1. **Scale augmentation.**')
    assert [line.endswith('Not measured yet.') for line in lines] == [False, True, True]


AGREEING = {'anchors3': 0.05, 'anchors2': 0.04, 'assigner-0.4': 0.02, 'no-jitter': 0.04}


@pytest.mark.parametrize('factor, ghm', [('assigner-0.4', 0.05), ('anchors2', 0.02),
                                         ('no-jitter', 0.03)])
def test_records_that_contradict_an_item_are_refused(factor, ghm):
    with pytest.raises(ValueError, match=f'{factor} changed GHM\'s share of FL\'s mAP by'):
        render_checklist(ablation({**AGREEING, factor: ghm}))
    render_checklist(ablation(AGREEING))  # the same records, the item's sign kept


def test_every_item_is_measured_by_set_up_factors():
    for item in CHECKLIST:
        assert item.factors and all(f in ABLATION_FACTORS for f in item.factors), item.title
        assert item.direction in (-1, 1)
