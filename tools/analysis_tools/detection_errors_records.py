#!/usr/bin/env python3
"""AP and recall by IoU threshold of trained study runs, as committed records (issue 35).

For each study run (variant x seed) whose record exists, finds the run's final
checkpoint in the study's work directory, rebuilds the model and data as the run
trained them (its ``spec.json``), predicts every image of the split (train images
through the val pipeline) and evaluates the predictions with COCO's matching at
several IoU thresholds (:func:`mmdet_ghm.analysis.detection_errors.ap_and_recall`).
Writes ``docs/results/analysis/detection_errors/<variant>-seed<k>-<split>.json``;
the study's ``detection-errors`` block (docs/study.md) is generated from them.

Usage::

    python3 tools/analysis_tools/detection_errors_records.py \\
        --variants lite0-ablation-crowns-fl-p3-p7 lite0-ablation-crowns-ghm-p3-p7 --seeds 1 \\
        [--work-dir work_dirs/study] [--splits train val] [--overwrite]
"""
import argparse
import copy
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from mmdet_ghm.analysis.detection_errors import IOU_THRESHOLDS  # noqa: E402
from mmdet_ghm.study.analysis_records import (RESULTS, add_run_arguments,  # noqa: E402
                                              pending_measurements)
from mmdet_ghm.study.detection_errors import DETECTION_ERRORS_DIR  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_run_arguments(parser)
    parser.add_argument('--iou-thrs', nargs='+', type=float, default=list(IOU_THRESHOLDS),
                        help='IoU thresholds, increasing (default: %(default)s)')
    parser.add_argument('--max-dets', type=int, default=1000,
                        help='detections per image evaluated (default: 1000, as CocoMetric\'s '
                        'bbox_mAP)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing records')
    return parser.parse_args(argv)


def predict_split(spec: dict, checkpoint: str, split: str):
    """``(ground truth COCO, COCO result dicts, image ids, anchor roles)`` of one run's
    checkpoint on ``split``, the model and data built as the run trained them."""
    from detection_errors import predict
    return predict(osp.join(REPO, spec['config_rel']), checkpoint,
                   copy.deepcopy(spec['overrides']), split, device='cpu', anchor_roles=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmdet_ghm.analysis.detection_errors import ap_and_recall, check_iou_thresholds
    from mmdet_ghm.study.detection_errors import errors_record
    from mmdet_ghm.study.records import code_state, environment, write_json_atomic
    iou_thrs = check_iou_thresholds(args.iou_thrs)
    if args.max_dets < 1:
        raise SystemExit(f'--max-dets must be positive, got {args.max_dets}')
    code, env = code_state(REPO), environment(REPO)
    try:
        pending = pending_measurements(REPO, RESULTS, DETECTION_ERRORS_DIR, args)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from error
    for (_, _, record, epochs, spec, checkpoint), split, out in pending:
        gt, detections, img_ids, roles = predict_split(spec, checkpoint, split)
        result = ap_and_recall(gt, detections, iou_thrs, args.max_dets, img_ids)
        result['top_box_anchor_roles'] = roles
        write_json_atomic(out, errors_record(result, spec, record, epochs, split,
                                             len(img_ids), code, env))
        print(f'wrote {osp.relpath(out, REPO)}: AP {result["ap"]}, '
              f'recall {result["recall"]} at IoU {iou_thrs}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
