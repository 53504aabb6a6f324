"""Which GHM statistic predicts a run that ends far below Focal Loss.

Every GHM run of the study logs ``GHMStatsHook``'s statistics per epoch. This
module relates one of them, GHM-C's weight share of the regions with
``g >= 0.5`` late in training (:func:`late_hard_share`), to how far the run
ended below the Focal Loss run of the same setting (same head, data set,
recipe, outlier rate and length: :func:`baseline_key`). The README's
signature table (:func:`render_signature_table`) is generated from it, and
the threshold :class:`~mmdet_ghm.engine.hooks.GHMStatsHook` warns at
(:data:`HARD_SHARE_THRESHOLD`) is the one this table supports.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)

from mmdet_ghm.engine.hooks.ghm_stats_hook import LATE_FRACTION
from mmdet_ghm.engine.hooks.ghm_stats_hook import \
    LATE_HARD_SHARE_THRESHOLD as HARD_SHARE_THRESHOLD

#: Statistic of GHM-C (the ``cls`` loss) read by :func:`late_hard_share`.
HARD_SHARE_KEY = 'cls/w_hard_half'
#: A run "ends far below FL" when its mAP is below this fraction of FL's mean.
FAR_BELOW = 0.85


def late_hard_share(record: dict, fraction: float = LATE_FRACTION) -> Optional[float]:
    """Mean of GHM-C's ``w_hard_half`` over the epochs of the last ``fraction`` of training.

    ``None`` when the record has no such statistic (not a GHM-C run, or an
    older record).
    """
    stats = [s for s in record.get('ghm_stats') or [] if s.get(HARD_SHARE_KEY) is not None]
    if not stats:
        return None
    epochs = record.get('epochs') or max(s['epoch'] for s in stats)
    late = [s[HARD_SHARE_KEY] for s in stats if s['epoch'] > (1 - fraction) * epochs]
    return sum(late) / len(late) if late else None


def baseline_key(spec: dict, epochs) -> Tuple:
    """What a run shares with the FL run it is compared with.

    The head (the config's model, e.g. ``retinanet``), the data set, the
    recipe, the outlier rate and the number of epochs.
    """
    head = osp.basename(spec['config']).split('_')[0]
    return (head, spec.get('dataset', 'shapes'), spec.get('recipe', 'adamw'),
            spec.get('noise'), epochs)


def is_focal_baseline(spec: dict) -> bool:
    """An FL run without further changes (the config is a ``_fl_`` one, no loss overrides)."""
    loss_overrides = [k for k in spec.get('overrides', {}) if k.startswith('model.')]
    return '_fl_' in osp.basename(spec['config']) and not loss_overrides


def signature_rows(records: Sequence[dict]) -> List[Dict]:
    """Per GHM run: late hard share, mAP and the mean mAP of its FL baseline.

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
                         bbox_mAP=record['bbox_mAP'], fl=fl,
                         ratio=record['bbox_mAP'] / fl if fl else None))
    return sorted(rows, key=lambda r: (r['variant'], r['seed']))


def render_signature_table(rows: Sequence[Dict],
                           threshold: float = HARD_SHARE_THRESHOLD) -> str:
    """Markdown: runs (:func:`signature_rows`) split by the late hard share, and how
    they ended against FL."""
    if not rows:
        return '_No runs recorded yet._'
    lines = [f'| weight share of g ≥ 0.5, last {LATE_FRACTION:.0%} of training | runs | '
             'variants | mAP / FL\'s mAP: mean (min – max) | runs below '
             f'{FAR_BELOW:.0%} of FL |', '| --- | ---: | --- | ---: | ---: |']
    for title, pick in ((f'≥ {threshold:g}', lambda r: r['share'] >= threshold),
                        (f'< {threshold:g}', lambda r: r['share'] < threshold)):
        group = [r for r in rows if pick(r)]
        if not group:
            lines.append(f'| {title} | 0 | – | – | – |')
            continue
        ratios = [r['ratio'] for r in group]
        names = sorted({r['variant'] for r in group})
        shares = [r['share'] for r in group]
        far = sum(ratio < FAR_BELOW for ratio in ratios)
        lines.append(
            f'| {title} ({min(shares):.2f} – {max(shares):.2f}) | {len(group)} | '
            + ', '.join(f'`{n}`' for n in names)
            + f' | {_mean(ratios):.2f} ({min(ratios):.2f} – {max(ratios):.2f}) '
            f'| {far} of {len(group)} |')
    return '\n'.join(lines)
