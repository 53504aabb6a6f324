"""SSD head whose classification loss is configurable (e.g. softmax GHM-C).

MMDetection's ``SSDHead`` hard-codes softmax CE with online hard negative
mining (3 negatives per positive). ``GHMSSDHead`` replaces that with any
classification loss built from ``loss_cls``; with
``GHMCLoss(use_sigmoid=False)`` every anchor is kept and harmonized instead
of mined, which is the paper's point. Box regression is unchanged.
"""
from typing import Tuple

from torch import Tensor

from mmdet.models.dense_heads import SSDHead
from mmdet.models.losses import smooth_l1_loss
from mmdet.registry import MODELS
from mmdet.utils import ConfigType


@MODELS.register_module()
class GHMSSDHead(SSDHead):
    """``SSDHead`` with a ``loss_cls`` of its own.

    Args:
        loss_cls (dict): config of a softmax classification loss that takes
            ``(cls_score (N, C + 1), labels (N,), label_weights (N,))``.
            Defaults to ``GHMCLoss(use_sigmoid=False, bins=30,
            momentum=0.75)``.
        **kwargs: the arguments of ``SSDHead``.
    """

    def __init__(self,
                 *args,
                 loss_cls: ConfigType = dict(
                     type='GHMCLoss', use_sigmoid=False, bins=30, momentum=0.75),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if loss_cls.get('use_sigmoid', False):
            raise ValueError(f'GHMSSDHead predicts C + 1 softmax scores; its loss_cls must have '
                             f'use_sigmoid=False, got {loss_cls!r}')
        self.loss_cls = MODELS.build(loss_cls)

    def loss_by_feat_single(self, cls_score: Tensor, bbox_pred: Tensor, anchor: Tensor,
                            labels: Tensor, label_weights: Tensor, bbox_targets: Tensor,
                            bbox_weights: Tensor, avg_factor: int) -> Tuple[Tensor, Tensor]:
        """Loss of one image's anchors; shapes as in ``SSDHead.loss_by_feat_single``."""
        loss_cls = self.loss_cls(cls_score, labels, label_weights, avg_factor=avg_factor)
        if self.reg_decoded_bbox:
            bbox_pred = self.bbox_coder.decode(anchor, bbox_pred)
        loss_bbox = smooth_l1_loss(
            bbox_pred, bbox_targets, bbox_weights, beta=self.train_cfg['smoothl1_beta'],
            avg_factor=avg_factor)
        return loss_cls[None], loss_bbox
