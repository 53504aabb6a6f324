"""How each loss splits the classification gradient on a trained crowns model (issue 35).

Reads the records of ``tools/analysis_tools/analyze_gradient_density.py`` kept under
``docs/results/analysis/gradient_split/`` (``<variant>-seed<k>-<split>.json``, the
final checkpoint of that run through the val pipeline) and summarises each: how
many anchor-class elements are positives, how the model's predictions spread
them over the gradient norm ``g = |p - y|``, and the share of the classification
gradient each loss (CE, FL, GHM-C) would put on the positives.
"""
import glob
import json
import os.path as osp
import posixpath
from typing import Dict

#: Where the records are, relative to ``docs/results``.
GRADIENT_SPLIT_DIR = 'analysis/gradient_split'
#: A negative at ``g >= NEGATIVE_OVERLAP_G`` scores ``p >= 0.3``: in the range of the
#: GHM models' positives (docs/study.md, "A first look at the mechanism").
NEGATIVE_OVERLAP_G = 0.3
HARD_G = 0.5
LOSSES = (('ce', 'CE'), ('fl', 'FL'), ('ghmc', 'GHM-C'))


def load_gradient_splits(results_dir: str) -> Dict[str, dict]:
    """``{record name (file stem): record}`` of every gradient-split record."""
    paths = sorted(glob.glob(osp.join(results_dir, GRADIENT_SPLIT_DIR, '*.json')))
    records = {}
    for path in paths:
        with open(path) as f:
            records[osp.splitext(osp.basename(path))[0]] = json.load(f)
    return records


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
