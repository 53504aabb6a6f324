"""Which GHM statistics predict a run that ends far below Focal Loss.

Every GHM run of the study logs ``GHMStatsHook``'s statistics per epoch. This
module relates two of them late in training (:func:`late_mean`): GHM-C's
weight share of the regions with ``g >= 0.5`` and the fraction of its
elements in the easiest region, to how far the run ended below the Focal Loss
run of the same setting (same head, data set, recipe, outlier rate and
length: :func:`baseline_key`). The signature tables of ``docs/study.md``
(:func:`render_signature_table`, :func:`render_signature_detail`,
:func:`render_signature_errors`) are generated from it, and the thresholds
:class:`~mmdet_ghm.engine.hooks.GHMStatsHook` warns at are the ones these
tables support (:func:`~mmdet_ghm.engine.hooks.ghm_stats_hook.shows_low_ap_signature`).

The statistics of a record were sampled one of two ways (its
``ghm_stats_sampling``, :func:`~mmdet_ghm.study.records.stats_sampling`):
pooled over every iteration of each logging window, or, in the records
written before that, from the one batch of each logging iteration. The
signature's errors are counted for each separately.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from mmdet_ghm.engine.hooks.ghm_stats_hook import (LATE_EASY_FRACTION_THRESHOLD,
                                                   LATE_FRACTION, LATE_HARD_SHARE_THRESHOLD,
                                                   shows_low_ap_signature)

from .records import LAST_BATCH_SAMPLING, MIXED_SAMPLING, WINDOW_SAMPLING, stats_sampling

#: Statistics of GHM-C (the ``cls`` loss) read by :func:`late_mean`.
HARD_SHARE_KEY = 'cls/w_hard_half'
EASY_FRACTION_KEY = 'cls/easy_frac'
#: A run "ends far below FL" when its mAP is below this fraction of FL's mean.
FAR_BELOW = 0.85
#: How :func:`render_signature_errors` names each way of sampling the statistics.
SAMPLING_TITLES = {
    WINDOW_SAMPLING: 'every iteration of each logging window (`window`)',
    MIXED_SAMPLING: 'resumed across the change, epochs of both kinds (`mixed`)',
    LAST_BATCH_SAMPLING: 'one batch per logging iteration (older records, no '
                         '`ghm_stats_sampling`)',
}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def late_mean(record: dict, key: str, fraction: float = LATE_FRACTION) -> Optional[float]:
    """Mean of the per-epoch statistic ``key`` over the last ``fraction`` of training.

    ``None`` when the record has no such statistic (not a GHM-C run, or an
    older record).
    """
    stats = [s for s in record.get('ghm_stats') or [] if s.get(key) is not None]
    if not stats:
        return None
    epochs = record.get('epochs') or max(s['epoch'] for s in stats)
    late = [s[key] for s in stats if s['epoch'] > (1 - fraction) * epochs]
    return sum(late) / len(late) if late else None


def late_hard_share(record: dict, fraction: float = LATE_FRACTION) -> Optional[float]:
    """GHM-C's weight share of ``g >= 0.5`` over the last ``fraction`` of training."""
    return late_mean(record, HARD_SHARE_KEY, fraction)


#: Override keys that belong to the recipe (its optimizer and schedule, named
#: by the spec's ``recipe``), not to the set-up a run shares with its FL run.
RECIPE_KEYS = ('optim_wrapper', 'param_scheduler')


def is_loss_override(key: str) -> bool:
    """Whether an override changes the loss (or the hooks that come with it)."""
    return 'loss_cls' in key or 'loss_bbox' in key or key == 'custom_hooks'


def setup_overrides(spec: dict) -> str:
    """The overrides of a run's set-up, beyond its config and recipe, as sorted JSON.

    Loss overrides and the recipe's own keys are left out: a GHM run of the
    corrected crowns set-up (clipping and ignored crowns for every loss) and
    of its ablation factors (larger anchors, ...) is compared with the FL runs
    of the same set-up, not with those of another.
    """
    setup = {k: v for k, v in (spec.get('overrides') or {}).items()
             if not is_loss_override(k) and k not in RECIPE_KEYS}
    return json.dumps(setup, sort_keys=True)


