"""GHM's two halves on the corrected crowns cells (issue 35): which half costs the mAP.

In each recipe's corrected crowns cell, GHM-C + L1, FL + GHM-R and the whole
(GHM-C + GHM-R, published) are read against FL + L1 of the same cell **on the
seeds all four have**: a row's share is its mean mAP over FL + L1's on those
seeds.
"""
from typing import Dict, List

from .summaries import maps_by_seed, mean_std, runs_link
from .variants import CORRECTED_SETUP, fair_variant_name

#: The cells' recipes: (key, what the summary calls it).
RECIPES = (('adamw', 'AdamW'), ('sgd', 'SGD step'))
#: The baseline both halves are read against.
BASELINE = ('fl', 'FL + L1')
#: GHM's halves and the whole: (loss key, title).
PARTS = (('ghmc-l1', 'GHM-C + L1'), ('fl-ghmr', 'FL + GHM-R'), ('ghm', 'GHM-C + GHM-R'))
#: Seeds a recipe's decomposition needs before the summary reads it as a result.
SEEDS_WANTED = 3


def cell_variant(recipe: str, loss: str) -> str:
    """The corrected crowns cell's variant of ``loss`` with ``recipe``."""
    return fair_variant_name(CORRECTED_SETUP, recipe, loss)


def decomposition_rows(study: Dict) -> List[Dict]:
    """One row per recipe (:data:`RECIPES` order), from a ``study.json`` object.

    Row keys: ``recipe``, ``title``, ``seeds`` (those FL + L1 and all of
    :data:`PARTS` have), ``baseline`` (FL + L1's mean mAP on them; ``None``
    without a common seed), ``parts``: per loss key ``{'variant', 'mean',
    'std', 'share'}`` (mean and sample std of the mAP on ``seeds``, the mean
    over FL + L1's), and
    ``halves_order``: on how many of ``seeds`` GHM-C + L1 ends below
    FL + GHM-R.
    """
    rows = []
    for recipe, title in RECIPES:
        maps = {loss: maps_by_seed(study, cell_variant(recipe, loss))
                for loss in (BASELINE[0],) + tuple(p for p, _ in PARTS)}
        seeds = sorted(set.intersection(*(set(m) for m in maps.values())))
        baseline = mean_std([maps[BASELINE[0]][s] for s in seeds])['mean']
        parts = {}
        for loss, _ in PARTS:
            stat = mean_std([maps[loss][s] for s in seeds])
            parts[loss] = dict(variant=cell_variant(recipe, loss), mean=stat['mean'],
                               std=stat['std'], share=stat['mean'] / baseline
                               if stat['mean'] is not None and baseline else None)
        below = sum(maps['ghmc-l1'][s] < maps['fl-ghmr'][s] for s in seeds)
        rows.append(dict(recipe=recipe, title=title, seeds=seeds, baseline=baseline,
                         parts=parts, halves_order=below))
    return rows


def describe_recipe(row: Dict, results: str = 'docs/results') -> str:
    """One recipe's sentence: each part's share of FL + L1's mAP with links, and what
    the shares say about the halves."""
    if not row['seeds']:
        return (f'With {row["title"]}: not yet trained (no seed has FL + L1, both halves '
                'and the whole).')
    n = len(row['seeds'])
    seeds = ', '.join(map(str, row['seeds']))
    if not row['baseline']:
        return f'With {row["title"]} (seeds {seeds}): FL + L1 ends at mAP 0; no share to read.'
    base = f'[{BASELINE[1]}]({runs_link(results, cell_variant(row["recipe"], BASELINE[0]))})'
    parts = [f'{title} [{row["parts"][loss]["mean"]:.3f}]'
             f'({runs_link(results, row["parts"][loss]["variant"])}) '
             f'({row["parts"][loss]["share"]:.2f})' for loss, title in PARTS]
    text = (f'With {row["title"]} (seed{"s" if n > 1 else ""} {seeds}; {base} '
            f'{row["baseline"]:.3f}): ' + ', '.join(parts) + '.')
    share = {loss: row['parts'][loss]['share'] for loss, _ in PARTS}
    if min(share['ghmc-l1'], share['fl-ghmr']) > share['ghm']:
        text += ' Each half alone keeps more of FL + L1\'s mAP than the two together'
    else:
        text += ' One half alone keeps no more of FL + L1\'s mAP than the two together'
    costlier = 'GHM-C + L1' if share['ghmc-l1'] < share['fl-ghmr'] else 'FL + GHM-R'
    below = row['halves_order'] if costlier == 'GHM-C + L1' else n - row['halves_order']
    text += f'; {costlier} ends lower on {below} of {n} seed{"s" if n > 1 else ""}'
    halves = [row['parts'][loss] for loss in ('ghmc-l1', 'fl-ghmr')]
    spread = max((h['std'] for h in halves if h['std'] is not None), default=None)
    if spread is not None and abs(halves[0]['mean'] - halves[1]['mean']) < spread:
        text += (f', by less than their seeds\' spread (means {halves[0]["mean"]:.3f} and '
                 f'{halves[1]["mean"]:.3f}, std up to {spread:.3f})')
    text += '.'
    if n < SEEDS_WANTED:
        text += f' ({n} of {SEEDS_WANTED} seeds: a lead, not a result.)'
    return text


def render_decomposition_summary(study: Dict, results: str = 'docs/results') -> str:
    """The decomposition's sentences, one per recipe (shares of FL + L1's mAP in
    brackets after each linked mean)."""
    return ' '.join(describe_recipe(row, results) for row in decomposition_rows(study))
