"""The tree-crowns factor ablation (issue 35): GHM's share of FL's mAP per set-up factor.

Each factor of :data:`~mmdet_ghm.study.variants.ABLATION_FACTORS` changes one
thing away from the corrected AdamW crowns cell, for FL and for published GHM;
the GHM-side factors (:data:`~mmdet_ghm.study.variants.GHM_ABLATION_FACTORS`)
change GHM only and are read against the cell's FL. A factor is compared with
the cell **on the same seeds**: its share ``mean(GHM) / mean(FL)`` over the
seeds both of its variants have, beside the cell's share over those seeds.
"""
from typing import Dict, List, Optional

from .summaries import format_mean_std, maps_by_seed, mean_std, runs_link
from .variants import ABLATION_FACTORS, GHM_ABLATION_FACTORS, LITE0_PREFIX

#: The losses of the ablation and the cell it departs from.
LOSSES = ('fl', 'ghm')


def cell_name(loss: str) -> str:
    """The corrected AdamW crowns cell's variant of ``loss``."""
    return f'{LITE0_PREFIX}corrected-crowns-{loss}'


def ablation_name(loss: str, factor: str) -> str:
    """The ablation variant of ``loss`` with ``factor`` changed."""
    return f'{LITE0_PREFIX}ablation-crowns-{loss}-{factor}'


def _mean(values: Dict[int, float], seeds: List[int]) -> Optional[float]:
    return sum(values[s] for s in seeds) / len(seeds) if seeds else None


def _ratio(num: Optional[float], den: Optional[float]) -> Optional[float]:
    return num / den if num is not None and den else None


def ablation_rows(study: Dict) -> List[Dict]:
    """One row per factor (definition order), from a ``study.json`` object.

    Row keys: ``factor``, ``what``, ``fl`` / ``ghm`` (variant names), ``fl_map`` /
    ``ghm_map`` (mean ± std over all their seeds), ``seeds`` (those both have),
    ``share`` (GHM ÷ FL on those seeds), ``cell_seeds`` (those of them the
    cell has for both losses), ``cell_share`` (the cell's GHM ÷ FL on them),
    ``change`` (``share - cell_share`` on ``cell_seeds``: the row's own share
    recomputed on them), ``fl_factor`` / ``ghm_factor`` (each loss's mAP over
    the cell's, same seeds). Unmeasured values are ``None``.
    """
    cell = {loss: maps_by_seed(study, cell_name(loss)) for loss in LOSSES}
    factors = [(f, what, True) for f, (what, _, _) in ABLATION_FACTORS.items()]
    factors += [(f, what, False) for f, (what, _, _) in GHM_ABLATION_FACTORS.items()]
    rows = []
    for factor, what, both in factors:
        names = dict(fl=ablation_name('fl', factor) if both else cell_name('fl'),
                     ghm=ablation_name('ghm', factor))
        runs = {loss: maps_by_seed(study, name) for loss, name in names.items()}
        seeds = sorted(set(runs['fl']) & set(runs['ghm']))
        cell_seeds = [s for s in seeds if s in cell['fl'] and s in cell['ghm']]
        row = dict(factor=factor, what=what, both=both, **names, seeds=seeds,
                   fl_map=mean_std(runs['fl'].values()), ghm_map=mean_std(runs['ghm'].values()),
                   share=_ratio(_mean(runs['ghm'], seeds), _mean(runs['fl'], seeds)),
                   cell_seeds=cell_seeds, cell_share=None, change=None,
                   fl_factor=None, ghm_factor=None)
        if cell_seeds:
            means = {loss: (_mean(runs[loss], cell_seeds), _mean(cell[loss], cell_seeds))
                     for loss in LOSSES}
            row['cell_share'] = _ratio(means['ghm'][1], means['fl'][1])
            row['change'] = _ratio(means['ghm'][0], means['fl'][0]) - row['cell_share']
            row['fl_factor'] = _ratio(*means['fl']) if both else None
            row['ghm_factor'] = _ratio(*means['ghm'])
        rows.append(row)
    return rows


def ranked_factors(rows: List[Dict]) -> List[Dict]:
    """The measured rows, largest change of GHM's share first."""
    return sorted((r for r in rows if r['change'] is not None),
                  key=lambda r: abs(r['change']), reverse=True)


