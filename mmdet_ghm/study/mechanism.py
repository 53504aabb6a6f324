"""How each loss splits the classification gradient on a trained crowns model (issue 35).

Reads the records of ``tools/analysis_tools/analyze_gradient_density.py`` kept under
``docs/results/analysis/gradient_split/`` (``<variant>-seed<k>-<split>.json``, the
final checkpoint of that run through the val pipeline) and summarises each: how
many anchor-class elements are positives, how the model's predictions spread
them over the gradient norm ``g = |p - y|``, and the share of the classification
gradient each loss (CE, FL, GHM-C) would put on the positives.
"""
import posixpath
from typing import Dict, Optional, Sequence

from .analysis_records import load_analysis_records, provenance, run_fields
from .summaries import runs_link

#: Where the records are, relative to ``docs/results``.
GRADIENT_SPLIT_DIR = 'analysis/gradient_split'
#: A negative at ``g >= NEGATIVE_OVERLAP_G`` scores ``p >= 0.3``: in the range of the
#: GHM models' positives (docs/study.md, "A first look at the mechanism").
NEGATIVE_OVERLAP_G = 0.3
HARD_G = 0.5
LOSSES = (('ce', 'CE'), ('fl', 'FL'), ('ghmc', 'GHM-C'))


def load_gradient_splits(results_dir: str) -> Dict[str, dict]:
    """``{record name (file stem): record}`` of every gradient-split record."""
    return load_analysis_records(results_dir, GRADIENT_SPLIT_DIR)


def split_record(result: dict, spec: dict, record: str, epochs: int, split: str,
                 code: dict, env: dict) -> dict:
    """The committed record of one run's gradient split (``result``: the analysis's)."""
    return dict(
        run_fields(spec, record, epochs),
        classification=result['classification'], histogram=result['histogram'],
        num_images=result['num_images'],
        params=result['params'],
        provenance=provenance(code, env, 'tools/analysis_tools/gradient_split_records.py'),
        regression=result['regression'], split=split)


def _share_from(counts, edges, lower: float) -> float:
    total = sum(counts)
    picked = sum(c for c, lo in zip(counts, edges[:-1]) if lo >= lower - 1e-6)
    return picked / total if total else 0.0


def split_summary(record: dict) -> Dict[str, float]:
    """Summary numbers of one record (shares in [0, 1])."""
    cls = record['classification']
    positives, negatives, edges = cls['counts_positive'], cls['counts_negative'], cls['edges']
    elements = sum(positives) + sum(negatives)
    return dict(
        positives=int(sum(positives)),
        positive_fraction=sum(positives) / elements,
        easiest_fraction=(positives[0] + negatives[0]) / elements,
        negatives_overlapping=_share_from(negatives, edges, NEGATIVE_OVERLAP_G),
        positives_hard=_share_from(positives, edges, HARD_G),
        **{f'on_positives_{key}': cls['gradient_on_positives'][key]['all'] for key, _ in LOSSES})


#: ``ClsGradientShareHook``'s statistics in a record's ``cls_grad_stats`` (per epoch).
CLS_GRAD_KEYS = ('pos_share', 'pos_frac', 'neg_overlap', 'neg_overlap_share', 'pos_hard')
#: Where in training :func:`cls_grad_summary` reads the positives' share: the
#: first epoch, the epochs ending a quarter and half of training, the last tenth.
CLS_GRAD_POINTS = (('first', None), ('quarter', 0.25), ('half', 0.5))
CLS_GRAD_LATE = 0.1


