"""Summaries over seeds (mean ± sample std), a variant's final mAP per seed, and links
to its records."""
import math
import posixpath
from typing import Dict, Optional, Sequence


def mean_std(values: Sequence[float]) -> Dict:
    """``{'mean', 'std', 'n'}``; ``std`` is the sample std (ddof=1), None for n < 2."""
    values = [float(v) for v in values if v is not None]
    n = len(values)
    if n == 0:
        return dict(mean=None, std=None, n=0)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return dict(mean=mean, std=std, n=n)


def format_mean_std(stat: Optional[Dict], digits: int = 3) -> str:
    """``mean ± std`` of a ``{'mean', 'std'}`` summary (``–`` without a mean)."""
    if not stat or stat.get('mean') is None:
        return '–'
    text = f'{stat["mean"]:.{digits}f}'
    if stat.get('std') is not None:
        text += f' ± {stat["std"]:.{digits}f}'
    return text


def runs_link(results: str, name: str) -> str:
    """Link to a variant's records folder from a page ``results`` away from ``docs/results``."""
    return posixpath.normpath(posixpath.join(results, 'runs', name)) + '/'


def maps_by_seed(study: Dict, name: str) -> Dict[int, float]:
    """``{seed: final bbox mAP}`` of variant ``name`` in a ``study.json`` object (empty
    when it has no runs)."""
    variant = study['variants'].get(name)
    if variant is None:
        return {}
    return {r['seed']: r['bbox_mAP'] for r in variant['runs'] if r['bbox_mAP'] is not None}
