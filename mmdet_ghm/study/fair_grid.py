"""The fair tree-crowns grid (issue 35): every loss gets the same tuning budget.

The rule, fixed before the grid's runs (docs/study.md, "A fair grid"):

1. **Candidates.** A set-up factor of the ablation
   (:data:`~mmdet_ghm.study.variants.ABLATION_FACTORS`; the losses' own options
   are not tuned, each loss keeps its published settings) *qualifies* for FL
   or for published GHM when, on the tuning seeds (0 and 1), its mean mAP
   exceeds the corrected AdamW cell's by more than the two standard deviations
   added up. The candidate set-ups: the corrected set-up, FL's qualifying
   factors together, and GHM's qualifying factors together (a set-up listed
   once; none beside the corrected one when no factor qualifies). Of factors
   that change the same setting (anchor scales 2 and 3), the one with the
   larger gain is taken.
2. **Budget.** Every loss of the grid (CE, FL, published GHM, GHM + cap)
   trains on every candidate, in both recipes, with the tuning seeds.
3. **Best against best.** Per loss and recipe, the candidate with the
   highest mean mAP over the tuning seeds; seed 2 is added there, and the
   loss is reported over :data:`FINAL_SEEDS`.
4. **Shared set-up.** Per recipe, the candidate with the highest mean over
   the losses of (the loss's tuning mAP there) / (its best candidate's); every
   loss is reported there over :data:`FINAL_SEEDS`.

The crowns have no test split: set-ups are chosen on the val split they are
reported on, the same way for every loss.
"""
from typing import Dict, List, Optional, Sequence, Tuple

from .ablation import ablation_name, cell_name
from .summaries import format_mean_std, maps_by_seed, mean_std, runs_link
from .variants import ABLATION_FACTORS, CORRECTED_SETUP, fair_variant_name

#: The losses of the grid (keys of :data:`~mmdet_ghm.study.variants.LOSSES`) and
#: what the tables call them.
FAIR_LOSSES = (('ce', 'CE'), ('fl', 'FL'), ('ghm', 'GHM, published'), ('ghm-cap', 'GHM, cap 100'))
#: The losses whose ablation proposes candidates.
PROPOSING_LOSSES = ('fl', 'ghm')
TUNING_SEEDS = (0, 1)
FINAL_SEEDS = (0, 1, 2)
RECIPES = (('adamw', 'AdamW'), ('sgd', 'SGD step'))
#: What the grid's tables say while the ablation has not decided the candidates.
UNDECIDED = ('_The candidates are not decided yet: the ablation needs every set-up factor '
             f'for FL and GHM on seeds {", ".join(map(str, TUNING_SEEDS))}._')
#: The name of the corrected set-up (no factor changed).
CORRECTED = CORRECTED_SETUP
#: The variant of a loss on a candidate set-up (the corrected cells', the
#: ablation's where it trains the same, else the fair grid's own).
fair_name = fair_variant_name


def setup_name(factors: Sequence[str]) -> str:
    """``corrected`` for no factor, else the factors joined by ``+`` (definition order)."""
    ordered = [f for f in ABLATION_FACTORS if f in factors]
    return '+'.join(ordered) if ordered else CORRECTED


def _on(values: Dict[int, float], seeds: Sequence[int]) -> Optional[Dict]:
    """mean ± std of ``values`` on exactly ``seeds`` (None when one is missing)."""
    if not all(s in values for s in seeds):
        return None
    return mean_std([values[s] for s in seeds])


def factor_gain(study: Dict, loss: str, factor: str) -> Optional[Tuple[float, float]]:
    """``(gain, spreads)``: the factor's mean mAP minus the cell's on the tuning seeds,
    and their standard deviations added up; None until both have the seeds."""
    changed = _on(maps_by_seed(study, ablation_name(loss, factor)), TUNING_SEEDS)
    cell = _on(maps_by_seed(study, cell_name(loss)), TUNING_SEEDS)
    if changed is None or cell is None:
        return None
    return changed['mean'] - cell['mean'], changed['std'] + cell['std']