def baseline_key(spec: dict, epochs) -> Tuple:
    """What a run shares with the FL run it is compared with.

    The detector and its backbone (the config name's first two parts, e.g.
    ``retinanet_tiny-r18`` or ``retinanet_efficientnet-lite0``), the data
    set, the recipe, the outlier rate, the number of epochs and the set-up
    overrides (:func:`setup_overrides`).
    """
    head = '_'.join(osp.basename(spec['config']).split('_')[:2])
    return (head, spec.get('dataset', 'shapes'), spec.get('recipe', 'adamw'),
            spec.get('noise'), epochs, setup_overrides(spec))


def is_focal_baseline(spec: dict) -> bool:
    """An FL run without further changes to its loss (a ``_fl_`` config, no loss overrides)."""
    loss_overrides = [k for k in spec.get('overrides', {}) if is_loss_override(k)]
    return '_fl_' in osp.basename(spec['config']) and not loss_overrides


def signature_rows(records: Sequence[dict]) -> List[Dict]:
    """Per GHM run: late hard share and easy fraction, mAP and its FL baseline's mean
    mAP, and how its statistics were sampled (``sampling``).

    Runs without a recorded FL baseline are left out.
    """
    focal: Dict[Tuple, List[float]] = {}
    for record in records:
        spec = record.get('variant_spec') or {}
        if spec and is_focal_baseline(spec):
            focal.setdefault(baseline_key(spec, record.get('epochs')), []).append(
                record['bbox_mAP'])
    rows = []
    for record in records:
        share = late_hard_share(record)
        spec = record.get('variant_spec') or {}
        key = baseline_key(spec, record.get('epochs')) if spec else None
        if share is None or key not in focal:
            continue
        fl = _mean(focal[key])
        rows.append(dict(variant=record['variant'], seed=record['seed'], share=share,
                         easy=late_mean(record, EASY_FRACTION_KEY),
                         bbox_mAP=record['bbox_mAP'], fl=fl,
                         ratio=record['bbox_mAP'] / fl if fl else None,
                         sampling=stats_sampling(record)))
    return sorted(rows, key=lambda r: (r['variant'], r['seed']))


def render_signature_table(rows: Sequence[Dict],
                           hard_threshold: float = LATE_HARD_SHARE_THRESHOLD,
                           easy_threshold: float = LATE_EASY_FRACTION_THRESHOLD) -> str:
    """Markdown: runs (:func:`signature_rows`) split by the low-AP signature, and how
    they ended against FL."""
    if not rows:
        return '_No runs recorded yet._'
    rule = (f'weight share of g ≥ 0.5 ≥ {hard_threshold:g} or fewer than {easy_threshold:g} '
            f'of the elements in the easiest region, last {LATE_FRACTION:.0%} of training')
    lines = [f'| {rule} | runs | variants | mAP / FL\'s mAP: mean (min – max) | runs below '
             f'{FAR_BELOW:.0%} of FL |', '| --- | ---: | --- | ---: | ---: |']
    shows = [shows_low_ap_signature(r['share'], r.get('easy'), hard_threshold, easy_threshold)
             for r in rows]
    for title, flag in (('yes', True), ('no', False)):
        group = [r for r, s in zip(rows, shows) if s == flag]
        if not group:
            lines.append(f'| {title} | 0 | – | – | – |')
            continue
        ratios = [r['ratio'] for r in group]
        names = sorted({r['variant'] for r in group})
        far = sum(ratio < FAR_BELOW for ratio in ratios)
        lines.append(
            f'| {title} | {len(group)} | ' + ', '.join(f'`{n}`' for n in names)
            + f' | {_mean(ratios):.2f} ({min(ratios):.2f} – {max(ratios):.2f}) '
            f'| {far} of {len(group)} |')
    return '\n'.join(lines)


