"""The verdict of a loss comparison: one rule, stated in every report.

A GHM setting is compared with a reference loss (Focal Loss where it was
trained, else the config's own loss, else CE) by their mean mAP over seeds:

* fewer than :data:`MIN_SEEDS` seeds on either side: "not enough seeds to say";
* else the difference of the means against the sum of the two sample
  standard deviations (the spreads): "ahead" when it is larger than the
  spreads, "behind" when it is smaller than minus the spreads, "level" otherwise.
"""
from typing import Dict, Optional, Tuple

#: Seeds each side needs before the report says more than "not enough seeds to say"
#: (the project's evidence standard for anything a user would act on).
MIN_SEEDS = 3
RULE = (f'A GHM setting is compared with the reference loss by their mean mAP over seeds. With '
        f'fewer than {MIN_SEEDS} seeds on either side the verdict is "not enough seeds to '
        'say". Otherwise it is "ahead" when the GHM mean exceeds the reference mean by more '
        'than the two sample standard deviations added up, "behind" when it falls short by '
        'more than that, and "level" in between.')


def verdict(candidate: Dict, reference: Dict) -> Tuple[str, str]:
    """``(word, sentence)`` for two ``{'mean', 'std', 'n'}`` summaries of mAP.

    ``word`` is one of ``ahead``, ``level``, ``behind``, ``not enough seeds to say``.
    """
    n_c, n_r = candidate.get('n') or 0, reference.get('n') or 0
    if n_c < MIN_SEEDS or n_r < MIN_SEEDS:
        return 'not enough seeds to say', (
            f'{n_c} and {n_r} seed(s); the rule needs {MIN_SEEDS} on each side')
    diff = candidate['mean'] - reference['mean']
    margin = (candidate['std'] or 0.0) + (reference['std'] or 0.0)
    word = 'ahead' if diff > margin else 'behind' if diff < -margin else 'level'
    return word, (f'difference of the means {diff:+.3f} against the spreads added up '
                  f'{margin:.3f}')


def reference_setting(settings, own: Optional[str]) -> Optional[str]:
    """The loss GHM is judged against: ``fl``, else the config's own (if not GHM), else ``ce``."""
    if 'fl' in settings:
        return 'fl'
    if 'own' in settings and own not in ('ghm', 'ghm-cap'):
        return 'own'
    return 'ce' if 'ce' in settings else None
