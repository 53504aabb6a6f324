#!/usr/bin/env python3
"""How well a RetinaNet-style config's anchors fit its ground-truth boxes, before training.

Passes every image of a split once through the split's pipeline (fixed seed:
the boxes at the scale the detector trains on) or, with ``--no-augment``,
scales the annotation boxes as the test pipeline's ``Resize`` does; lays out
the head's anchors on each (padded) image and assigns them with the config's
``MaxIoUAssigner``. Prints, per FPN level (the boxes whose best anchor lies on
it) and overall: the boxes, the share without any anchor at IoU >=
``pos_iou_thr`` (they get positives only from low-quality matching, or
none), positives per box and the level they come from, the best-anchor IoU's
quantiles; then the ``octave_base_scale`` that leaves the fewest boxes
uncovered (docs/anchor_coverage.md).

Usage::

    python tools/analysis_tools/anchor_coverage.py CONFIG [--split train|val|test]
        [--no-augment] [--samples N] [--seed 0] [--candidates 2 3 4 ...]
        [--out report.json] [--cfg-options key=value ...]

Anchor-free heads (no ``model.bbox_head.anchor_generator``) and assigners
other than ``MaxIoUAssigner`` are refused with an error that names them.
"""
import argparse
import json
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:  # run from a clone without installing
    sys.path.insert(0, REPO)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Anchor coverage of a config\'s ground-truth boxes (MaxIoUAssigner) and '
        'the octave_base_scale that covers them best.')
    parser.add_argument('config', help='detector config file')
    parser.add_argument('--split', default='train', choices=['train', 'val', 'test'],
                        help='data split of the config (default: train)')
    parser.add_argument('--no-augment', action='store_true',
                        help='annotation boxes scaled by the test pipeline\'s Resize only, '
                        'instead of the split\'s pipeline')
    parser.add_argument('--samples', type=int, default=None,
                        help='use this many images, drawn with --seed (default: all)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the image draw and of the pipeline (default: 0)')
    parser.add_argument('--candidates', type=float, nargs='+', default=None,
                        help='octave_base_scale values to try (default: 1 to 16, '
                        'and the config\'s)')
    parser.add_argument('--out', default=None, help='write the report as JSON here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides, key=value (as in tools/train.py)')
    args = parser.parse_args(argv)
    if args.samples is not None and args.samples < 1:
        parser.error(f'--samples must be >= 1, got {args.samples}')
    if args.candidates is not None and min(args.candidates) <= 0:
        parser.error(f'--candidates must be > 0, got {min(args.candidates)}')
    if not osp.isfile(args.config):
        parser.error(f'config not found: {args.config!r}')
    return args


def _pct(share) -> str:
    return '-' if share is None else f'{100 * share:.1f}%'


def _num(value, fmt='.2f') -> str:
    return '-' if value is None else format(value, fmt)