def qualifying_factors(study: Dict, loss: str) -> Optional[List[str]]:
    """The set-up factors that qualify for ``loss`` (rule 1), largest gain first;
    None while a factor still lacks a tuning seed (the candidates are not decided)."""
    gains = {factor: factor_gain(study, loss, factor) for factor in ABLATION_FACTORS}
    if any(g is None for g in gains.values()):
        return None
    qualifying = [f for f, (gain, spreads) in gains.items() if gain > spreads]
    return sorted(qualifying, key=lambda f: gains[f][0], reverse=True)


def _settings(factor: str) -> set:
    """What a factor changes: its override keys, and ``epochs`` when it sets them."""
    _, overrides, epochs = ABLATION_FACTORS[factor]
    return set(overrides) | ({'epochs'} if epochs else set())


def combine(factors: Sequence[str]) -> List[str]:
    """``factors`` (largest gain first) that can be applied together: of the factors
    that change the same setting (``anchors2``, ``anchors3``), the first."""
    chosen: List[str] = []
    for factor in factors:
        if not any(_settings(factor) & _settings(c) for c in chosen):
            chosen.append(factor)
    return chosen


def candidate_setups(study: Dict) -> Optional[Dict[str, Tuple[str, ...]]]:
    """``{set-up name: factors}`` of rule 1, the corrected set-up first; None until
    the ablation has every factor on the tuning seeds for FL and GHM."""
    setups = {CORRECTED: ()}
    for loss in PROPOSING_LOSSES:
        factors = qualifying_factors(study, loss)
        if factors is None:
            return None
        factors = combine(factors)
        if factors:
            setups.setdefault(setup_name(factors), tuple(f for f in ABLATION_FACTORS
                                                         if f in factors))
    return setups


def tuning_means(study: Dict, setups: Sequence[str], recipe: str,
                 loss: str) -> Optional[Dict[str, float]]:
    """``{set-up: mean mAP over the tuning seeds}``; None while one lacks a seed."""
    means = {}
    for setup in setups:
        stat = _on(maps_by_seed(study, fair_name(setup, recipe, loss)), TUNING_SEEDS)
        if stat is None:
            return None
        means[setup] = stat['mean']
    return means


def best_setup(study: Dict, setups: Sequence[str], recipe: str, loss: str) -> Optional[str]:
    """Rule 3: the loss's candidate with the highest tuning mean (first on a tie)."""
    means = tuning_means(study, setups, recipe, loss)
    return None if means is None else max(setups, key=lambda s: means[s])


def shared_setup(study: Dict, setups: Sequence[str], recipe: str,
                 losses: Sequence[str] = tuple(k for k, _ in FAIR_LOSSES)) -> Optional[str]:
    """Rule 4: the candidate with the highest mean over ``losses`` of their tuning
    mAP there over their best candidate's."""
    per_loss = [tuning_means(study, setups, recipe, loss) for loss in losses]
    if any(m is None for m in per_loss):
        return None

    def score(setup):
        return sum(m[setup] / max(m.values()) for m in per_loss if max(m.values()) > 0)
    return max(setups, key=score)


def final_results(study: Dict, setups: Sequence[str]
                  ) -> Dict[Tuple[str, str, str], Tuple[Optional[str], Optional[str],
                                                        Optional[Dict]]]:
    """``{(recipe, loss, 'best' | 'shared'): (set-up, variant, mAP over FINAL_SEEDS)}``
    (rules 3 and 4); a set-up not yet decided, or a variant without every final seed,
    is None."""
    final = {}
    for recipe, _ in RECIPES:
        shared = shared_setup(study, list(setups), recipe)
        for loss, _ in FAIR_LOSSES:
            best = best_setup(study, list(setups), recipe, loss)
            for kind, setup in (('best', best), ('shared', shared)):
                name = fair_name(setup, recipe, loss) if setup else None
                stat = _on(maps_by_seed(study, name), FINAL_SEEDS) if name else None
                final[recipe, loss, kind] = (setup, name, stat)
    return final


