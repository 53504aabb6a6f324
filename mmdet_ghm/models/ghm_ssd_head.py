"""SSD head whose classification loss is configurable (e.g. softmax GHM-C).

MMDetection's ``SSDHead`` hard-codes softmax CE with online hard negative
mining (3 negatives per positive), computed image by image. ``GHMSSDHead``
replaces that with any classification loss built from ``loss_cls``, called
once per batch over every image's anchors; with ``GHMCLoss(use_sigmoid=False)``
every anchor is kept and harmonized instead of mined, which is the paper's
point, and the gradient density (and its EMA) is the batch's, as in
RetinaNet. Box regression is SSD's.
"""
from typing import Dict, List

import torch
from torch import Tensor

from mmdet.models.dense_heads import SSDHead
from mmdet.models.losses import smooth_l1_loss
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, InstanceList, OptInstanceList


@MODELS.register_module()
class GHMSSDHead(SSDHead):
    """``SSDHead`` with a ``loss_cls`` of its own, applied once per batch.

    Losses (``loss_by_feat``), over the ``B * A`` anchors of the batch
    (``B`` images, ``A`` anchors per image, all levels):

    * ``loss_cls``: one call of ``loss_cls`` on scores ``(B * A, C + 1)``,
      labels ``(B * A,)`` and label weights ``(B * A,)``, with
      ``avg_factor`` = SSD's normaliser below. ``GHMCLoss`` ignores
      ``avg_factor`` and divides by its own count of valid anchors
      (``label_weight > 0``) in the batch, so its region counts, its EMA
      update (one per iteration) and its normaliser are the whole batch's.
    * ``loss_bbox``: SSD's smooth L1 (beta ``train_cfg.smoothl1_beta``),
      summed over the batch's anchors and divided by SSD's normaliser
      ``num_total_pos`` = the sum over images of ``max(positives, 1)``
      (``avg_factor`` of ``get_targets`` with the ``PseudoSampler``). This is
      the sum of ``SSDHead``'s per-image losses.

    Both are scalars; neither grows with the batch size.

    Args:
        loss_cls (dict): config of a softmax classification loss that takes
            ``(cls_score (N, C + 1), labels (N,), label_weights (N,),
            avg_factor=...)``. A loss whose built module has
            ``use_sigmoid=True`` is rejected. Defaults to
            ``GHMCLoss(use_sigmoid=False, bins=30, momentum=0.75)``.
        **kwargs: the arguments of ``SSDHead``.
    """

    def __init__(self,
                 *args,
                 loss_cls: ConfigType = dict(
                     type='GHMCLoss', use_sigmoid=False, bins=30, momentum=0.75),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.loss_cls = MODELS.build(loss_cls)
        if getattr(self.loss_cls, 'use_sigmoid', False):
            raise ValueError(f'GHMSSDHead predicts C + 1 softmax scores; its loss_cls must have '
                             f'use_sigmoid=False, got {loss_cls!r} (use_sigmoid=True once '
                             f'built; GHMCLoss is sigmoid unless told otherwise)')

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> Dict[str, Tensor]:
        """Losses of the batch.

        Args:
            cls_scores (list[Tensor]): per level ``(B, A_l * (C + 1), H, W)``.
            bbox_preds (list[Tensor]): per level ``(B, A_l * 4, H, W)``.
            batch_gt_instances (list[InstanceData]): ``bboxes``, ``labels``.
            batch_img_metas (list[dict]): image meta information.
            batch_gt_instances_ignore (list[InstanceData], optional): ignored
                boxes.

        Returns:
            dict[str, Tensor]: scalar ``loss_cls`` and ``loss_bbox`` (see the
            class docstring for their normalisers).
        """
        featmap_sizes = [featmap.size()[-2:] for featmap in cls_scores]
        if len(featmap_sizes) != self.prior_generator.num_levels:
            raise ValueError(f'expected {self.prior_generator.num_levels} feature levels, '
                             f'got {len(featmap_sizes)}')
        device = cls_scores[0].device
        anchor_list, valid_flag_list = self.get_anchors(
            featmap_sizes, batch_img_metas, device=device)
        (labels_list, label_weights_list, bbox_targets_list, bbox_weights_list,
         avg_factor) = self.get_targets(
            anchor_list, valid_flag_list, batch_gt_instances, batch_img_metas,
            batch_gt_instances_ignore=batch_gt_instances_ignore, unmap_outputs=True)

        num_images = len(batch_img_metas)
        # (B * A, ...) in image-major order, levels concatenated inside each
        # image, as get_targets lays out the targets.
        all_cls_scores = torch.cat([
            s.permute(0, 2, 3, 1).reshape(num_images, -1, self.cls_out_channels)
            for s in cls_scores], 1).reshape(-1, self.cls_out_channels)
        all_bbox_preds = torch.cat([
            b.permute(0, 2, 3, 1).reshape(num_images, -1, 4) for b in bbox_preds],
            1).reshape(-1, 4)
        all_labels = torch.cat(labels_list, -1).reshape(-1)
        all_label_weights = torch.cat(label_weights_list, -1).reshape(-1)
        all_bbox_targets = torch.cat(bbox_targets_list, -2).reshape(-1, 4)
        all_bbox_weights = torch.cat(bbox_weights_list, -2).reshape(-1, 4)

        loss_cls = self.loss_cls(all_cls_scores, all_labels, all_label_weights,
                                 avg_factor=avg_factor)
        if self.reg_decoded_bbox:
            all_anchors = torch.cat([torch.cat(anchors) for anchors in anchor_list])
            all_bbox_preds = self.bbox_coder.decode(all_anchors, all_bbox_preds)
        loss_bbox = smooth_l1_loss(
            all_bbox_preds, all_bbox_targets, all_bbox_weights,
            beta=self.train_cfg['smoothl1_beta'], avg_factor=avg_factor)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox)
