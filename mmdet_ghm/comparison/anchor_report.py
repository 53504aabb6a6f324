"""The report's anchor section: how well the config's anchors fit the training boxes.

On the tree crowns, how the anchors fit the boxes decided much of GHM's
standing against FL (docs/study.md), so a comparison says it beside its
verdict: the share of training boxes with no anchor at the positive IoU
threshold, the positives per box, the best-anchor IoU, and the
``octave_base_scale`` that leaves the fewest boxes uncovered
(:mod:`mmdet_ghm.analysis.anchor_coverage`, the same numbers as
``tools/analysis_tools/anchor_coverage.py``). Measured once per work dir
(``anchors.json``) on a seeded sample of the train split through its pipeline.
"""
import json
import os.path as osp
from typing import Dict, Optional

from mmdet_ghm.study.records import write_json_atomic

#: Train images drawn for the report (all of a smaller split): enough for shares
#: to a point or two, and a few seconds to a minute on a CPU.
SAMPLES = 200
CACHE = 'anchors.json'


def measure(cfg, samples: int = SAMPLES) -> Dict:
    """Coverage and the suggestion on ``samples`` train images; ``{'error': ...}`` for a head
    the measure does not cover (anchor-free, another assigner)."""
    from mmdet_ghm.analysis.anchor_coverage import anchor_coverage, suggest_octave_base_scale
    from mmdet_ghm.analysis.training_boxes import collect_boxes, coverage_inputs, head_settings
    try:
        settings = head_settings(cfg)
    except ValueError as error:
        return dict(error=str(error))
    data = collect_boxes(cfg, 'train', augment=True, samples=samples, seed=0)
    if not any(len(b) for b in data['gt_bboxes']):
        return dict(error='the train split holds no ground-truth boxes')
    inputs = coverage_inputs(settings, data)
    coverage = anchor_coverage(**inputs)
    if coverage['num_boxes'] == 0:
        return dict(error='every box of the train split is ignored')
    try:
        suggestion = suggest_octave_base_scale(**inputs)
    except ValueError as error:
        suggestion = dict(error=str(error))
    return dict(coverage=coverage, suggestion=suggestion,
                images=len(data['gt_bboxes']), split_images=data['split_images'])


def cached_measure(cfg, work_dir: str, cwd: str) -> Dict:
    """:func:`measure` once per work dir (a work dir holds one config)."""
    path = osp.join(work_dir, CACHE)
    if osp.isfile(path):
        with open(path) as f:
            return json.load(f)
    from .engine import in_dir
    with in_dir(cwd):  # the config's data paths are relative to where the runs start
        result = measure(cfg)
    write_json_atomic(path, result)
    return result


def _pct(share: Optional[float]) -> str:
    return '–' if share is None else f'{100 * share:.1f} %'


def render(result: Dict) -> str:
    """The Markdown of the section."""
    if 'error' in result:
        return f'Not measured: {result["error"]}.'
    cov, overall = result['coverage'], result['coverage']['overall']
    s = cov['settings']
    pos = overall['positives_per_box']
    lines = [
        f'{cov["num_boxes"]} training boxes ({result["images"]} of {result["split_images"]} '
        f'train images through the train pipeline, seed 0; {cov["num_ignored"]} ignored boxes '
        f'left out), MaxIoUAssigner pos_iou_thr={s["pos_iou_thr"]}:',
        '',
        f'- **{_pct(overall["uncovered_share"])} of the boxes have no anchor at IoU >= '
        f'{s["pos_iou_thr"]}** ({_pct(overall["low_quality_only_share"])} get positives only '
        f'through low-quality matching, {_pct(overall["no_positive_share"])} none);',
        f'- positives per box: mean {pos["mean"]:.2f}, median {pos["median"]:g}; best-anchor '
        f'IoU median {overall["best_iou"]["median"]:.2f} (5 % below '
        f'{overall["best_iou"]["q05"]:.2f});',
    ]
    levels = ', '.join(f'stride {lvl["stride"][0]:g} ({lvl["anchor_sizes"][0]:.0f}-'
                       f'{lvl["anchor_sizes"][1]:.0f} px): {lvl["num_boxes"]} boxes, '
                       f'{_pct(lvl["uncovered_share"])} uncovered'
                       for lvl in cov['levels'])
    lines.append(f'- per level (boxes by the level of their best anchor): {levels}.')
    sug = result['suggestion']
    if 'error' in sug:
        lines.append(f'- no octave_base_scale suggestion: {sug["error"]}.')
    else:
        by_scale = {c['octave_base_scale']: c for c in sug['candidates']}
        best = by_scale[sug['suggested']]
        lines.append(
            f'- `octave_base_scale` {sug["suggested"]:g} would leave '
            f'{_pct(sug["uncovered_share"])} uncovered with {best["positives_per_box"]:.2f} '
            f'positives per box (the config\'s {sug["current"]:g}: '
            f'{_pct(sug["current_uncovered_share"])}); rule: {sug["rule"]}')
    lines += ['', 'Full tables: `python tools/analysis_tools/anchor_coverage.py CONFIG` '
              '(docs/anchor_coverage.md).']
    return '\n'.join(lines)
