#!/usr/bin/env python3
"""Where a detector's AP is lost: AP and recall by IoU threshold, and what its top boxes are.

Predicts every image of a split of a COCO-format config with a checkpoint and
evaluates the boxes with COCO's matching (crowd regions ignored) at several IoU
thresholds (:mod:`mmdet_ghm.analysis.detection_errors`): the AP and the recall at
each, the AP once the boxes that overlap no object are dropped, and what each
image's top-scored boxes are, as many as it has objects: hits, duplicates of an
object already matched, loose boxes (IoU 0.1-0.5 with an object) and
background. Run it on two checkpoints of the same data (FL and GHM) to see
whether one misses objects, scores background, or places its boxes loosely.

Usage::

    python3 tools/analysis_tools/detection_errors.py CONFIG CHECKPOINT \\
        [--split val] [--iou-thrs 0.1 0.3 0.5 0.75] [--out result.json] [--cfg-options ...]

The checkpoint is read through MMEngine's loader after ``import mmdet_ghm``
(so its safe ``weights_only`` loading applies).
"""
import argparse
import json
import os.path as osp
import sys
from types import SimpleNamespace

from mmengine.config import DictAction

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from mmdet_ghm.analysis.detection_errors import (IOU_THRESHOLDS, TOP_BOX_KINDS,  # noqa: E402
                                                 ap_and_recall, check_iou_thresholds)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--split', default='val', choices=['train', 'val', 'test'],
                        help='data split of the config (default: val); train images go '
                        'through the val pipeline (no augmentation)')
    parser.add_argument('--iou-thrs', nargs='+', type=float, default=list(IOU_THRESHOLDS),
                        help='IoU thresholds, increasing (default: %(default)s)')
    parser.add_argument('--max-dets', type=int, default=1000,
                        help='detections per image evaluated (default: 1000, as CocoMetric\'s '
                        'bbox_mAP)')
    parser.add_argument('--anchor-roles', action='store_true',
                        help='also say which anchors the top boxes come from (positive, '
                        'ignored or negative for the head\'s assigner; RetinaNet-like '
                        'anchor heads only)')
    parser.add_argument('--out', default=None,
                        help='write the result as JSON here (refused if the file exists)')
    parser.add_argument('--device', default=None,
                        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides, key=value (as in tools/train.py)')
    args = parser.parse_args(argv)
    try:
        args.iou_thrs = check_iou_thresholds(args.iou_thrs)
    except ValueError as error:
        parser.error(str(error))
    if args.max_dets < 1:
        parser.error(f'--max-dets must be positive, got {args.max_dets}')
    for what, path in (('config', args.config), ('checkpoint', args.checkpoint)):
        if not osp.isfile(path):
            parser.error(f'{what} not found: {path!r}')
    if args.out and osp.exists(args.out):
        parser.error(f'{args.out} exists; choose another --out or move it away')
    return args


def predict(config: str, checkpoint: str, cfg_options, split: str, device=None,
            anchor_roles: bool = False):
    """``(ground truth COCO, COCO result dicts, image ids, anchor roles)`` of a checkpoint
    on ``split``; ``anchor roles``: with ``anchor_roles``, which anchors the top boxes come
    from (:func:`mmdet_ghm.analysis.top_box_anchors.top_box_anchor_roles`, summed over
    the images), else None.

    One image per batch, as the val loader: no padding between images of
    different sizes changes the predictions.
    """
    import torch
    import analyze_gradient_density as agd
    from mmdet.datasets.api_wrappers import COCO
    from mmdet_ghm.analysis.detection_errors import to_coco_results
    from mmdet_ghm.analysis.top_box_anchors import add_tables, top_box_anchor_roles
    args = SimpleNamespace(config=config, checkpoint=checkpoint, cfg_options=cfg_options,
                           split=split, batch_size=1, device=device)
    model, loader = agd.build(args)
    dataset = loader.dataset
    if not (hasattr(dataset, 'cat_ids') and getattr(dataset, 'ann_file', None)):
        raise ValueError(f'the {split} split\'s dataset ({type(dataset).__name__}) is not a '
                         'COCO-format dataset with an ann_file; this tool evaluates COCO '
                         'annotations')
    detections, img_ids, roles = [], [], []
    with torch.no_grad():
        for data in loader:
            if anchor_roles:
                roles.append(top_box_anchor_roles(model, data))
            for sample in model.test_step(data):
                pred = sample.pred_instances
                img_ids.append(int(sample.metainfo['img_id']))
                detections += to_coco_results(img_ids[-1], pred.bboxes.cpu().numpy(),
                                              pred.scores.cpu().numpy(),
                                              pred.labels.cpu().numpy(), dataset.cat_ids)
    return COCO(dataset.ann_file), detections, img_ids, add_tables(roles) if anchor_roles else None


def summary_lines(result: dict) -> list:
    """The result as a printed table."""
    lines = [f'{result["num_objects"]} objects, {result["num_detections"]} boxes '
             f'({result["num_background"]} overlap no object at IoU '
             f'{result["background_iou"]:g})',
             f'{"IoU":>6} {"AP":>7} {"recall":>7} {"AP without background":>22}']
    for t, ap, recall, clean in zip(result['iou_thrs'], result['ap'], result['recall'],
                                    result['ap_without_background']):
        lines.append(f'{t:>6g} {ap:>7.3f} {recall:>7.3f} {clean:>22.3f}')
    kinds = ', '.join(f'{kind} {100 * result["top_boxes"][kind]:.0f} %' for kind in TOP_BOX_KINDS)
    lines.append(f'top-scored boxes (as many per image as objects), at IoU 0.5: {kinds}')
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    gt, detections, img_ids, roles = predict(osp.abspath(args.config), args.checkpoint,
                                             args.cfg_options, args.split, args.device,
                                             args.anchor_roles)
    result = ap_and_recall(gt, detections, args.iou_thrs, args.max_dets, img_ids)
    result.update(config=args.config, checkpoint=args.checkpoint, split=args.split,
                  num_images=len(img_ids))
    print('\n'.join(summary_lines(result)))
    if roles is not None:
        result['top_box_anchor_roles'] = roles
        print('the anchors behind the top boxes (in the network input\'s coordinates):')
        for kind, counts in roles.items():
            print(f'  {kind:>10}: ' + ', '.join(f'{role} {n}' for role, n in counts.items()))
    if args.out:
        with open(args.out, 'x') as f:
            json.dump(result, f, indent=1)
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
