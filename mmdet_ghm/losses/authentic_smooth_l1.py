"""Authentic Smooth L1 (ASL1) alone, for the GHM paper's regression ablation.

For ``d = pred - target``::

    ASL1(d) = sqrt(d^2 + mu^2) - mu

(Li, Liu & Wang, AAAI 2019): quadratic ``~ d^2 / (2 mu)`` near 0,
``~ |d| - mu`` far from it, smooth everywhere, with gradient
``d / sqrt(d^2 + mu^2)`` in (-1, 1). GHM-R is ASL1 with gradient-density
weights; this module is ASL1 without them, weighted and reduced as
MMDetection's ``SmoothL1Loss`` (``avg_factor`` honoured).
"""
from typing import Optional, Union

import torch.nn as nn
from torch import Tensor

from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS

from .checks import (check_float_tensor, check_positive, check_real, check_reduction,
                     check_weight_shape, resolve_reduction)
from .ghm_r import authentic_smooth_l1
from .gradient_density import compute_dtype
from .sigmoid_inputs import element_weight


def authentic_smooth_l1_loss(pred: Tensor,
                             target: Tensor,
                             weight: Optional[Tensor] = None,
                             mu: float = 0.02,
                             reduction: str = 'mean',
                             avg_factor: Optional[Union[float, Tensor]] = None) -> Tensor:
    """ASL1 of ``pred - target``, weighted and reduced.

    Args:
        pred (Tensor): predictions, e.g. box deltas ``(N, 4)``.
        target (Tensor): targets of ``pred``'s shape.
        weight (Tensor | None): ``pred``'s shape or ``(N,)``.
        mu (float): > 0; the loss is quadratic for ``|d| << mu``.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor (float | Tensor | None): with ``'mean'``, divides the sum.

    Returns:
        Tensor: float32 (float64 for float64 ``pred``) scalar, or ``pred``'s
        shape for ``'none'``.
    """
    dtype = compute_dtype(pred)
    loss = authentic_smooth_l1(pred.to(dtype) - target.to(dtype), mu)
    if loss.numel() == 0 and reduction != 'none':
        return loss.sum() * 0  # keeps the graph connected
    return weight_reduce_loss(loss, element_weight(weight, pred), reduction, avg_factor)


@MODELS.register_module()
class AuthenticSmoothL1Loss(nn.Module):
    """Authentic Smooth L1 loss ``sqrt(d^2 + mu^2) - mu``, without GHM weights.

    A drop-in for ``SmoothL1Loss`` in box heads (same forward contract and
    normalisation), for the GHM paper's SL1 vs ASL1 vs GHM-R comparison.

    Args:
        mu (float): > 0. Defaults to 0.02, GHM-R's published value.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. Defaults to
            ``'mean'``.
        loss_weight (float): multiplies the loss. Defaults to 1.0.
    """

    def __init__(self, mu=0.02, reduction='mean', loss_weight=1.0):
        super().__init__()
        self.mu = check_positive('mu', mu)
        self.reduction = check_reduction(reduction)
        self.loss_weight = check_real('loss_weight', loss_weight)

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor=None, reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): predictions ``(N, 4)`` (any shape).
            target (Tensor): targets of ``pred``'s shape.
            weight (Tensor, optional): ``pred``'s shape or ``(N,)``.
            avg_factor (float | Tensor, optional): divides the sum for
                ``'mean'`` (RetinaNet passes the number of positive anchors).
            reduction_override (str, optional): overrides ``reduction``.

        Returns:
            Tensor: float32 scalar, or ``pred``'s shape for ``'none'``.
        """
        reduction = resolve_reduction(self.reduction, reduction_override)
        check_float_tensor('pred', pred)
        check_float_tensor('target', target)
        if target.shape != pred.shape:
            raise ValueError(f"target must have pred's shape {tuple(pred.shape)}, "
                             f'got {tuple(target.shape)}')
        check_weight_shape('weight', weight, pred, allow_rows=True)
        loss = authentic_smooth_l1_loss(pred, target, weight, self.mu, reduction, avg_factor)
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        return f'mu={self.mu}, loss_weight={self.loss_weight}, reduction={self.reduction!r}'
