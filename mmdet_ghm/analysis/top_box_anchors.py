"""Which anchors a RetinaNet's top-scored boxes come from: positives, ignored or negatives.

A detector that ranks loose boxes first (:func:`~mmdet_ghm.analysis.detection_errors.top_box_kinds`)
does so either because its positive anchors regress badly, or because anchors it
trained as background score like objects. For each image's top-scored boxes
(as many as it has objects) this finds the anchor each box was decoded from
and the role the head's own assigner gives that anchor for the image's ground
truth (``positive``, ``ignored``: between the IoU thresholds or in an ignore
region, ``negative``), and tallies role against the box's kind.
"""
from typing import Dict, List

import torch

from .detection_errors import BACKGROUND_IOU, TOP_BOX_KINDS, classify_top_boxes
from .head_pass import anchor_head, flatten_levels, head_pass

#: What the head's assigner makes of an anchor.
ANCHOR_ROLES = ('positive', 'ignored', 'negative')


def _image_coco(boxes: torch.Tensor, labels: torch.Tensor, ignore: torch.Tensor):
    """A one-image pycocotools ground truth (id 0; categories ``label + 1``; the
    ignore boxes as crowd regions) from ``x1, y1, x2, y2`` boxes."""
    from mmdet.datasets.api_wrappers import COCO
    anns = []
    for box_set, crowd, cats in ((boxes, 0, labels + 1), (ignore, 1, None)):
        for k, (x1, y1, x2, y2) in enumerate(box_set.tolist()):
            anns.append(dict(id=len(anns) + 1, image_id=0, iscrowd=crowd,
                             category_id=int(cats[k]) if cats is not None else 1,
                             bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1)))
    categories = sorted({a['category_id'] for a in anns} | {1})
    gt = COCO()
    gt.dataset = dict(images=[dict(id=0)], annotations=anns,
                      categories=[dict(id=c) for c in categories])
    gt.createIndex()
    return gt


def _boxes(instances, key='bboxes') -> torch.Tensor:
    boxes = instances.get(key) if instances is not None else None
    if boxes is None:
        return torch.zeros((0, 4))
    return getattr(boxes, 'tensor', boxes).reshape(-1, 4).float().cpu()


@torch.no_grad()
def top_box_anchor_roles(model, data: dict, iou: float = 0.5,
                         background_iou: float = BACKGROUND_IOU) -> Dict[str, Dict[str, int]]:
    """``{kind: {role: count}}`` of the top-scored boxes of a batch of **one** image.

    Args:
        model: a single-stage detector with a sigmoid ``AnchorHead`` (RetinaNet), in
            eval mode.
        data: a collated batch of one image from a dataloader, with ground truth.

    The boxes are the head's own predictions (its ``test_cfg``: score threshold,
    NMS, ``max_per_img``) in the network's input coordinates; each is traced to
    the anchor whose score it carries, and the anchor's box decoded again must
    equal it (a RuntimeError says otherwise).
    """
    head = anchor_head(model)
    if len(data['data_samples']) != 1:
        raise ValueError('top_box_anchor_roles takes batches of one image, got '
                         f'{len(data["data_samples"])}')
    out = head_pass(model, data)
    cls_scores, bbox_preds, metas = out['cls_scores'], out['bbox_preds'], out['metas']
    gt, gt_ignore = out['gt'], out['gt_ignore']
    labels = torch.cat([t.reshape(-1) for t in out['labels']])
    label_weights = torch.cat([t.reshape(-1) for t in out['label_weights']])
    channels = head.cls_out_channels
    scores = flatten_levels(cls_scores, channels).sigmoid()
    deltas = flatten_levels(bbox_preds, head.bbox_coder.encode_size)
    priors = torch.cat(out['anchors'][0])
    result = head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=metas,
                                  rescale=False)[0]
    roles, detections = [], []
    for box, score, label in zip(result.bboxes, result.scores, result.labels):
        # the sigmoid of one tensor and of its level's slices may differ in the last bit
        index = torch.nonzero((scores[:, label] - score).abs() <= 1e-6).flatten()
        decoded = head.bbox_coder.decode(priors[index], deltas[index], max_shape=metas[0].get(
            'img_shape'))
        decoded = getattr(decoded, 'tensor', decoded)
        close = torch.isclose(decoded, box.expand_as(decoded), atol=1e-3).all(dim=1)
        if not close.any():
            raise RuntimeError(f'no anchor with score {float(score)} decodes to box '
                               f'{box.tolist()}')
        anchor = int(index[close][0])
        roles.append('positive' if 0 <= int(labels[anchor]) < channels
                     else 'ignored' if float(label_weights[anchor]) == 0 else 'negative')
        x1, y1, x2, y2 = box.tolist()
        detections.append(dict(image_id=0, category_id=int(label) + 1, score=float(score),
                               bbox=[x1, y1, x2 - x1, y2 - y1]))
    coco = _image_coco(_boxes(gt[0]), gt[0].labels.cpu(), _boxes(gt_ignore[0]))
    kinds, _ = classify_top_boxes(coco, detections, [0], iou, background_iou)
    table = {kind: dict.fromkeys(ANCHOR_ROLES, 0) for kind in TOP_BOX_KINDS}
    for index, kind in kinds:
        table[kind][roles[index]] += 1
    return table


def add_tables(tables: List[Dict[str, Dict[str, int]]]) -> Dict[str, Dict[str, int]]:
    """The sum of :func:`top_box_anchor_roles` tables."""
    total = {kind: dict.fromkeys(ANCHOR_ROLES, 0) for kind in TOP_BOX_KINDS}
    for table in tables:
        for kind, roles in table.items():
            for role, count in roles.items():
                total[kind][role] += count
    return total
