"""From run records to ``study.json``, Markdown tables and a plot of mAP over epochs.

``study.json`` is meant to be read by other tools: a top-level ``variants``
object, one entry per variant, each with ``runs`` (items carry at least
``seed`` and the final ``bbox_mAP``) and the aggregate ``mean`` / ``std`` of
``bbox_mAP`` (sample standard deviation over seeds, ``null`` for one seed).
The result tables of the README and of ``docs/study.md`` are generated from
it (:func:`update_study_blocks`), never typed by hand; their links to the
records are relative to the page they are on (``results``: the path from
that page to ``docs/results``).
"""
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence

from mmdet_ghm.utils.doc_blocks import block_pattern, regenerate_blocks

from .mechanism import mean_cls_grad
from .summaries import format_mean_std, mean_std, runs_link
from .variants import LITE0_PREFIX, REGIMES, VARIANTS

STUDY_SCHEMA = 1
#: Panels of the plot and table blocks of the pages, in order.
GROUPS = ('main', 'families', 'options', 'halves', 'noise', '60e', 'heads', 'shapes-sgd',
          'crowns-adamw', 'crowns-sgd', 'caps', 'recipe-check', 'crowns-tuning',
          'crowns-longer', 'lite0-pretrained-shapes-adamw', 'lite0-pretrained-shapes-sgd',
          'lite0-pretrained-crowns-adamw', 'lite0-pretrained-crowns-sgd', 'lite0-scratch',
          'lite0-tuning', 'lite0-corrected-crowns-adamw', 'lite0-corrected-crowns-sgd',
          'lite0-ablation')
#: Name prefix of each regime's grid (:data:`~mmdet_ghm.study.variants.REGIMES`),
#: by the block that shows it: ``grid`` is the from-scratch tiny R-18 RetinaNet,
#: ``grid-pretrained`` the ImageNet-pretrained EfficientNet-Lite0 one.
GRID_PREFIXES = {'grid': REGIMES['tiny']['prefix'],
                 'grid-pretrained': REGIMES['lite0-pretrained']['prefix'],
                 'grid-corrected': REGIMES['lite0-corrected']['prefix']}
#: The control of the pretrained regime: (loss key, row title) x recipe, the
#: pretrained network against the same network from scratch, on the crowns.
CONTROL_ROWS = (('fl', 'FL'), ('ghm', 'GHM, published'))
CONTROL_PREFIXES = ((REGIMES['lite0-pretrained']['prefix'], 'pretrained'),
                    (REGIMES['lite0-scratch']['prefix'], 'from scratch'))
#: Rows of the data set x recipe table: (loss key, what the row calls it).
GRID_ROWS = (('ce', 'CE'), ('fl', 'FL'), ('ghm', 'GHM, published'),
             ('ghm-ref', 'GHM, MMDetection reference'), ('ghm-cap10', 'GHM, cap 10'),
             ('ghm-cap30', 'GHM, cap 30'), ('ghm-cap', 'GHM, cap 100'),
             ('ghm-cap300', 'GHM, cap 300'))
#: Columns: (data set, recipe, heading).
GRID_COLUMNS = (('shapes', 'adamw', 'synthetic, AdamW'), ('shapes', 'sgd', 'synthetic, SGD step'),
                ('crowns', 'adamw', 'tree crowns, AdamW'), ('crowns', 'sgd', 'tree crowns, SGD step'))
#: The corrected crowns cells (issue 35): the grid's losses and GHM's two halves,
#: crowns columns only (rows, columns of :func:`render_grid_table`).
CORRECTED_LAYOUT = ((('ce', 'CE + L1'), ('fl', 'FL + L1'), ('ghmc-l1', 'GHM-C + L1'),
                     ('fl-ghmr', 'FL + GHM-R'), ('ghm', 'GHM-C + GHM-R, published'),
                     ('ghm-cap', 'GHM-C + GHM-R, cap 100')), GRID_COLUMNS[2:])
#: Panels per row of the plot.
PLOT_COLUMNS = 5
#: Variants drawn for comparison in every panel of the tiny R-18 but ``main``.
CONTEXT = ('fl', 'ghm')


def _curve(records: Sequence[dict]) -> List[Dict]:
    by_epoch: Dict[int, List[float]] = {}
    for record in records:
        for point in record['val_curve']:
            if point.get('bbox_mAP') is not None:
                by_epoch.setdefault(point['epoch'], []).append(point['bbox_mAP'])
    return [dict(epoch=epoch, **mean_std(values)) for epoch, values in sorted(by_epoch.items())]