def render_signature_detail(rows: Sequence[Dict]) -> str:
    """Markdown: per variant (means over its seeds), the late statistics and mAP / FL."""
    if not rows:
        return '_No runs recorded yet._'
    by_variant: Dict[str, List[Dict]] = {}
    for row in rows:
        by_variant.setdefault(row['variant'], []).append(row)
    lines = [f'| variant | runs | weight share of g ≥ 0.5, last {LATE_FRACTION:.0%} | '
             f'elements in the easiest region, last {LATE_FRACTION:.0%} | mAP / FL\'s mAP |',
             '| --- | ---: | ---: | ---: | ---: |']
    for name, group in sorted(by_variant.items(), key=lambda item: _mean(
            [r['ratio'] for r in item[1]])):
        easy = [r['easy'] for r in group if r.get('easy') is not None]
        lines.append(f'| `{name}` | {len(group)} | {_mean([r["share"] for r in group]):.2f} | '
                     + (f'{_mean(easy):.2f}' if easy else '–')
                     + f' | {_mean([r["ratio"] for r in group]):.2f} |')
    return '\n'.join(lines)


def _runs_list(group: Sequence[Dict]) -> str:
    counts: Dict[str, int] = {}
    for row in group:
        counts[row['variant']] = counts.get(row['variant'], 0) + 1
    return ', '.join(f'`{name}`' + (f' ×{n}' if n > 1 else '')
                     for name, n in sorted(counts.items()))


def _errors(group: Sequence[Dict], of: int) -> str:
    return f'{len(group)} of {of}' + (f': {_runs_list(group)}' if group else '')


def render_signature_errors(rows: Sequence[Dict],
                            hard_threshold: float = LATE_HARD_SHARE_THRESHOLD,
                            easy_threshold: float = LATE_EASY_FRACTION_THRESHOLD) -> str:
    """Markdown: the signature's false alarms and misses, per way of sampling the statistics.

    A false alarm is a run (:func:`signature_rows`) with a sign that ended at
    :data:`FAR_BELOW` of its FL baseline's mAP or above; a miss, a run
    without one that ended below. One row for the window-sampled records and
    one for the older one-batch ones (each said to be empty when it is), one
    for ``'mixed'`` records when there are any. Runs whose FL baseline has
    no mAP (0) are not counted.
    """
    lines = ['| statistics logged | runs | with a sign | false alarms: a sign, ended at '
             f'{FAR_BELOW:.0%} of FL or above | without a sign | misses: no sign, ended below '
             f'{FAR_BELOW:.0%} of FL |', '| --- | ---: | ---: | --- | ---: | --- |']
    for sampling in (WINDOW_SAMPLING, MIXED_SAMPLING, LAST_BATCH_SAMPLING):
        group = [r for r in rows if r.get('sampling', LAST_BATCH_SAMPLING) == sampling
                 and r['ratio'] is not None]
        title = SAMPLING_TITLES[sampling]
        if not group:
            if sampling == MIXED_SAMPLING:
                continue
            none = ('no runs with window statistics recorded yet' if sampling == WINDOW_SAMPLING
                    else 'no such runs')
            lines.append(f'| {title} | 0 | – | {none} | – | – |')
            continue
        shows = [shows_low_ap_signature(r['share'], r.get('easy'), hard_threshold,
                                        easy_threshold) for r in group]
        sign = [r for r, s in zip(group, shows) if s]
        quiet = [r for r, s in zip(group, shows) if not s]
        alarms = [r for r in sign if r['ratio'] >= FAR_BELOW]
        misses = [r for r in quiet if r['ratio'] < FAR_BELOW]
        lines.append(f'| {title} | {len(group)} | {len(sign)} | {_errors(alarms, len(sign))} '
                     f'| {len(quiet)} | {_errors(misses, len(quiet))} |')
    return '\n'.join(lines)
