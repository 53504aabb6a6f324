"""GHM-R: gradient harmonized Authentic Smooth L1 (Li, Liu & Wang, AAAI 2019).

For ``d = pred - target`` the Authentic Smooth L1 loss is
``ASL1(d) = sqrt(d^2 + mu^2) - mu`` and its gradient norm
``g = |d| / sqrt(d^2 + mu^2)`` lies in [0, 1). Valid elements are weighted
by the gradient density of their ``g``-region exactly as in GHM-C, and the
loss is ``sum(beta * ASL1) / N`` with ``N = sum(label_weight)``.
"""
from typing import Optional

import torch
from torch import Tensor

from mmdet.registry import MODELS

from .checks import check_float_tensor, check_positive, check_weight_shape
from .fused import fused
from .ghm_c import valid_mask
from .gradient_density import (EPS, HarmonizeOptions, compute_dtype, element_weights, harmonize,
                               region_index)
from .harmonized_loss import HarmonizedLoss


def authentic_smooth_l1(diff: Tensor, mu: float) -> Tensor:
    """``sqrt(d^2 + mu^2) - mu`` element-wise.

    Computed as ``d^2 / (sqrt(d^2 + mu^2) + mu)``, which is the same value
    without the cancellation that costs float32 precision when ``|d| << mu``.
    """
    squared = diff * diff
    return squared / (torch.sqrt(squared + mu * mu) + mu)


def asl1_gradient(diff: Tensor, mu: float) -> Tensor:
    """``d / sqrt(d^2 + mu^2)``, the derivative of ASL1; its absolute value is ``g``."""
    return diff / torch.sqrt(diff * diff + mu * mu)


def _diff(pred: Tensor, target: Tensor) -> Tensor:
    dtype = compute_dtype(pred)
    return pred.to(dtype) - target.to(dtype)


@fused
def ghmr_region_index(pred: Tensor, target: Tensor, label_weight: Optional[Tensor],
                      edges: Tensor, mu: float) -> Tensor:
    """uint8 region of ``g = |d| / sqrt(d^2 + mu^2)``; ``bins`` if invalid or ``d`` not finite."""
    diff = _diff(pred, target)
    g = asl1_gradient(diff, mu).abs()
    return region_index(g, valid_mask(label_weight, pred) & diff.isfinite(), edges)


@fused
def ghmr_elementwise(pred: Tensor, target: Tensor, index: Tensor, weights: Tensor,
                     mu: float) -> Tensor:
    """``weights[index] * ASL1`` per element, float32 (``reduction='none'``)."""
    diff = _diff(pred, target)
    return element_weights(weights, index, diff.isfinite()) * authentic_smooth_l1(diff, mu)


@fused
def ghmr_weighted_sum(pred: Tensor, target: Tensor, index: Tensor, weights: Tensor,
                      mu: float) -> Tensor:
    """``sum(weights[index] * ASL1)``, float32 scalar accumulated in float64 (no gradient)."""
    diff = _diff(pred, target)
    loss = element_weights(weights, index, diff.isfinite()) * authentic_smooth_l1(diff, mu)
    return loss.double().sum().to(loss.dtype)


@fused
def ghmr_scaled_grad(pred: Tensor, target: Tensor, index: Tensor, weights: Tensor, mu: float,
                     scale: Tensor) -> Tensor:
    """``scale * w * d / sqrt(d^2 + mu^2)``, the gradient of the weighted sum w.r.t. ``pred``.

    ``w = weights[index]`` (NaN where ``d`` is not finite); float32, ``pred``'s shape;
    ``scale`` is the 0-dim incoming gradient.
    """
    diff = _diff(pred, target)
    return element_weights(weights, index, diff.isfinite()) * asl1_gradient(diff, mu) * scale


class _WeightedASL1Sum(torch.autograd.Function):
    """``sum(w * ASL1(pred - target))``; its gradient is computed by backward.

    Forward reads the inputs once for the sum and keeps nothing but references
    to them (and the uint8 index); backward computes the gradient scaled by
    the incoming one in one more read (``-grad`` for the target). Computing
    the gradient with the sum instead gave inductor two loops anyway, plus a
    float32 buffer kept until backward and a pass to scale it.
    """

    @staticmethod
    def forward(ctx, pred, target, index, weights, mu):
        ctx.save_for_backward(pred, target, index, weights)
        ctx.mu = mu
        # Recorded here rather than read from ctx.needs_input_grad in backward:
        # dynamo in torch 2.1 cannot trace indexing needs_input_grad (fullgraph).
        ctx.grad_pred, ctx.grad_target = pred.requires_grad, target.requires_grad
        return ghmr_weighted_sum(pred, target, index, weights, mu)

    @staticmethod
    def backward(ctx, grad_output):
        pred, target, index, weights = ctx.saved_tensors
        grad = ghmr_scaled_grad(pred, target, index, weights, ctx.mu, grad_output)
        grad_target = (-grad).to(target.dtype) if ctx.grad_target else None
        grad_pred = grad.to(pred.dtype) if ctx.grad_pred else None
        return grad_pred, grad_target, None, None, None


