"""Continuous focal loss: the seed notes' "generalized focal loss".

For logits ``x``, ``p = sigmoid(x)`` and targets ``y`` in [0, 1] (soft, or
one-hot for labels)::

    loss = |y - p| ** beta * BCE(p, y)

the continuous version of Focal Loss with no α balancing. For binary
``y``, ``|y - p| = 1 - p_t`` and it is Focal Loss with ``gamma = beta`` and
no ``alpha``. For soft ``y`` it is the Quality Focal Loss of Li et al.,
"Generalized Focal Loss" (NeurIPS 2020); MMDetection registers that as
``QualityFocalLoss`` with a (label, score) target pair, and GFL as a head,
hence the name here.
"""
import numbers
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS

from .ghm_c import binary_targets
from .sigmoid_inputs import SigmoidClassificationLoss, element_weight


def check_beta(beta) -> float:
    """``beta``: a real number >= 0."""
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise TypeError(f'beta must be a number >= 0, got {beta!r}')
    if not beta >= 0:
        raise ValueError(f'beta must be >= 0, got {beta}')
    return float(beta)


def modulating_factor(distance: Tensor, beta: float) -> Tensor:
    """``distance ** beta`` with a finite gradient everywhere.

    For ``0 < beta < 1`` the derivative of ``d ** beta`` is infinite at
    ``d = 0`` (and ``0 * inf`` is NaN through ``|.|``); there the factor is 0
    and its gradient is taken as 0. Other values are ``d ** beta`` exactly.
    """
    if beta == 0:
        return torch.ones_like(distance)
    positive = distance > 0
    safe = distance.clamp(min=torch.finfo(distance.dtype).tiny)
    return torch.where(positive, safe.pow(beta), torch.zeros_like(distance))


def continuous_focal(pred: Tensor, target: Tensor, beta: float) -> Tensor:
    """Element-wise ``|y - p| ** beta * BCE``, float32 (float64 for float64 logits).

    Args:
        pred (Tensor): logits ``(N, C)``.
        target (Tensor): labels ``(N,)`` in ``[0, C]`` or targets of
            ``pred``'s shape in [0, 1].
        beta (float): exponent of the modulating factor, >= 0.

    Returns:
        Tensor: ``(N, C)``.
    """
    y = binary_targets(target, pred)
    x = pred.to(y.dtype)
    ce = F.binary_cross_entropy_with_logits(x, y, reduction='none')
    return modulating_factor((x.sigmoid() - y).abs(), beta) * ce


def continuous_focal_loss(pred: Tensor,
                          target: Tensor,
                          weight: Optional[Tensor] = None,
                          beta: float = 2.0,
                          reduction: str = 'mean',
                          avg_factor: Optional[Union[float, Tensor]] = None) -> Tensor:
    """Continuous focal loss, weighted and reduced as MMDetection's losses are.

    Args:
        pred (Tensor): logits ``(N, C)``.
        target (Tensor): labels ``(N,)`` in ``[0, C]`` or targets ``(N, C)``.
        weight (Tensor | None): ``(N,)`` or ``(N, C)`` element weights.
        beta (float): exponent of ``|y - p|``.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor (float | Tensor | None): with ``'mean'``, divides the sum.

    Returns:
        Tensor: float32 scalar, or ``(N, C)`` for ``'none'``.
    """
    loss = continuous_focal(pred, target, beta)
    if loss.numel() == 0 and reduction != 'none':
        return loss.sum() * 0  # keeps the graph connected
    return weight_reduce_loss(loss, element_weight(weight, pred), reduction, avg_factor)


@MODELS.register_module()
class ContinuousFocalLoss(SigmoidClassificationLoss):
    """The seed's "generalized focal loss": ``|y - p| ** beta * BCE(p, y)``.

    Focal Loss made continuous in the target: targets may be soft, in
    [0, 1], and no α balancing is applied. With binary targets it equals
    MMDetection's ``FocalLoss(gamma=beta, alpha=0.5, loss_weight=2)``. Not to
    be confused with MMDetection's ``QualityFocalLoss`` (same formula for
    soft targets, but a (label, score) target pair) or the GFL head.

    Args:
        beta (float): exponent of the modulating factor ``|y - p|``, >= 0
            (0 gives plain CE). Defaults to 2.0, the seed notes' value and
            Focal Loss's gamma.
        use_sigmoid (bool): must be True. Defaults to True.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. Defaults to
            ``'mean'``.
        loss_weight (float): multiplies the loss. Defaults to 1.0.
    """

    def __init__(self, beta=2.0, use_sigmoid=True, reduction='mean', loss_weight=1.0):
        super().__init__(use_sigmoid, reduction, loss_weight)
        self.beta = check_beta(beta)

    def compute(self, pred, target, weight, reduction, avg_factor):
        """``avg_factor`` divides the sum for ``'mean'`` (RetinaNet: positive anchors)."""
        return continuous_focal_loss(pred, target, weight, self.beta, reduction, avg_factor)

    def extra_repr(self) -> str:
        return (f'beta={self.beta}, loss_weight={self.loss_weight}, '
                f'reduction={self.reduction!r}')