def render_ablation_table(study: Dict, results: str = 'docs/results') -> str:
    """Markdown table of :func:`ablation_rows`, the corrected cell first, then the
    measured factors by the size of their change of GHM's share, then the
    factors not yet trained."""
    if not all(cell_name(loss) in study['variants'] for loss in LOSSES):
        return '_No runs recorded yet._'

    def num(value, digits=2, sign=False):
        if value is None:
            return '–'
        if round(value, digits) == 0:
            value = 0.0  # no '-0.00'
        return f'{value:{"+" if sign else ""}.{digits}f}'

    def link(name, stat):
        return f'[{format_mean_std(stat)} (n={stat["n"]})]({runs_link(results, name)})'

    cell = {loss: maps_by_seed(study, cell_name(loss)) for loss in LOSSES}
    cell_seeds = sorted(set(cell['fl']) & set(cell['ghm']))
    cell_share = _ratio(_mean(cell['ghm'], cell_seeds), _mean(cell['fl'], cell_seeds))
    fl, ghm = (link(cell_name(loss), mean_std(cell[loss].values())) for loss in LOSSES)
    lines = ['| set-up | FL mAP | GHM mAP | FL ÷ cell | GHM ÷ cell | GHM ÷ FL (seeds) '
             '| cell\'s GHM ÷ FL, same seeds | change of the share |',
             '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
             f'| the corrected AdamW cell | {fl} | {ghm} | 1 | 1 '
             f'| {num(cell_share)} ({", ".join(map(str, cell_seeds))}) | – | – |']
    rows = ablation_rows(study)
    measured = ranked_factors(rows)
    for row in measured + [r for r in rows if r['change'] is None]:
        fl = link(row['fl'], row['fl_map']) if row['fl_map']['n'] else '–'
        if not row['both'] and row['fl_map']['n']:
            fl += ' (the cell\'s)'
        ghm = link(row['ghm'], row['ghm_map']) if row['ghm_map']['n'] else '–'
        seeds = f' ({", ".join(map(str, row["seeds"]))})' if row['seeds'] else ''
        fl_factor = num(row['fl_factor']) if row['both'] else '1'
        lines.append(f'| `{row["factor"]}`: {row["what"]} | {fl} | {ghm} '
                     f'| {fl_factor} | {num(row["ghm_factor"])} '
                     f'| {num(row["share"])}{seeds} | {num(row["cell_share"])} '
                     f'| {num(row["change"], sign=True)} |')
    return '\n'.join(lines)


def describe_change(row: Dict, results: str = 'docs/results') -> str:
    """A measured row's change of GHM's share of FL's mAP, with each loss's factor and
    links to its records:
    ``0.31 → 0.63 (GHM ×2.86, FL ×1.42; seeds 0, 1; [FL](…), [GHM](…))``."""
    seeds = ', '.join(map(str, row['cell_seeds']))
    moved = f'GHM ×{row["ghm_factor"]:.2f}'
    if row['both']:
        moved += f', FL ×{row["fl_factor"]:.2f}'
    links = f'[FL]({runs_link(results, row["fl"])}), [GHM]({runs_link(results, row["ghm"])})'
    return (f'{row["cell_share"]:.2f} → {row["cell_share"] + row["change"]:.2f} '
            f'({moved}; seeds {seeds}; {links})')


def render_ablation_summary(rows: List[Dict], top: int = 3, results: str = 'docs/results') -> str:
    """One sentence naming the factors that moved GHM's share of FL's mAP most, each
    with links to its FL and GHM records."""
    measured = ranked_factors(rows)
    if not measured:
        return '_No factor measured yet._'
    parts = [f'`{row["factor"]}`, {row["what"]}: {describe_change(row, results)}'
             for row in measured[:top]]
    rest = len(measured) - len(parts)
    tail = (f' The other {rest} measured factor{"s" if rest > 1 else ""} moved it by at most '
            f'{max(abs(r["change"]) for r in measured[top:]):.2f}.') if rest else ''
    pending = [r['factor'] for r in rows if r['change'] is None]
    todo = (' Not yet measured: ' + ', '.join(f'`{f}`' for f in pending) + '.') if pending else ''
    return ('GHM\'s share of FL\'s mAP, against the corrected AdamW cell on the same seeds, '
            'moved most with ' + '; '.join(parts) + '.' + tail + todo)
