"""How each crowns set-up's anchors and assigner cover the crowns (issue 35), beside GHM's share.

Reads the records of ``tools/analysis_tools/anchor_coverage_records.py`` kept under
``docs/results/analysis/anchor_coverage/<set-up>.json``: the anchor-coverage report
(:func:`mmdet_ghm.analysis.anchor_coverage.anchor_coverage`) of the train split as a
set-up trains on it, for the corrected cell (``corrected``) and each ablation factor
that changes the anchors, the assigner, the neck or the train pipeline. The
``ablation-coverage`` block sets each set-up's positives per crown beside the change
of GHM's share of FL's mAP it brought (:func:`~mmdet_ghm.study.ablation.ablation_rows`).
"""
import posixpath
from typing import Dict, List, Optional

from .ablation import LOSSES, ablation_rows, cell_name
from .analysis_records import load_analysis_records, provenance
from .summaries import maps_by_seed
from .variants import ABLATION_FACTORS, CORRECTED_SETUP

#: Where the records are, relative to ``docs/results``.
COVERAGE_DIR = 'analysis/anchor_coverage'
#: Override keys that change which anchors a crown gets: a factor with one of
#: them has its own coverage record; the others share the corrected cell's.
COVERAGE_KEYS = ('model.bbox_head.anchor_generator', 'model.neck', 'model.train_cfg.assigner',
                 'train_dataloader.dataset.pipeline')


def changes_coverage(overrides: Dict) -> bool:
    """Whether a set-up's overrides change the anchors, the assigner or the boxes trained on."""
    return any(key.startswith(COVERAGE_KEYS) for key in overrides)


def coverage_setups() -> List[str]:
    """The set-ups with their own coverage record: the corrected cell, then the factors."""
    return [CORRECTED_SETUP] + [factor for factor, (_, overrides, _) in ABLATION_FACTORS.items()
                                if changes_coverage(overrides)]


def load_coverage_records(results_dir: str) -> Dict[str, dict]:
    """``{set-up: record}`` of every anchor-coverage record."""
    return load_analysis_records(results_dir, COVERAGE_DIR)


def coverage_record(report: dict, setup: str, variant: str, config: str, overrides: Dict,
                    code: dict, env: dict) -> dict:
    """The committed record of one set-up's coverage (``report``: ``anchor_coverage``'s)."""
    return dict(
        setup=setup, variant=variant, config=config, cfg_options=overrides, report=report,
        provenance=provenance(code, env, 'tools/analysis_tools/anchor_coverage_records.py'))


def coverage_summary(record: dict) -> Dict[str, Optional[float]]:
    """Positives per crown (mean, median), the share of crowns without an anchor at the
    positive IoU threshold and without any positive, and the number of crowns."""
    overall = record['report']['overall']
    per_box = overall.get('positives_per_box') or {}
    return dict(positives_mean=per_box.get('mean'), positives_median=per_box.get('median'),
                uncovered=overall.get('uncovered_share'),
                no_positive=overall.get('no_positive_share'), boxes=overall.get('num_boxes'))


def render_coverage_table(study: Dict, records: Dict[str, dict],
                          results: str = 'docs/results') -> str:
    """Markdown table: each set-up's coverage of the crowns beside GHM's share of FL's mAP."""
    if CORRECTED_SETUP not in records:
        return '_No anchor-coverage records yet._'
    shares = {row['factor']: row for row in ablation_rows(study)}
    cell = {loss: maps_by_seed(study, cell_name(loss)) for loss in LOSSES}
    cell_seeds = sorted(set(cell['fl']) & set(cell['ghm']))
    lines = ['| set-up | positives per crown: mean (median) | crowns with no anchor at the '
             'positive IoU | crowns with no positive | GHM ÷ FL (seeds) | change of the '
             'share |', '| --- | ---: | ---: | ---: | ---: | ---: |']

    def pct(value):
        return '–' if value is None else f'{100 * value:.1f} %'
    for setup in coverage_setups():
        record = records.get(setup)
        if record is None:
            continue
        s = coverage_summary(record)
        link = posixpath.join(results, COVERAGE_DIR, f'{setup}.json')
        row = shares.get(setup)
        if setup == CORRECTED_SETUP:
            fl, ghm = (sum(cell[loss][k] for k in cell_seeds) for loss in LOSSES)
            share = f'{ghm / fl:.2f} ({", ".join(map(str, cell_seeds))})' if fl else '–'
            change = '–'
            name = 'the corrected cell'
        else:
            measured = row is not None and row['share'] is not None
            share = (f'{row["share"]:.2f} ({", ".join(map(str, row["seeds"]))})'
                     if measured else 'not trained yet')
            change = ('–' if not measured or row['change'] is None
                      else f'{row["change"] + 0.0:+.2f}'.replace('-0.00', '+0.00'))
            name = f'`{setup}`'
        positives = (f'{s["positives_mean"]:.1f} ({s["positives_median"]:g})'
                     if s['positives_mean'] is not None else '–')
        lines.append(f'| [{name}]({link}) | {positives} | {pct(s["uncovered"])} '
                     f'| {pct(s["no_positive"])} | {share} | {change} |')
    return '\n'.join(lines)
