"""Which GHM statistics predict a run that ends far below Focal Loss.

Every GHM run of the study logs ``GHMStatsHook``'s statistics per epoch. This
module relates two of them late in training (:func:`late_mean`): GHM-C's
weight share of the regions with ``g >= 0.5`` and the fraction of its
elements in the easiest region, to how far the run ended below the Focal Loss
run of the same setting (same head, data set, recipe, outlier rate and
length: :func:`baseline_key`). The signature tables of ``docs/study.md``
(:func:`render_signature_table`, :func:`render_signature_detail`) are
generated from it, and the thresholds
:class:`~mmdet_ghm.engine.hooks.GHMStatsHook` warns at are the ones these
tables support (:func:`~mmdet_ghm.engine.hooks.ghm_stats_hook.shows_low_ap_signature`).
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from mmdet_ghm.engine.hooks.ghm_stats_hook import (LATE_EASY_FRACTION_THRESHOLD,
                                                   LATE_FRACTION, LATE_HARD_SHARE_THRESHOLD,
                                                   shows_low_ap_signature)

#: Statistics of GHM-C (the ``cls`` loss) read by :func:`late_mean`.
HARD_SHARE_KEY = 'cls/w_hard_half'
EASY_FRACTION_KEY = 'cls/easy_frac'
#: A run "ends far below FL" when its mAP is below this fraction of FL's mean.
FAR_BELOW = 0.85


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


def baseline_key(spec: dict, epochs) -> Tuple:
    """What a run shares with the FL run it is compared with.

    The detector and its backbone (the config name's first two parts, e.g.
    ``retinanet_tiny-r18`` or ``retinanet_efficientnet-lite0``), the data
    set, the recipe, the outlier rate and the number of epochs.
    """
    head = '_'.join(osp.basename(spec['config']).split('_')[:2])
    return (head, spec.get('dataset', 'shapes'), spec.get('recipe', 'adamw'),
            spec.get('noise'), epochs)


def is_focal_baseline(spec: dict) -> bool:
    """An FL run without further changes (the config is a ``_fl_`` one, no loss overrides)."""
    loss_overrides = [k for k in spec.get('overrides', {}) if k.startswith('model.')]
    return '_fl_' in osp.basename(spec['config']) and not loss_overrides


def signature_rows(records: Sequence[dict]) -> List[Dict]:
    """Per GHM run: late hard share and easy fraction, mAP and its FL baseline's mean mAP.

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
                         ratio=record['bbox_mAP'] / fl if fl else None))
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
