"""Where a detector's AP is lost: finding the objects, or placing the boxes.

COCO's AP at one IoU threshold mixes two failures: objects no box reaches, or
reaches only loosely, and boxes ranked below false positives. Read at several
IoU thresholds, from loose (0.1: a box near the object counts) to strict, the
AP and the recall tell them apart: a detector that finds the objects but
places its boxes badly keeps its AP at IoU 0.1 and loses it at 0.5; one that
ranks background above the objects loses it at every threshold.

The evaluation is pycocotools' (as MMDetection's ``CocoMetric``: crowd
annotations are ignored regions, every category counts), only with other IoU
thresholds and one detection limit.
"""
import contextlib
import io
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

import numpy as np

#: The IoU thresholds the study reads (loose to COCO's strict one).
IOU_THRESHOLDS = (0.1, 0.3, 0.5, 0.75)
#: A box that overlaps no object at this IoU is on background.
BACKGROUND_IOU = 0.1
#: What a top-scored box can be (:func:`top_box_kinds`).
TOP_BOX_KINDS = ('hit', 'duplicate', 'loose', 'crowd', 'background')


def check_iou_thresholds(iou_thrs: Sequence[float]) -> List[float]:
    """``iou_thrs`` as floats, increasing, each in (0, 1]; a ValueError names a bad one."""
    values = []
    for value in iou_thrs:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 < value <= 1:
            raise ValueError(f'IoU thresholds must be in (0, 1], got {value!r}')
        values.append(float(value))
    if not values or values != sorted(set(values)):
        raise ValueError(f'IoU thresholds must be distinct and increasing, got {list(iou_thrs)}')
    return values


def _evaluate(gt, detections: List[Dict], thrs: List[float], max_dets: int,
              img_ids: List[int]) -> Tuple[List[float], List[float]]:
    """pycocotools' AP and recall per threshold (``detections`` not empty)."""
    from mmdet.datasets.api_wrappers import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        dt = gt.loadRes(detections)
        evaluator = COCOeval(gt, dt, 'bbox')
        evaluator.params.imgIds = img_ids
        evaluator.params.iouThrs = np.array(thrs)
        evaluator.params.maxDets = [max_dets]
        evaluator.params.areaRng = [evaluator.params.areaRng[0]]
        evaluator.params.areaRngLbl = ['all']
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval['precision'][:, :, :, 0, 0]  # (T, R, K)
    recall = evaluator.eval['recall'][:, :, 0, 0]  # (T, K)
    valid = recall > -1  # (T, K): the categories with objects
    aps = [float(precision[t][:, valid[t]].mean()) if valid[t].any() else float('nan')
           for t in range(len(thrs))]
    recalls = [float(recall[t][valid[t]].mean()) if valid[t].any() else float('nan')
               for t in range(len(thrs))]
    return aps, recalls


def _by_image(detections: List[Dict], key=lambda d: d['image_id']) -> Dict:
    groups = defaultdict(list)
    for i, d in enumerate(detections):
        groups[key(d)].append(i)
    return groups


def on_background(gt, detections: List[Dict], min_iou: float = BACKGROUND_IOU) -> np.ndarray:
    """``(len(detections),)`` bool: the detection overlaps no ground truth box of its
    category at IoU ``min_iou`` or more (a crowd region: its intersection over the
    detection's area, as COCO matches them)."""
    from pycocotools import mask as mask_utils
    flags = np.zeros(len(detections), dtype=bool)
    groups = _by_image(detections, key=lambda d: (d['image_id'], d['category_id']))
    for (img_id, cat_id), index in groups.items():
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[img_id], catIds=[cat_id]))
        if not anns:
            flags[index] = True
            continue
        ious = np.asarray(mask_utils.iou([detections[i]['bbox'] for i in index],
                                         [a['bbox'] for a in anns],
                                         [int(a.get('iscrowd', 0)) for a in anns]))
        flags[index] = ious.reshape(len(index), len(anns)).max(axis=1) < min_iou
    return flags


def classify_top_boxes(gt, detections: List[Dict], img_ids: Sequence[int], iou: float = 0.5,
                       background_iou: float = BACKGROUND_IOU) -> Tuple[List[Tuple[int, str]], int]:
    """``([(detection index, kind), ...], number of objects)``: each image's
    highest-scoring boxes, as many per image as it has (non-crowd) objects, matched
    in score order as COCO matches at ``iou``; ``kind`` as :func:`top_box_kinds`."""
    from pycocotools import mask as mask_utils
    groups = _by_image(detections)
    kinds, total = [], 0
    for img_id in img_ids:
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[img_id]))
        objects = [a for a in anns if not a.get('iscrowd', 0)]
        crowds = [a for a in anns if a.get('iscrowd', 0)]
        total += len(objects)
        order = sorted(groups.get(img_id, []), key=lambda i: -detections[i]['score'])
        order = order[:len(objects)]
        if not order:
            continue
        boxes = [detections[i]['bbox'] for i in order]

        def overlaps(targets, crowd):
            if not targets:
                return np.zeros((len(order), 0))
            return np.asarray(mask_utils.iou(boxes, [a['bbox'] for a in targets],
                                             [int(crowd)] * len(targets))
                              ).reshape(len(order), len(targets))
        ious, iofs = overlaps(objects, False), overlaps(crowds, True)
        categories = np.array([a['category_id'] for a in objects])
        free = np.ones(len(objects), dtype=bool)
        for row, i in enumerate(order):
            same = categories == detections[i]['category_id']
            candidates = np.where(same & free, ious[row], -1.0)
            best_other = float(ious[row][same].max()) if same.any() else 0.0
            in_crowd = float(iofs[row].max()) if iofs.shape[1] else 0.0
            if candidates.size and candidates.max() >= iou:
                free[int(np.argmax(candidates))] = False
                kind = 'hit'
            elif best_other >= iou:
                kind = 'duplicate'
            elif in_crowd >= iou:
                kind = 'crowd'
            elif best_other >= background_iou:
                kind = 'loose'
            elif in_crowd >= background_iou:
                kind = 'crowd'
            else:
                kind = 'background'
            kinds.append((i, kind))
    return kinds, total


