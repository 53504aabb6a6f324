"""Run a RetinaNet-style anchor head on a batch, with the head's own training targets.

Shared by the gradient-density analysis (:func:`head_targets`: flat outputs and
targets) and the top-box anchor tracing
(:func:`~mmdet_ghm.analysis.top_box_anchors.top_box_anchor_roles`: the raw
per-level outputs as ``predict_by_feat`` takes them, beside the targets).
"""
from typing import Dict, List

import torch
from torch import Tensor


def anchor_head(model):
    """``model.bbox_head``, checked to be a sigmoid ``AnchorHead`` (e.g. RetinaNet's)."""
    from mmdet.models.dense_heads import AnchorHead
    head = getattr(model, 'bbox_head', None)
    if not isinstance(head, AnchorHead):
        raise TypeError(f'expected a detector with an AnchorHead bbox_head (e.g. RetinaNet), '
                        f'got {type(head).__name__}')
    if not head.use_sigmoid_cls:
        raise ValueError('the head classifies with softmax; g = |p - p*| is defined here '
                         'for sigmoid classifiers (loss_cls.use_sigmoid=True)')
    return head


def flatten_levels(maps: List[Tensor], dim: int) -> Tensor:
    """Per-level head maps ``(B, A * dim, H, W)`` as ``(sum of B * H * W * A, dim)``:
    level-major, in the order ``get_targets`` returns its per-level targets."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(-1, dim) for m in maps])


def head_pass(model, data: dict) -> Dict:
    """Run ``model`` on a collated batch (with ground truth) through its anchor head.

    Returns:
        dict: ``cls_scores`` and ``bbox_preds`` (per level, as the head outputs
        them), ``metas`` (per image), ``anchors`` (per image, per level),
        ``gt`` and ``gt_ignore`` (per image), and the head's ``get_targets``
        per level: ``labels``, ``label_weights``, ``bbox_targets``, ``bbox_weights``.
    """
    from mmdet.models.utils import unpack_gt_instances
    head = anchor_head(model)
    data = model.data_preprocessor(data, False)
    cls_scores, bbox_preds = head(model.extract_feat(data['inputs']))
    gt, gt_ignore, metas = unpack_gt_instances(data['data_samples'])
    sizes = [score.shape[-2:] for score in cls_scores]
    anchors, valid_flags = head.get_anchors(sizes, metas, device=cls_scores[0].device)
    labels, label_weights, bbox_targets, bbox_weights, _ = head.get_targets(
        anchors, valid_flags, gt, metas, batch_gt_instances_ignore=gt_ignore)
    return dict(cls_scores=cls_scores, bbox_preds=bbox_preds, metas=metas, anchors=anchors,
                gt=gt, gt_ignore=gt_ignore, labels=labels, label_weights=label_weights,
                bbox_targets=bbox_targets, bbox_weights=bbox_weights)


def head_targets(model, data: dict) -> Dict[str, Tensor]:
    """Run ``model`` on a batch; the head's flat outputs and training targets.

    Uses the head's own ``get_anchors``/``get_targets`` (assigner, sampler,
    box coder), exactly what ``loss_by_feat`` feeds its losses, flattened
    over images and FPN levels.

    Args:
        model: a single-stage detector with an ``AnchorHead`` (RetinaNet).
        data (dict): a collated batch from a dataloader (with ground truth).

    Returns:
        dict: ``cls_score`` ``(N, C)``, ``labels`` ``(N,)``, ``label_weights``
        ``(N,)``, ``bbox_pred``, ``bbox_targets``, ``bbox_weights`` ``(N, 4)``.
    """
    head = anchor_head(model)
    if head.reg_decoded_bbox:
        raise ValueError('the head regresses decoded boxes (reg_decoded_bbox=True); '
                         'the regression analysis needs delta targets')
    out = head_pass(model, data)
    size = head.bbox_coder.encode_size
    return dict(
        cls_score=flatten_levels(out['cls_scores'], head.cls_out_channels),
        labels=torch.cat([t.reshape(-1) for t in out['labels']]),
        label_weights=torch.cat([t.reshape(-1) for t in out['label_weights']]),
        bbox_pred=flatten_levels(out['bbox_preds'], size),
        bbox_targets=torch.cat([t.reshape(-1, size) for t in out['bbox_targets']]),
        bbox_weights=torch.cat([t.reshape(-1, size) for t in out['bbox_weights']]))