def _ghm_stats(records: Sequence[dict]) -> Dict[str, Dict]:
    """Mean over seeds of each GHM statistic at the first and the last epoch."""
    out = {}
    for when, pick in (('first_epoch', 0), ('last_epoch', -1)):
        keys = sorted({k for r in records if r.get('ghm_stats') for k in r['ghm_stats'][pick]
                       if k != 'epoch'})
        if keys:
            out[when] = {k: mean_std([r['ghm_stats'][pick].get(k) for r in records
                                      if r.get('ghm_stats')])['mean'] for k in keys}
    return out


def aggregate(records: Iterable[dict]) -> Dict:
    """The ``study.json`` object of a set of records (see the module docstring).

    ``signature``: per GHM-C run, its late weight share of g >= 0.5 against its
    mAP relative to FL (:func:`~mmdet_ghm.study.diagnosis.signature_rows`).
    """
    records = list(records)
    grouped: Dict[str, List[dict]] = OrderedDict()
    for record in sorted(records, key=lambda r: (r['variant'], r['seed'])):
        grouped.setdefault(record['variant'], []).append(record)
    variants = OrderedDict()
    for name, runs in grouped.items():
        spec = runs[0].get('variant_spec') or (VARIANTS[name].describe() if name in VARIANTS
                                               else dict(name=name, label=name, group='other'))
        final = mean_std([r['bbox_mAP'] for r in runs])
        variants[name] = dict(
            label=spec['label'], group=spec.get('group', 'other'), config=spec['config'],
            overrides=spec.get('overrides', {}), noise=spec.get('noise'),
            epochs=runs[0].get('epochs'), n=final['n'], mean=final['mean'], std=final['std'],
            AP50=mean_std([r['final'].get('AP50') for r in runs]),
            s_per_iter=mean_std([r.get('s_per_iter') for r in runs])['mean'],
            train_wall_s=mean_std([r.get('train_wall_s') for r in runs])['mean'],
            peak_rss_mib=max((r['peak_rss_mib'] for r in runs if r.get('peak_rss_mib')),
                             default=None),
            curve=_curve(runs), ghm_stats=_ghm_stats(runs), cls_grad=mean_cls_grad(runs),
            runs=[dict(seed=r['seed'], bbox_mAP=r['bbox_mAP'], AP50=r['final'].get('AP50'),
                       record=f'docs/results/runs/{r["record"]}' if 'record' in r else None,
                       commit=(r.get('code') or {}).get('commit'),
                       date=(r.get('env') or {}).get('date')) for r in runs])
    from .diagnosis import signature_rows
    return dict(schema=STUDY_SCHEMA,
                metric='COCO bbox mAP on the val split after the last epoch',
                std='sample standard deviation over seeds (ddof=1); null for one seed',
                variants=variants, signature=signature_rows(records))


def _at_epoch(variant: Dict, epoch: int) -> Optional[Dict]:
    return next((p for p in variant['curve'] if p['epoch'] == epoch), None)


def render_table(study: Dict, group: str, results: str = 'docs/results') -> str:
    """Markdown table of one group of variants (mean ± std over seeds).

    Columns: final mAP and AP50, and the mAP at epochs 10 and 20 (and 30 when
    the group trains longer), which show the speed of convergence; each row
    links its records (:func:`runs_link`).
    """
    names = [n for n, v in study['variants'].items() if v['group'] == group]
    if not names:
        return '_No runs recorded yet._'
    longest = max(study['variants'][n].get('epochs') or 30 for n in names)
    marks = (10, 20, 30) if longest > 30 else (10, 20)
    lines = ['| variant | seeds | bbox mAP (final) | AP50 (final) | '
             + ' | '.join(f'mAP at epoch {e}' for e in marks) + ' | records |',
             '| --- | ---: | ---: | ---: |' + ' ---: |' * len(marks) + ' --- |']
    for name in names:
        v = study['variants'][name]
        at = ' | '.join(format_mean_std(_at_epoch(v, e)) for e in marks)
        lines.append(f'| `{name}`: {v["label"]} | {v["n"]} | {format_mean_std(v)} '
                     f'| {format_mean_std(v["AP50"])} | {at} | [runs]({runs_link(results, name)}) |')
    return '\n'.join(lines)


#: GHMStatsHook keys shown by :func:`render_stats_table` (GHM-C's, the ``cls`` loss).
STATS_COLUMNS = (('cls/regions', 'non-empty regions', 1), ('cls/w_hard_half',
                 'weight share of g ≥ 0.5', 3), ('cls/beta_max', 'largest β', 0),
                 ('cls/w_pos', 'weight share of the positives', 3))