def format_report(report: dict) -> str:
    """The report as the tables the tool prints."""
    s, data = report['settings'], report['data']
    source = f'the pipeline (seed {data["seed"]})' if data['source'] == 'pipeline' else \
        'the annotations' + (f', resized by {data["resize"]!r}' if data['resize'] else '')
    dropped = f' ({data["skipped"]} dropped by the pipeline)' if data['skipped'] else ''
    lines = [
        f'{report["config"]} -- {data["split"]} split, boxes from {source}: '
        f'{report["num_images"]} images{dropped}, {report["num_boxes"]} boxes, '
        f'{report["num_ignored"]} ignored boxes left out',
        f'MaxIoUAssigner pos_iou_thr={s["pos_iou_thr"]}, neg_iou_thr={s["neg_iou_thr"]}, '
        f'min_pos_iou={s["min_pos_iou"]}, {s["assigner_options"] or "defaults"}; '
        f'pad_size_divisor={s["pad_size_divisor"]}, allowed_border={s["allowed_border"]}',
        '',
        'level = the boxes whose best anchor lies on that level; uncovered = no anchor at IoU >= '
        'pos_iou_thr (low-q only: positive only through low-quality matching)',
    ]
    header = ('level', 'stride', 'anchors px', 'boxes', 'box px med', 'best IoU q05/med/q95',
              'uncovered', 'low-q only', 'no pos', 'pos/box mean/med', 'pos by level',
              'pos share')
    rows = []
    for lvl in report['levels'] + [dict(report['overall'], level='all')]:
        iou, pos = lvl['best_iou'], lvl['positives_per_box']
        rows.append((
            str(lvl['level']),
            '' if 'stride' not in lvl else f'{lvl["stride"][0]:g}',
            '' if 'anchor_sizes' not in lvl else
            f'{lvl["anchor_sizes"][0]:.0f}-{lvl["anchor_sizes"][1]:.0f}',
            str(lvl['num_boxes']),
            '-' if lvl['box_size'] is None else f'{lvl["box_size"]["median"]:.1f}',
            '-' if iou is None else f'{iou["q05"]:.2f}/{iou["median"]:.2f}/{iou["q95"]:.2f}',
            _pct(lvl['uncovered_share']), _pct(lvl['low_quality_only_share']),
            _pct(lvl['no_positive_share']),
            '-' if pos is None else f'{pos["mean"]:.2f}/{pos["median"]:g}',
            '-' if lvl['positives_by_level'] is None else
            ' '.join(f'{v:.2f}' for v in lvl['positives_by_level']),
            _pct(lvl.get('positives_share')) if 'positives_share' in lvl else ''))
    lines += _table(header, rows)
    sug = report.get('suggestion')
    if sug is None:
        lines += ['', f'no octave_base_scale suggestion: {report.get("suggestion_error")}']
        return '\n'.join(lines)
    lines += ['', 'octave_base_scale candidates (rule: ' + sug['rule'] + '):']
    lines += _table(('octave_base_scale', 'anchors px', 'uncovered', 'no pos', 'mean best IoU',
                     'pos/box'),
                    [(f'{c["octave_base_scale"]:g}' + (' (config)' if c['octave_base_scale']
                                                        == sug['current'] else ''),
                      f'{c["anchor_sizes"][0]:.0f}-{c["anchor_sizes"][1]:.0f}',
                      _pct(c['uncovered_share']), _pct(c['no_positive_share']),
                      _num(c['mean_best_iou'], '.3f'), _num(c['positives_per_box']))
                     for c in sug['candidates']])
    lines += ['', f'suggested octave_base_scale: {sug["suggested"]:g} (uncovered '
              f'{_pct(sug["uncovered_share"])}; the config\'s {sug["current"]:g}: '
              f'{_pct(sug["current_uncovered_share"])})']
    return '\n'.join(lines)


def _table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = '  '.join(f'{{:<{w}}}' for w in widths)
    return [fmt.format(*header), fmt.format(*('-' * w for w in widths))] + \
        [fmt.format(*r) for r in rows]


def main(argv=None) -> int:
    args = parse_args(argv)
    import mmdet_ghm  # noqa: F401  (registers the package's datasets and modules)
    from mmengine.config import Config

    from mmdet_ghm.analysis.anchor_coverage import anchor_coverage, suggest_octave_base_scale
    from mmdet_ghm.analysis.training_boxes import collect_boxes, coverage_inputs, head_settings
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    try:
        settings = head_settings(cfg)  # before the data: refuse unsupported heads at once
        data = collect_boxes(cfg, args.split, augment=not args.no_augment,
                             samples=args.samples, seed=args.seed)
    except ValueError as e:
        raise SystemExit(f'error: {args.config}: {e}')
    if not any(len(b) for b in data['gt_bboxes']):
        raise SystemExit(f'error: {args.config}: the {args.split} split holds no ground-truth '
                         'boxes')
    inputs = coverage_inputs(settings, data)
    report = anchor_coverage(**inputs)
    if report['num_boxes'] == 0:
        raise SystemExit(f'error: {args.config}: every box of the {args.split} split is '
                         'ignored')
    report.update(config=args.config, data=dict(
        split=args.split, source=data['source'], seed=args.seed, samples=args.samples,
        num_images=data['num_images'], skipped=data['skipped'], resize=data['resize']))
    report['suggestion'], report['suggestion_error'] = None, None
    try:
        report['suggestion'] = suggest_octave_base_scale(candidates=args.candidates, **inputs)
    except ValueError as e:
        report['suggestion_error'] = str(e)
    print(format_report(report))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)
        print(f'\nwrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