def ghm_r_loss(pred: Tensor,
               target: Tensor,
               label_weight: Optional[Tensor],
               edges: Tensor,
               mu: float = 0.02,
               acc_sum: Optional[Tensor] = None,
               momentum: float = 0.0,
               reduction: str = 'mean',
               stats: Optional[Tensor] = None,
               global_density: bool = False,
               options: Optional[HarmonizeOptions] = None) -> Tensor:
    """GHM-R loss (functional core of :class:`GHMRLoss`).

    Args:
        pred (Tensor): box deltas ``(N, 4)`` (any shape), floating point.
        target (Tensor): targets of ``pred``'s shape.
        label_weight (Tensor | None): ``pred``'s shape; > 0 marks valid
            elements and ``N = max(sum(label_weight), 1)``. ``None``: all
            valid, ``N = numel``.
        edges (Tensor): ``(bins + 1,)`` region edges.
        mu (float): ASL1 parameter, > 0.
        acc_sum (Tensor | None): ``(bins,)`` float32 EMA buffer.
        momentum (float): EMA momentum in [0, 1).
        reduction (str): ``'none'``, ``'sum'`` or ``'mean'`` (sum / N).
        stats (Tensor | None): ``(4, bins)`` float64 accumulator of region
            counts and weights (see :func:`accumulate_region_stats`; every
            element of GHM-R is a positive's box coordinate, so the
            positives' rows are left alone).
        global_density (bool): count regions over all processes (see
            :func:`harmonize`).
        options (HarmonizeOptions | None): bias correction, weight cap,
            warm-up (see :func:`harmonize`); ``None``: as published.

    Returns:
        Tensor: float32 loss; NaN if ``pred - target`` is not finite
        somewhere (that element counts in no region; its gradient is NaN).
    """
    # Element-wise over all coordinates: flat, so that compiled kernels run
    # vectorised loops (rows of 4 would leave only the scalar remainder loop).
    shape = pred.shape
    pred, target = pred.reshape(-1), target.reshape(-1)
    if label_weight is not None:
        label_weight = label_weight.reshape(-1)
    index = ghmr_region_index(pred.detach(), target.detach(), label_weight, edges, mu)
    if label_weight is None:
        total = torch.tensor(float(pred.numel()), device=pred.device)
    else:
        total = label_weight.detach().float().sum()
    weights, total = harmonize(index, edges.numel() - 1, total, acc_sum, momentum, stats,
                               global_density, options)
    if reduction == 'none':
        return ghmr_elementwise(pred, target, index, weights, mu).reshape(shape)
    if pred.numel() == 0:  # keep the graph connected
        return pred.to(compute_dtype(pred)).sum() * 0
    if (pred.requires_grad or target.requires_grad) and torch.is_grad_enabled():
        loss = _WeightedASL1Sum.apply(pred, target, index, weights, mu)
    else:
        loss = ghmr_weighted_sum(pred, target, index, weights, mu)
    if reduction == 'mean':
        loss = loss / (total + EPS)
    return loss


@MODELS.register_module()
class GHMRLoss(HarmonizedLoss):
    """GHM-R loss, a drop-in, exact and sync-free replacement for MMDetection's ``GHMR``.

    Same arguments, defaults, buffers and values as
    ``mmdet.models.losses.GHMR``; O(N), no host sync, float32 weights and
    sums, ``reduction='sum'`` supported, inputs checked.

    Non-finite predictions or targets (NaN, +-inf) never raise: they count in
    no region (the EMA ``acc_sum`` stays as if they had been ignored), and the
    loss and their gradients are NaN, so an AMP grad scaler skips the step.
    The reference returns NaN too and also keeps them out of its regions.

    Args:
        mu (float): Authentic Smooth L1 parameter, > 0. Defaults to 0.02.
        bins (int): number of unit regions. Defaults to 10.
        momentum (float): EMA momentum in [0, 1). Defaults to 0.
        loss_weight (float): multiplies the loss. Defaults to 1.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. Defaults to
            ``'mean'``.
        global_density (bool): estimate the gradient density over the
            batches of all processes (see :class:`HarmonizedLoss`).
            Defaults to False.
        ema_bias_correction (bool): density ``S_j / (1 - m**t_j)``.
            Defaults to False (as published).
        weight_cap (float, optional): ``beta_j <- min(beta_j, weight_cap)``.
            Defaults to None (no cap, as published).
        warmup (int): training iterations of the blend from uniform to GHM
            weights (needs ``GHMWarmupHook``). Defaults to 0 (as published).
            See :class:`HarmonizedLoss` for all three.
    """

    def __init__(self, mu=0.02, bins=10, momentum=0, loss_weight=1.0, reduction='mean',
                 global_density=False, ema_bias_correction=False, weight_cap=None, warmup=0):
        super().__init__(bins, momentum, 1e3, loss_weight, reduction, global_density,
                         ema_bias_correction=ema_bias_correction, weight_cap=weight_cap,
                         warmup=warmup)
        self.mu = check_positive('mu', mu)

    def forward(self, pred: Tensor, target: Tensor, label_weight: Optional[Tensor] = None,
                avg_factor=None, reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): predicted deltas ``(N, 4)``.
            target (Tensor): target deltas ``(N, 4)``.
            label_weight (Tensor, optional): ``(N, 4)``; > 0 marks valid
                elements, their sum normalises the loss.
            avg_factor: ignored, as in the reference.
            reduction_override (str, optional): overrides ``reduction``.

        Returns:
            Tensor: float32 scalar, or ``pred``'s shape for ``'none'``.
        """
        reduction = self._reduction(reduction_override)
        check_float_tensor('pred', pred)
        check_float_tensor('target', target)
        if target.shape != pred.shape:
            raise ValueError(f'target must have pred\'s shape {tuple(pred.shape)}, '
                             f'got {tuple(target.shape)}')
        check_weight_shape('label_weight', label_weight, pred, allow_rows=False)
        loss = ghm_r_loss(pred, target, label_weight, self.edges, self.mu, self.acc_sum,
                          self.momentum, reduction, self.region_stats, self.global_density,
                          self.harmonize_options())
        return loss * self.loss_weight

    def extra_repr(self) -> str:
        return (f'mu={self.mu}, bins={self.bins}, momentum={self.momentum}, '
                f'loss_weight={self.loss_weight}, reduction={self.reduction!r}')