def render_fair_table(study: Dict, results: str = 'docs/results') -> str:
    """Markdown table: per recipe, each loss at its best candidate and at the shared
    set-up, mAP over :data:`FINAL_SEEDS` and its ratio to FL's; cells not yet
    decided or trained say what is missing."""
    setups = candidate_setups(study)
    if setups is None:
        return UNDECIDED
    head = ' | '.join(f'{title}: {what}' for _, title in RECIPES
                      for what in ('best set-up', 'mAP there', '÷ FL', 'mAP at the shared set-up',
                                   '÷ FL'))
    lines = [f'| loss | {head} |', '| --- |' + ' --- | ---: | ---: | ---: | ---: |' * len(RECIPES)]
    final = final_results(study, setups)
    for loss, title in FAIR_LOSSES:
        cells = []
        for recipe, _ in RECIPES:
            for kind in ('best', 'shared'):
                setup, name, stat = final[recipe, loss, kind]
                fl_stat = final[recipe, 'fl', kind][2]
                if kind == 'best':
                    cells.append(f'`{setup}`' if setup else 'tuning runs missing')
                if stat is None:
                    cells += ['seeds missing' if setup else '–', '–']
                    continue
                cells.append(f'[{format_mean_std(stat)}]({runs_link(results, name)})')
                cells.append(f'{stat["mean"] / fl_stat["mean"]:.2f}'
                             if fl_stat and fl_stat['mean'] else '–')
        lines.append(f'| {title} | ' + ' | '.join(cells) + ' |')
    shared = ', '.join(f'{title}: `{final[recipe, "fl", "shared"][0] or "not decided"}`'
                       for recipe, title in RECIPES)
    candidates = ', '.join(f'`{s}`' for s in setups)
    return '\n'.join(lines) + f'\n\nCandidates: {candidates}. Shared set-up: {shared}.'


def _tuning_cell(study: Dict, setup: str, recipe: str, loss: str, results: str) -> str:
    """One loss on one candidate: mAP over the tuning seeds it has, and over FL's on the
    same seeds; what is missing, said."""
    name = fair_name(setup, recipe, loss)
    maps = maps_by_seed(study, name)
    seeds = [s for s in TUNING_SEEDS if s in maps]
    if not seeds:
        return 'not trained'
    stat = mean_std([maps[s] for s in seeds])
    text = f'[{format_mean_std(stat)}]({runs_link(results, name)})'
    fl = maps_by_seed(study, fair_name(setup, recipe, 'fl'))
    if loss != 'fl' and all(s in fl for s in seeds):
        fl_mean = mean_std([fl[s] for s in seeds])['mean']
        if fl_mean > 0:
            text += f' (÷ FL {stat["mean"] / fl_mean:.2f})'
    missing = [s for s in TUNING_SEEDS if s not in maps]
    if missing:
        text += f'; seed {", ".join(map(str, missing))} missing'
    return text


def render_tuning_table(study: Dict, results: str = 'docs/results') -> str:
    """Markdown table of the grid's tuning runs (rule 2) as they land: per recipe and
    loss, each candidate's mAP over the tuning seeds (and over FL's on the same seeds);
    a loss's best candidate (rule 3) in bold once it has every candidate."""
    setups = candidate_setups(study)
    if setups is None:
        return UNDECIDED
    lines = ['| recipe | loss | ' + ' | '.join(f'`{s}`' for s in setups) + ' |',
             '| --- | --- |' + ' ---: |' * len(setups)]
    for recipe, recipe_title in RECIPES:
        for loss, title in FAIR_LOSSES:
            best = best_setup(study, list(setups), recipe, loss)
            cells = []
            for setup in setups:
                cell = _tuning_cell(study, setup, recipe, loss, results)
                cells.append(f'**{cell}**' if setup == best else cell)
            lines.append(f'| {recipe_title} | {title} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + (
        f'\n\nmAP, mean ± std over seeds {", ".join(map(str, TUNING_SEEDS))} (the tuning '
        'seeds); bold: the loss\'s best candidate, once it has them all.')