def cls_grad_summary(record: dict) -> Optional[Dict[str, float]]:
    """One run's classification-gradient split over training, from ``cls_grad_stats``.

    ``pos_share_first`` / ``_quarter`` / ``_half``: the positives' share of the
    gradient in the first epoch and in the epochs at a quarter and half of
    training; ``<key>_late`` for every :data:`CLS_GRAD_KEYS`: the mean over the
    last tenth of the epochs. ``None`` for a record without them (trained
    before the study logged them).
    """
    stats = sorted(record.get('cls_grad_stats') or [], key=lambda s: s['epoch'])
    if not stats:
        return None
    epochs = record.get('epochs') or stats[-1]['epoch']
    out = {}
    for name, fraction in CLS_GRAD_POINTS:
        point = stats[0] if fraction is None else min(
            stats, key=lambda s: abs(s['epoch'] - fraction * epochs))
        out[f'pos_share_{name}'] = point['pos_share']
    late = [s for s in stats if s['epoch'] > (1 - CLS_GRAD_LATE) * epochs] or stats[-1:]
    for key in CLS_GRAD_KEYS:
        values = [s[key] for s in late if s.get(key) is not None]
        out[f'{key}_late'] = sum(values) / len(values) if values else None
    return out


def mean_cls_grad(records: Sequence[dict]) -> Optional[Dict[str, float]]:
    """:func:`cls_grad_summary` averaged over the runs that have it (``n``: how many)."""
    summaries = [s for s in map(cls_grad_summary, records) if s is not None]
    if not summaries:
        return None
    out = {'n': len(summaries)}
    for key in summaries[0]:
        values = [s[key] for s in summaries if s[key] is not None]
        out[key] = sum(values) / len(values) if values else None
    return out


def render_cls_gradient_table(study: Dict, results: str = 'docs/results') -> str:
    """Markdown table: per variant with ``cls_grad`` (:func:`mean_cls_grad`), the positives'
    share of the classification gradient over training, and the late scores."""
    rows = [(name, v) for name, v in study['variants'].items() if v.get('cls_grad')]
    if not rows:
        return '_No run has recorded its classification-gradient split yet._'
    lines = ['| variant | runs | gradient share on positives: first epoch | a quarter in | '
             'half-way | last tenth | positives (share of elements) | negatives with '
             f'g ≥ {NEGATIVE_OVERLAP_G}: share of negatives | their share of the gradient '
             f'| positives with g ≥ {HARD_G} | mAP (every seed) |',
             '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']

    def pct(value, digits=0):
        return '–' if value is None else f'{100 * value:.{digits}f} %'
    for name, v in rows:
        c = v['cls_grad']
        lines.append(
            f'| [`{name}`]({runs_link(results, name)}) | {c["n"]} | {pct(c["pos_share_first"])} '
            f'| {pct(c["pos_share_quarter"])} | {pct(c["pos_share_half"])} '
            f'| {pct(c["pos_share_late"])} | {pct(c["pos_frac_late"], 2)} '
            f'| {pct(c["neg_overlap_late"], 1)} | {pct(c["neg_overlap_share_late"])} '
            f'| {pct(c["pos_hard_late"])} '
            f'| {v["mean"]:.3f} |')
    return '\n'.join(lines)


def render_gradient_split_table(records: Dict[str, dict], results: str = 'docs/results',
                                split: str = 'train') -> str:
    """Markdown table: one row per record of ``split``, each linking its record."""
    rows = [(name, r) for name, r in records.items() if r.get('split') == split]
    if not rows:
        return '_No gradient-split records yet._'
    head = ' | '.join(f'{title}' for _, title in LOSSES)
    lines = [f'| model (final checkpoint) | positives (share of elements) | elements in the '
             f'easiest region | negatives with g ≥ {NEGATIVE_OVERLAP_G} | positives with '
             f'g ≥ {HARD_G} | gradient share on positives: {head} |',
             '| --- | ---: | ---: | ---: | ---: |' + ' ---: |' * len(LOSSES)]
    for name, record in rows:
        s = split_summary(record)
        link = posixpath.join(results, GRADIENT_SPLIT_DIR, f'{name}.json')
        shares = ' | '.join(f'{100 * s[f"on_positives_{key}"]:.0f} %' for key, _ in LOSSES)
        lines.append(
            f'| [`{record["checkpoint"]["variant"]}` seed {record["checkpoint"]["seed"]}]({link}) '
            f'| {s["positives"]:,} ({100 * s["positive_fraction"]:.2f} %) '
            f'| {100 * s["easiest_fraction"]:.0f} % | {100 * s["negatives_overlapping"]:.1f} % '
            f'| {100 * s["positives_hard"]:.0f} % | {shares} |')
    return '\n'.join(lines)
