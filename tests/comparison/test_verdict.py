"""The verdict rule: seeds needed, spreads added up, and the reference loss."""
import pytest

from mmdet_ghm.comparison.verdict import MIN_SEEDS, RULE, reference_setting, verdict


def _s(mean, std, n=3):
    return dict(mean=mean, std=std, n=n)


@pytest.mark.parametrize('candidate, reference, word', [
    (_s(0.50, 0.01), _s(0.47, 0.01), 'ahead'),      # +0.03 > 0.02
    (_s(0.50, 0.02), _s(0.47, 0.02), 'level'),      # +0.03 < 0.04
    (_s(0.44, 0.01), _s(0.47, 0.01), 'behind'),     # -0.03 < -0.02
    (_s(0.47, 0.00), _s(0.47, 0.00), 'level'),      # equal, no spread: not ahead
    (_s(0.60, 0.01, n=2), _s(0.40, 0.01), 'not enough seeds to say'),
    (_s(0.60, 0.01), _s(0.40, None, n=1), 'not enough seeds to say'),
])
def test_verdict_compares_the_difference_with_the_spreads_added_up(candidate, reference, word):
    got, why = verdict(candidate, reference)
    assert got == word
    if word != 'not enough seeds to say':
        diff = candidate['mean'] - reference['mean']
        assert f'{diff:+.3f}' in why


def test_the_rule_states_the_seeds_it_needs():
    assert MIN_SEEDS == 3 and 'fewer than 3 seeds' in RULE and 'added up' in RULE


def test_the_reference_is_fl_then_the_own_loss_then_ce():
    assert reference_setting(['own', 'fl', 'ghm'], 'ce') == 'fl'
    assert reference_setting(['own', 'ghm'], 'fl') == 'own'
    assert reference_setting(['own', 'ce', 'ghm'], 'ghm') == 'ce'  # own is GHM: not a reference
    assert reference_setting(['ghm', 'ghm-cap'], None) is None