def _tuning_progress(study: Dict, setups: Sequence[str], recipe: str) -> Tuple[int, int]:
    """``(recorded, all)`` tuning runs of a recipe (rule 2)."""
    wanted = [(fair_name(setup, recipe, loss), seed) for setup in setups
              for loss, _ in FAIR_LOSSES for seed in TUNING_SEEDS]
    return sum(seed in maps_by_seed(study, name) for name, seed in wanted), len(wanted)


def final_runs_missing(study: Dict, final: Dict, recipe: str) -> List[Tuple[str, int]]:
    """``(variant, seed)`` still to train for rules 3 and 4 of ``recipe``: the
    :data:`FINAL_SEEDS` missing at each loss's best and at the shared set-up, where
    those are decided (``final``: :func:`final_results`)."""
    missing = set()
    for loss, _ in FAIR_LOSSES:
        for kind in ('best', 'shared'):
            _, name, stat = final[recipe, loss, kind]
            if name is not None and stat is None:
                have = maps_by_seed(study, name)
                missing |= {(name, seed) for seed in FINAL_SEEDS if seed not in have}
    return sorted(missing)


def study_commands(runs: Sequence[Tuple[str, int]]) -> str:
    """The ``tools/study.py`` command lines that train ``runs`` (one per set of seeds),
    as inline code joined by ``, ``."""
    seeds_of = {}
    for name, seed in runs:
        seeds_of.setdefault(name, []).append(seed)
    names_by_seeds = {}
    for name, seeds in seeds_of.items():
        names_by_seeds.setdefault(tuple(sorted(seeds)), []).append(name)
    return ', '.join(f'`python3 tools/study.py --variants {" ".join(sorted(names))} '
                     f'--seeds {" ".join(map(str, seeds))}`'
                     for seeds, names in sorted(names_by_seeds.items()))


def render_fair_summary(study: Dict, results: str = 'docs/results') -> str:
    """The fair grid's verdict, one paragraph per recipe: each loss at its best set-up
    and all at the shared one, over :data:`FINAL_SEEDS`, GHM's settings judged against
    FL by :func:`~mmdet_ghm.comparison.verdict.verdict`; while runs are missing, how
    many of the tuning runs are recorded."""
    from ..comparison.verdict import verdict
    setups = candidate_setups(study)
    if setups is None:
        return UNDECIDED
    final = final_results(study, setups)
    seeds = f'seeds {FINAL_SEEDS[0]}-{FINAL_SEEDS[-1]}'
    paragraphs = []
    for recipe, title in RECIPES:
        parts = []
        for kind in ('best', 'shared'):
            cells = [final[recipe, loss, kind] for loss, _ in FAIR_LOSSES]
            if any(stat is None for _, _, stat in cells):
                continue
            fl = final[recipe, 'fl', kind][2]
            described = []
            for (loss, loss_title), (setup, name, stat) in zip(FAIR_LOSSES, cells):
                text = f'{loss_title} [{format_mean_std(stat)}]({runs_link(results, name)})'
                notes = [f'`{setup}`'] if kind == 'best' else []
                if loss.startswith('ghm'):
                    word = verdict(stat, fl)[0]
                    notes.append(f'{stat["mean"] / fl["mean"]:.2f} of FL, {word}'
                                 if fl['mean'] else word)
                described.append(text + (f' ({"; ".join(notes)})' if notes else ''))
            where = ('each loss at its own best set-up' if kind == 'best'
                     else f'every loss at the shared set-up `{cells[0][0]}`')
            parts.append(f'{where}: ' + ', '.join(described))
        done, total = _tuning_progress(study, list(setups), recipe)
        if done < total:
            paragraphs.append(f'**{title}**: not decided yet ({done} of {total} tuning runs '
                              'recorded; then seed 2 at each loss\'s best and at the shared '
                              'set-up).')
            continue
        missing = final_runs_missing(study, final, recipe)
        if missing:
            decided = f', {seeds}: ' + '; '.join(parts) + '; the rest' if parts else ':'
            paragraphs.append(f'**{title}**{decided} not decided yet (every tuning run '
                              f'recorded; still to train: {study_commands(missing)}).')
        else:
            paragraphs.append(f'**{title}**, {seeds}: ' + '; '.join(parts) + '.')
    return '\n\n'.join(paragraphs)