def top_box_kinds(gt, detections: List[Dict], img_ids: Sequence[int], iou: float = 0.5,
                  background_iou: float = BACKGROUND_IOU) -> Dict[str, float]:
    """What each image's highest-scoring boxes are, as many per image as it has
    (non-crowd) objects, matched in score order as COCO matches at ``iou``.

    Returns the shares (over all images' top boxes; NaN without objects) of
    :data:`TOP_BOX_KINDS`: ``hit`` (matches a free object of its category at
    ``iou``), ``duplicate`` (reaches ``iou`` only with objects already
    matched), ``loose`` (best IoU with an object in ``[background_iou, iou)``),
    ``crowd`` (inside a crowd region: ignored by COCO) and ``background``
    (overlaps nothing at ``background_iou``). A perfect detector's top boxes are
    all hits.
    """
    kinds, total = classify_top_boxes(gt, detections, img_ids, iou, background_iou)
    counts = dict.fromkeys(TOP_BOX_KINDS, 0)
    for _, kind in kinds:
        counts[kind] += 1
    return {kind: (n / total if total else float('nan')) for kind, n in counts.items()}


def ap_and_recall(gt, detections: List[Dict], iou_thrs: Sequence[float] = IOU_THRESHOLDS,
                  max_dets: int = 1000, img_ids: Sequence[int] = None,
                  background_iou: float = BACKGROUND_IOU) -> Dict:
    """COCO AP and recall at each IoU threshold, over all categories and areas, and
    what the boxes on background cost.

    Args:
        gt: a pycocotools ``COCO`` of the ground truth (MMDetection's wrapper works).
        detections: COCO result dicts (``image_id``, ``category_id``,
            ``bbox`` as ``[x, y, w, h]``, ``score``).
        iou_thrs: increasing thresholds in (0, 1].
        max_dets: detections kept per image (the highest scores).
        img_ids: the images evaluated (default: every image of ``gt``); an
            image without a detection counts its objects as missed.
        background_iou: a box overlapping no object at this IoU is on background.

    Returns:
        dict: ``iou_thrs``, ``ap`` and ``recall`` (one value per threshold, the
        mean over the categories that have objects); ``ap_without_background``
        (the AP with the background boxes dropped: what ranking background
        above the objects costs); ``top_boxes`` (what each image's top-scored
        boxes are, as many as its objects, at IoU 0.5: :func:`top_box_kinds`);
        ``num_objects`` (non-crowd ground truth boxes on the images),
        ``num_detections``, ``num_background``.
    """
    thrs = check_iou_thresholds(iou_thrs)
    check_iou_thresholds([background_iou])
    if isinstance(max_dets, bool) or not isinstance(max_dets, int) or max_dets < 1:
        raise ValueError(f'max_dets must be a positive integer, got {max_dets!r}')
    img_ids = sorted(gt.getImgIds() if img_ids is None else img_ids)
    evaluated = set(img_ids)
    unknown = ({d['image_id'] for d in detections} | evaluated) - set(gt.getImgIds())
    if unknown:
        raise ValueError(f'image ids not in the ground truth: {sorted(unknown)[:5]}')
    detections = [d for d in detections if d['image_id'] in evaluated]
    num_objects = sum(1 for a in gt.loadAnns(gt.getAnnIds(imgIds=img_ids))
                      if not a.get('iscrowd', 0))
    background = on_background(gt, detections, background_iou)
    kept = [d for d, bg in zip(detections, background) if not bg]
    missed = [0.0 if num_objects else float('nan')] * len(thrs)
    aps, recalls = _evaluate(gt, detections, thrs, max_dets, img_ids) if detections \
        else (list(missed), list(missed))
    clean = _evaluate(gt, kept, thrs, max_dets, img_ids)[0] if kept else list(missed)
    return dict(iou_thrs=thrs, ap=aps, recall=recalls, ap_without_background=clean,
                top_boxes=top_box_kinds(gt, detections, img_ids, 0.5, background_iou),
                background_iou=float(background_iou), num_objects=num_objects,
                num_detections=len(detections), num_background=int(background.sum()))


def to_coco_results(img_id: int, bboxes: np.ndarray, scores: np.ndarray,
                    labels: np.ndarray, cat_ids: Sequence[int]) -> List[Dict]:
    """COCO result dicts of one image's predictions.

    Args:
        bboxes: ``(K, 4)`` ``x1, y1, x2, y2`` in the image's original pixels.
        scores: ``(K,)``; labels: ``(K,)`` indices into ``cat_ids``.
    """
    bboxes = np.asarray(bboxes, dtype=float).reshape(-1, 4)
    if not len(bboxes) == len(scores) == len(labels):
        raise ValueError(f'{len(bboxes)} boxes, {len(scores)} scores and {len(labels)} labels')
    return [dict(image_id=int(img_id), category_id=int(cat_ids[int(label)]),
                 bbox=[float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                 score=float(score))
            for (x1, y1, x2, y2), score, label in zip(bboxes, scores, labels)]
