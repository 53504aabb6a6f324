"""Online hard example mining (OHEM) for dense sigmoid classifiers.

Sigmoid CE is computed for every element (anchor x class); only a subset is
kept, and the loss is the mean over the kept elements (Shrivastava et al.,
CVPR 2016; the positive/negative ratio as in SSD):

* ratio mode (default): all positive elements (target > 0) plus the
  ``k = max(floor(neg_pos_ratio * num_pos), min_neg)`` negatives with the
  largest loss;
* top-k mode (``topk=K``): the ``K`` elements with the largest loss,
  positive or negative.

Elements whose weight is 0 (ignored anchors) are never kept. The selection
is sync-free: ``k`` stays a device tensor; the negatives are ranked by a
sort of static shape and those with rank < k are kept, so there is no
``.item()``, no ``topk`` with a data-dependent ``k`` and no boolean-mask
indexing, and the forward compiles with ``torch.compile(fullgraph=True)``.
The selection carries no gradient.
"""
import numbers
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet.registry import MODELS

from .checks import check_positive
from .ghm_c import binary_targets, valid_mask
from .sigmoid_inputs import SigmoidClassificationLoss, element_weight


def check_count(name: str, value, minimum: int) -> int:
    """An integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f'{name} must be an integer >= {minimum}, got {value!r}')
    if value < minimum:
        raise ValueError(f'{name} must be >= {minimum}, got {value}')
    return int(value)


def rank_descending(key: Tensor) -> Tensor:
    """Rank of each element of the 1-D ``key`` in descending order (0 = largest).

    Ties are ranked by position (stable sort); one sort of static shape and a
    scatter, no host read.
    """
    order = torch.argsort(key, descending=True, stable=True)
    positions = torch.arange(key.numel(), device=key.device)
    return torch.empty_like(order).scatter_(0, order, positions)


def ohem_keep_mask(loss: Tensor,
                   positive: Tensor,
                   valid: Tensor,
                   neg_pos_ratio: float = 3.0,
                   min_neg: int = 100,
                   topk: Optional[int] = None) -> Tensor:
    """Bool mask of the elements OHEM keeps, ``loss``'s shape.

    Args:
        loss (Tensor): element-wise loss, any shape (detached here).
        positive (Tensor): bool, ``loss``'s shape: positive elements.
        valid (Tensor): bool, broadcastable to ``loss``: elements that may be
            kept.
        neg_pos_ratio (float): negatives kept per positive (ratio mode).
        min_neg (int): negatives kept at least (ratio mode).
        topk (int | None): if given, keep the ``topk`` largest losses among
            the valid elements regardless of sign.

    Returns:
        Tensor: bool, ``loss``'s shape.
    """
    flat = loss.detach().reshape(-1)
    valid = valid.expand(loss.shape).reshape(-1)
    lowest = torch.tensor(float('-inf'), dtype=flat.dtype, device=flat.device)
    if topk is not None:
        key = torch.where(valid, flat, lowest)
        chosen = key.topk(min(topk, key.numel()), sorted=False).indices
        keep = torch.zeros_like(valid).scatter_(0, chosen, True) & valid
        return keep.view(loss.shape)
    positive = positive.reshape(-1) & valid
    negative = valid & ~positive
    num_neg = torch.floor(positive.sum() * neg_pos_ratio).clamp(min=min_neg)
    rank = rank_descending(torch.where(negative, flat, lowest))
    keep = positive | (negative & (rank < num_neg))
    return keep.view(loss.shape)


def ohem_loss(pred: Tensor,
              target: Tensor,
              weight: Optional[Tensor] = None,
              neg_pos_ratio: float = 3.0,
              min_neg: int = 100,
              topk: Optional[int] = None,
              reduction: str = 'mean') -> Tensor:
    """Sigmoid CE over the elements OHEM keeps.

    The element loss is ``weight * BCE(sigmoid(pred), t)``; elements are
    ranked by it (see :func:`ohem_keep_mask`). A non-finite element loss
    (NaN or infinite logits; NaN ranks above every number) is kept whatever
    the selection, so the loss is then non-finite, never an error.

    Args:
        pred (Tensor): logits ``(N, C)``.
        target (Tensor): labels ``(N,)`` in ``[0, C]`` or targets ``(N, C)``
            in [0, 1]; elements with target > 0 are positives.
        weight (Tensor | None): ``(N,)`` or ``(N, C)``; elements with
            weight 0 are never kept.
        neg_pos_ratio (float): negatives per positive.
        min_neg (int): minimum number of negatives.
        topk (int | None): top-k mode.
        reduction (str): ``'none'`` (the kept element losses, 0 elsewhere,
            ``(N, C)``), ``'sum'``, or ``'mean'`` (sum over the kept
            elements divided by their number).

    Returns:
        Tensor: float32 (float64 for float64 logits).
    """
    t = binary_targets(target, pred)
    loss = F.binary_cross_entropy_with_logits(pred.to(t.dtype), t, reduction='none')
    weight = element_weight(weight, pred)
    if weight is not None:
        loss = loss * weight
    if loss.numel() == 0 and reduction != 'none':
        return loss.sum() * 0  # keeps the graph connected
    keep = ohem_keep_mask(loss, t > 0, valid_mask(weight, pred), neg_pos_ratio, min_neg,
                          topk)
    # A non-finite element loss is never dropped, so that the loss is non-finite.
    kept = torch.where(keep | ~loss.isfinite(), loss, torch.zeros_like(loss))
    if reduction == 'none':
        return kept
    total = kept.sum()
    if reduction == 'mean':
        total = total / keep.sum().clamp(min=1).to(total.dtype)
    return total


@MODELS.register_module()
class OHEMLoss(SigmoidClassificationLoss):
    """Sigmoid CE with online hard example mining, for dense heads.

    Keeps all positive elements and the hardest negatives, ``neg_pos_ratio``
    per positive and at least ``min_neg`` (so a call without positives, e.g.
    an FPN level without objects, still trains on its hardest negatives); or,
    with ``topk=K``, the ``K`` hardest elements of either sign. The loss is
    the mean CE over the kept elements. RetinaNet's head calls the loss once
    per FPN level, so the selection and the normalisation are per level.

    ``neg_pos_ratio = 3`` is SSD's ratio (Liu et al., ECCV 2016). The
    default ``min_neg = 100`` is of the order of the detections RetinaNet
    keeps per image (``max_per_img=100``): a call without positives still
    pushes down its most confident false positives.

    Args:
        neg_pos_ratio (float): negatives kept per positive, > 0. Defaults to 3.
        min_neg (int): negatives kept at least, >= 0. Defaults to 100.
        topk (int, optional): if given, keep the ``topk`` hardest elements
            regardless of sign; ``neg_pos_ratio`` and ``min_neg`` are then
            unused. Defaults to None.
        use_sigmoid (bool): must be True. Defaults to True.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. Defaults to
            ``'mean'``.
        loss_weight (float): multiplies the loss. Defaults to 1.0.
    """

    def __init__(self, neg_pos_ratio=3.0, min_neg=100, topk=None, use_sigmoid=True,
                 reduction='mean', loss_weight=1.0):
        super().__init__(use_sigmoid, reduction, loss_weight)
        self.neg_pos_ratio = check_positive('neg_pos_ratio', neg_pos_ratio)
        self.min_neg = check_count('min_neg', min_neg, 0)
        self.topk = None if topk is None else check_count('topk', topk, 1)

    def compute(self, pred, target, weight, reduction, avg_factor):
        """``avg_factor`` is ignored: the mean is over the kept elements."""
        return ohem_loss(pred, target, weight, self.neg_pos_ratio, self.min_neg, self.topk,
                         reduction)

    def extra_repr(self) -> str:
        mode = (f'topk={self.topk}' if self.topk is not None else
                f'neg_pos_ratio={self.neg_pos_ratio}, min_neg={self.min_neg}')
        return f'{mode}, loss_weight={self.loss_weight}, reduction={self.reduction!r}'