def render_stats_table(study: Dict) -> str:
    """Markdown table of GHM-C's statistics in the first and the last epoch (seed means)."""
    rows = [(name, v) for name, v in study['variants'].items()
            if v['ghm_stats'].get('last_epoch', {}).get('cls/regions') is not None]
    if not rows:
        return '_No runs recorded yet._'
    head = ' | '.join(f'{title} (first → last epoch)' for _, title, _ in STATS_COLUMNS)
    lines = [f'| variant | {head} |', '| --- |' + ' ---: |' * len(STATS_COLUMNS)]
    for name, v in rows:
        cells = []
        for key, _, digits in STATS_COLUMNS:
            first, last = (v['ghm_stats'].get(when, {}).get(key)
                           for when in ('first_epoch', 'last_epoch'))
            cells.append('–' if first is None or last is None else
                         f'{first:.{digits}f} → {last:.{digits}f}')
        lines.append(f'| `{name}` | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def grid_name(dataset: str, recipe: str, key: str, prefix: str = '') -> str:
    """The variant name of a loss setting in one data set x recipe cell of a regime
    (``prefix``: :data:`GRID_PREFIXES`)."""
    return (prefix + ('' if dataset == 'shapes' else f'{dataset}-')
            + ('' if recipe == 'adamw' else f'{recipe}-') + key)


def _cell_stat(study: Dict, name: str, metric: str) -> Optional[Dict]:
    v = study['variants'].get(name)
    if v is None:
        return None
    return dict(mean=v['mean'], std=v['std'], n=v['n']) if metric == 'bbox_mAP' else \
        dict(v['AP50'], n=v['n'])


def _cell(study: Dict, name: str, metric: str, results: str, bold: bool = False) -> str:
    st = _cell_stat(study, name, metric)
    if not st or st['mean'] is None:
        return '–'
    text = f'{format_mean_std(st)} (n={st["n"]})'
    return f'[{"**" + text + "**" if bold else text}]({runs_link(results, name)})'


def render_grid_table(study: Dict, metric: str = 'bbox_mAP',
                      results: str = 'docs/results', prefix: str = '',
                      rows=GRID_ROWS, columns=GRID_COLUMNS) -> str:
    """Markdown table: loss settings x (data set, recipe), mean ± std (seeds) of ``metric``.

    ``metric`` is ``bbox_mAP`` or ``AP50``; ``prefix`` picks the regime's
    variants (:data:`GRID_PREFIXES`); ``rows`` and ``columns`` as
    :data:`GRID_ROWS` and :data:`GRID_COLUMNS`; a cell links the variant's records
    (:func:`runs_link`). The best mean of each column is in bold; a loss
    setting with no run in any column has no row.
    """
    best = {}
    for dataset, recipe, _ in columns:
        means = [_cell_stat(study, grid_name(dataset, recipe, key, prefix), metric)
                 for key, _ in rows]
        means = [m['mean'] for m in means if m and m['mean'] is not None]
        best[dataset, recipe] = max(means) if means else None
    head = ' | '.join(title for _, _, title in columns)
    lines = [f'| loss | {head} |', '| --- |' + ' ---: |' * len(columns)]
    for key, title in rows:
        cells = []
        for dataset, recipe, _ in columns:
            name = grid_name(dataset, recipe, key, prefix)
            st = _cell_stat(study, name, metric)
            cells.append(_cell(study, name, metric, results,
                               bold=bool(st) and st['mean'] == best[dataset, recipe]))
        if any(cell != '–' for cell in cells):
            lines.append(f'| {title} | ' + ' | '.join(cells) + ' |')
    if len(lines) == 2:
        return '_No runs recorded yet._'
    return '\n'.join(lines)


def render_control_table(study: Dict, results: str = 'docs/results') -> str:
    """Markdown table: the pretrained EfficientNet-Lite0 RetinaNet against the same
    network from scratch (FL and published GHM on the tree crowns, per recipe),
    final bbox mAP, mean ± std over seeds."""
    columns = [(recipe, prefix, f'{title}, {label}')
               for recipe, title in (('adamw', 'AdamW'), ('sgd', 'SGD step'))
               for prefix, label in CONTROL_PREFIXES]
    lines = ['| loss | ' + ' | '.join(head for _, _, head in columns) + ' |',
             '| --- |' + ' ---: |' * len(columns)]
    for key, title in CONTROL_ROWS:
        cells = [_cell(study, grid_name('crowns', recipe, key, prefix), 'bbox_mAP', results)
                 for recipe, prefix, _ in columns]
        lines.append(f'| {title} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def render_cost_table(study: Dict, prefix: str = LITE0_PREFIX) -> str:
    """Markdown table of what the runs of the variants named ``prefix...`` cost:
    seconds per iteration and training minutes (means over seeds), the largest
    peak resident memory."""
    rows = [(name, v) for name, v in study['variants'].items() if name.startswith(prefix)]
    if not rows:
        return '_No runs recorded yet._'

    def num(value, scale=1.0, digits=2):
        return '–' if value is None else f'{value / scale:.{digits}f}'
    lines = ['| variant | runs | epochs | s/iter | training minutes | peak memory (GiB) |',
             '| --- | ---: | ---: | ---: | ---: | ---: |']
    for name, v in rows:
        lines.append(f'| `{name}` | {v["n"]} | {v.get("epochs") or "–"} '
                     f'| {num(v.get("s_per_iter"))} | {num(v.get("train_wall_s"), 60, 0)} '
                     f'| {num(v.get("peak_rss_mib"), 1024, 1)} |')
    return '\n'.join(lines)


BLOCK = block_pattern('study', r'[\w-]+')


def update_study_blocks(text: str, study: Dict, results: str = 'docs/results',
                        analysis: Optional[Dict[str, dict]] = None,
                        coverage: Optional[Dict[str, dict]] = None,
                        errors: Optional[Dict[str, dict]] = None) -> str:
    """``text`` (a Markdown page) with every ``<!-- study:GROUP:begin/end -->`` block regenerated.

    ``GROUP`` is a variant group (:data:`GROUPS`), ``ghm-stats``
    (:func:`render_stats_table`), ``grid``, ``grid-pretrained``, ``grid-corrected`` and their
    ``-ap50`` forms (:func:`render_grid_table`), ``pretrained-control``
    (:func:`render_control_table`), ``pretrained-cost`` (:func:`render_cost_table`),
    ``ablation-factors`` / ``ablation-summary`` (the crowns factor ablation,
    :mod:`~mmdet_ghm.study.ablation`), ``fair-grid`` / ``fair-grid-tuning`` /
    ``fair-grid-summary`` (the fair grid's final table, its tuning runs as they land, its
    verdict; :mod:`~mmdet_ghm.study.fair_grid`),
    ``decomposition-summary`` (GHM's halves against FL + L1 in the corrected crowns
    cells, :mod:`~mmdet_ghm.study.decomposition`),
    ``checklist`` (the users' checklist, :mod:`~mmdet_ghm.study.checklist`)
    or ``signature`` / ``signature-detail`` / ``signature-errors`` (the signature's false
    alarms and misses per way of sampling the statistics), each also with ``-lite0``
    (the EfficientNet-Lite0 runs only; :mod:`~mmdet_ghm.study.diagnosis`).
    ``ablation-coverage`` the anchor-coverage records ``coverage`` beside the factors'
    change of GHM's share (:func:`~mmdet_ghm.study.coverage.render_coverage_table`;
    records from :func:`~mmdet_ghm.study.coverage.load_coverage_records`).
    ``cls-gradient-share`` the positives' share of the classification gradient over
    training (:func:`~mmdet_ghm.study.mechanism.render_cls_gradient_table`).
    ``gradient-split`` renders the gradient-split records ``analysis``
    (:func:`~mmdet_ghm.study.mechanism.load_gradient_splits`; their train split).
    ``detection-errors`` / ``detection-errors-val`` the AP and recall by IoU of the
    GHM-side models against FL's, ``detection-errors-anchors`` which anchors their top
    boxes come from (train split), from the records ``errors``
    (:func:`~mmdet_ghm.study.detection_errors.load_detection_errors`; train / val split).
    ``results`` is the path from the page to ``docs/results``: ``docs/results``
    for the README, ``results`` for ``docs/study.md``.
    """
    def render(group):
        if group == 'ghm-stats':
            return render_stats_table(study)
        if group.startswith('signature'):
            from .diagnosis import (render_signature_detail, render_signature_errors,
                                    render_signature_table)
            rows = study.get('signature') or []
            kind = group
            if group.endswith('-lite0'):  # recorded after the thresholds were set: they test them
                rows = [r for r in rows if r['variant'].startswith(LITE0_PREFIX)]
                kind = group[:-len('-lite0')]
            render_rows = {'signature': render_signature_table,
                           'signature-detail': render_signature_detail,
                           'signature-errors': render_signature_errors}.get(kind)
            if render_rows is None:
                raise ValueError(f'unknown study block {group!r}: the signature blocks are '
                                 'signature, signature-detail and signature-errors (each also '
                                 'with -lite0)')
            return render_rows(rows)
        if group.startswith('grid'):
            regime = group[:-len('-ap50')] if group.endswith('-ap50') else group
            layout = CORRECTED_LAYOUT if regime == 'grid-corrected' else (GRID_ROWS, GRID_COLUMNS)
            return render_grid_table(study, 'AP50' if group.endswith('-ap50') else 'bbox_mAP',
                                     results, GRID_PREFIXES[regime], *layout)
        if group == 'pretrained-control':
            return render_control_table(study, results)
        if group == 'pretrained-cost':
            return render_cost_table(study)
        if group == 'gradient-split':
            if analysis is None:
                raise ValueError('the gradient-split block needs the records: pass analysis='
                                 'load_gradient_splits(<docs/results>)')
            from .mechanism import render_gradient_split_table
            return render_gradient_split_table(analysis, results)
        if group in ('detection-errors', 'detection-errors-val', 'detection-errors-anchors'):
            if errors is None:
                raise ValueError(f'the {group} block needs the records: pass '
                                 'errors=load_detection_errors(<docs/results>)')
            from .detection_errors import (render_anchor_roles_table,
                                           render_detection_errors_table)
            if group == 'detection-errors-anchors':
                return render_anchor_roles_table(errors, results)
            return render_detection_errors_table(
                errors, results, 'val' if group.endswith('-val') else 'train')
        if group == 'ablation-coverage':
            if coverage is None:
                raise ValueError('the ablation-coverage block needs the records: pass '
                                 'coverage=load_coverage_records(<docs/results>)')
            from .coverage import render_coverage_table
            return render_coverage_table(study, coverage, results)
        if group == 'cls-gradient-share':
            from .mechanism import render_cls_gradient_table
            return render_cls_gradient_table(study, results)
        if group == 'fair-grid':
            from .fair_grid import render_fair_table
            return render_fair_table(study, results)
        if group == 'checklist':
            from .checklist import render_checklist
            return render_checklist(study, results)
        if group == 'fair-grid-tuning':
            from .fair_grid import render_tuning_table
            return render_tuning_table(study, results)
        if group == 'fair-grid-summary':
            from .fair_grid import render_fair_summary
            return render_fair_summary(study, results)
        if group == 'decomposition-summary':
            from .decomposition import render_decomposition_summary
            return render_decomposition_summary(study, results)
        if group in ('ablation-factors', 'ablation-summary'):
            from .ablation import ablation_rows, render_ablation_summary, render_ablation_table
            return (render_ablation_table(study, results) if group == 'ablation-factors'
                    else render_ablation_summary(ablation_rows(study), results=results))
        return render_table(study, group, results)

    return regenerate_blocks(text, BLOCK, render)[0]


def plot_study(study: Dict, path: str) -> None:
    """mAP over epochs, mean ± std band per variant, one panel per group."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    groups = [g for g in GROUPS if any(v['group'] == g for v in study['variants'].values())]
    if not groups:
        return
    cols = min(len(groups), PLOT_COLUMNS)
    rows = -(-len(groups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax, group in zip(axes.flat, groups):
        names = [n for n, v in study['variants'].items() if v['group'] == group]
        with_context = group != 'main' and not group.startswith('lite0')  # another network
        if with_context:
            names = [n for n in CONTEXT if n in study['variants'] and n not in names] + names
        for name in names:
            curve = study['variants'][name]['curve']
            epochs = [p['epoch'] for p in curve]
            mean = [p['mean'] for p in curve]
            std = [p['std'] or 0.0 for p in curve]
            context = with_context and name in CONTEXT
            line, = ax.plot(epochs, mean, 'o-', ms=3, lw=1 if context else 1.8,
                            alpha=0.5 if context else 1.0,
                            label=f'{name} (n={study["variants"][name]["n"]})')
            ax.fill_between(epochs, [m - s for m, s in zip(mean, std)],
                            [m + s for m, s in zip(mean, std)], color=line.get_color(),
                            alpha=0.15)
        ax.set_title(group)
        ax.set_xlabel('epoch')
        ax.set_ylabel('val bbox mAP')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def text_table(study: Dict) -> str:
    """Plain-text summary for the terminal: mean ± std over seeds per variant."""
    head = ('variant', 'seeds', 'bbox mAP', 'AP50', 's/iter')
    rows = [(name, str(v['n']), format_mean_std(v), format_mean_std(v['AP50']),
             f'{v["s_per_iter"]:.3f}' if v.get('s_per_iter') else '–')
            for name, v in study['variants'].items()]
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ['  '.join(c.ljust(w) for c, w in zip(head, widths))]
    lines.append('-' * len(lines[0]))
    lines += ['  '.join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return '\n'.join(lines)
