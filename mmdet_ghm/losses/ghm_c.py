"""GHM-C: gradient harmonized sigmoid cross-entropy (Li, Liu & Wang, AAAI 2019).

For logits ``x`` and binary targets ``t`` the gradient norm of sigmoid CE
w.r.t. ``x`` is ``g = |sigmoid(x) - t|``. Each valid element is weighted by
``beta = N / (density of its g-region * number of non-empty regions)`` and
the loss is ``sum(beta * CE) / N``; see :mod:`.gradient_density`.

The work is three passes over the ``N x C`` elements, two of them fused
kernels: the region index (uint8), its count, and one pass that gives both
the weighted CE sum and its gradient (saved in float32 for backward, which
only scales it). Targets are built from the integer labels on the fly: no
one-hot tensor is materialised.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet.registry import MODELS

from .checks import check_float_tensor, check_labels, check_unit_range, check_weight_shape
from .fused import fused
from .ghm_c_softmax import ghm_c_softmax_loss
from .gradient_density import (EPS, HarmonizeOptions, compute_dtype, element_weights, harmonize,
                               region_index)
from .harmonized_loss import HarmonizedLoss


def binary_targets(target: Tensor, pred: Tensor, scores: Optional[Tensor] = None) -> Tensor:
    """Targets of ``pred``'s shape from labels ``(N,)`` or targets of ``pred``'s shape.

    With ``scores`` ``(N,)`` (the quality targets of GFL/TOOD heads), the
    labelled class of row ``i`` gets ``scores[i]`` instead of 1, and the other
    classes 0. Float32 (float64 for float64 ``pred``); labels are compared
    with the class indices on the fly, so no one-hot tensor is materialised
    when fused.
    """
    dtype = compute_dtype(pred)
    if target.dim() == pred.dim():
        return target.to(dtype)
    classes = torch.arange(pred.shape[-1], device=pred.device)
    hit = target.unsqueeze(-1) == classes
    if scores is None:
        return hit.to(dtype)
    return torch.where(hit, scores.to(dtype).unsqueeze(-1), torch.zeros((), dtype=dtype,
                                                                       device=pred.device))


def valid_mask(label_weight: Optional[Tensor], pred: Tensor) -> Tensor:
    """Bool mask of elements that count: ``label_weight > 0``, broadcast to rows."""
    if label_weight is None:
        return torch.ones((), dtype=torch.bool, device=pred.device)
    if label_weight.dim() < pred.dim():
        label_weight = label_weight.unsqueeze(-1)
    return label_weight > 0


def split_quality_target(target, pred: Tensor, use_sigmoid: bool
                         ) -> Tuple[Tensor, Optional[Tensor]]:
    """``(labels, scores)`` of a quality-aware head, or ``(target, None)``; checked.

    Args:
        target: labels / targets, or a ``(labels, scores)`` pair: labels
            ``(N,)`` integers, scores ``(N,)`` floating point in [0, 1].
        pred (Tensor): logits ``(N, C)``.
        use_sigmoid (bool): the pair is accepted by the sigmoid loss only.
    """
    if isinstance(target, Tensor):
        return target, None
    if not isinstance(target, (tuple, list)) or len(target) != 2:
        raise TypeError('target must be a tensor or a (labels, scores) pair, got '
                        f'{type(target).__name__}' +
                        (f' of length {len(target)}' if isinstance(target, (tuple, list)) else ''))
    if not use_sigmoid:
        raise ValueError('(labels, scores) targets need use_sigmoid=True; the softmax GHM-C '
                         'takes labels only')
    labels, scores = target
    if not isinstance(labels, Tensor) or labels.dim() != 1:
        raise ValueError(f'the labels of a (labels, scores) target must have shape '
                         f'({pred.shape[0]},), got {_shape(labels)}')
    check_float_tensor('scores', scores)
    if scores.shape != labels.shape:
        raise ValueError(f'scores must have the labels\' shape {tuple(labels.shape)}, '
                         f'got {tuple(scores.shape)}')
    check_unit_range('scores', scores)
    return labels, scores


def _shape(value) -> str:
    return str(tuple(value.shape)) if isinstance(value, Tensor) else type(value).__name__


@fused
def ghmc_region_index(pred: Tensor, target: Tensor, label_weight: Optional[Tensor],
                      edges: Tensor, scores: Optional[Tensor]) -> Tensor:
    """uint8 region of ``|sigmoid(pred) - t|`` per element; ``bins`` if invalid.

    Elements with a non-finite logit are invalid (``sigmoid(inf)`` is finite,
    but the logit is not).
    """
    g = (pred.to(compute_dtype(pred)).sigmoid() - binary_targets(target, pred, scores)).abs()
    return region_index(g, valid_mask(label_weight, pred) & pred.isfinite(), edges)


def ghmc_positive_index(index: Tensor, target: Tensor, bins: int) -> Tensor:
    """The regions of the positives only, ``bins`` elsewhere (uint8, for statistics).

    Positives are the labelled class of each row (labels ``(N,)`` below the
    background label ``C``: one gather over the rows, not the ``N x C``
    elements), or the elements with a target > 0 (targets of ``index``'s shape).
    """
    sentinel = torch.full((), bins, dtype=index.dtype, device=index.device)
    if target.dim() == index.dim():
        return torch.where(target > 0, index, sentinel)
    num_classes = index.shape[-1]
    labelled = index.gather(-1, target.clamp(max=num_classes - 1).long().unsqueeze(-1))
    return torch.where(target < num_classes, labelled.squeeze(-1), sentinel)


@fused
def ghmc_elementwise(pred: Tensor, target: Tensor, index: Tensor, weights: Tensor,
                     scores: Optional[Tensor]) -> Tensor:
    """``weights[index] * CE`` per element, float32 (``reduction='none'``)."""
    ce = F.binary_cross_entropy_with_logits(
        pred.to(compute_dtype(pred)), binary_targets(target, pred, scores), reduction='none')
    return element_weights(weights, index, pred.isfinite()) * ce


@fused
def ghmc_weighted_sum(pred: Tensor, target: Tensor, index: Tensor, weights: Tensor,
                      scores: Optional[Tensor]) -> Tensor:
    """``sum(weights[index] * CE)``, float32 scalar accumulated in float64 (no gradient)."""
    ce = F.binary_cross_entropy_with_logits(
        pred.to(compute_dtype(pred)), binary_targets(target, pred, scores), reduction='none')
    weight = element_weights(weights, index, pred.isfinite())
    return (weight * ce).double().sum().to(ce.dtype)


@fused
def ghmc_weighted_sum_and_grad(pred: Tensor, target: Tensor, index: Tensor, weights: Tensor,
                               scores: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """``sum(w * CE)`` and its gradient ``w * (sigmoid(x) - t)``, in one pass.

    ``w = weights[index]``. CE and the sigmoid share ``exp(-|x|)``:
    ``CE = max(x, 0) - x t + log1p(e)``, ``sigmoid(x) = 1 / (1 + e)`` for
    ``x >= 0`` and ``e / (1 + e)`` below. Returns the float32 sum
    (accumulated in float64) and the ``(N, C)`` gradient in float32 (float64
    for float64 logits): half-precision could not hold ``w * (p - t)``
    before it is scaled by the incoming gradient (``w`` reaches ``N / n``).
    """
    x = pred.to(compute_dtype(pred))
    t = binary_targets(target, pred, scores)
    weight = element_weights(weights, index, pred.isfinite())
    e = torch.exp(-x.abs())
    ce = x.clamp(min=0) - x * t + torch.log1p(e)
    sigmoid = torch.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return (weight * ce).double().sum().to(x.dtype), weight * (sigmoid - t)


class _WeightedCESum(torch.autograd.Function):
    """``sum(w * CE)`` whose gradient is computed in the same pass as the sum.

    The forward pass reads the logits once for both and keeps the float32
    gradient (4 bytes per element; the uint8 region index, 1 more, is kept to
    recompute it). The first backward scales that buffer in place and returns
    it, so no second buffer is allocated; a later backward through the same
    graph (``retain_graph=True``, gradcheck) finds it consumed and computes
    the gradient again from the saved inputs, with the same kernel, so every
    backward returns the same values.
    """

    @staticmethod
    def forward(ctx, pred, target, index, weights, scores):
        total, grad = ghmc_weighted_sum_and_grad(pred, target, index, weights, scores)
        ctx.save_for_backward(pred, target, index, weights, scores)
        ctx.grad = grad  # an intermediate: consumed (scaled in place) by the first backward
        return total

    @staticmethod
    def backward(ctx, grad_output):
        grad, ctx.grad = ctx.grad, None
        pred, target, index, weights, scores = ctx.saved_tensors
        if grad is None:  # backward again through a retained graph
            grad = ghmc_weighted_sum_and_grad(pred, target, index, weights, scores)[1]
        return grad.mul_(grad_output).to(pred.dtype), None, None, None, None


def ghm_c_loss(pred: Tensor,
               target: Tensor,
               label_weight: Optional[Tensor],
               edges: Tensor,
               acc_sum: Optional[Tensor] = None,
               momentum: float = 0.0,
               reduction: str = 'mean',
               stats: Optional[Tensor] = None,
               global_density: bool = False,
               options: Optional[HarmonizeOptions] = None,
               scores: Optional[Tensor] = None) -> Tensor:
    """GHM-C loss (functional core of :class:`GHMCLoss`).

    Args:
        pred (Tensor): logits ``(N, C)``, float32/float16/bfloat16.
        target (Tensor): integer labels ``(N,)`` in ``[0, C]`` (``C`` is
            background), or binary targets of ``pred``'s shape.
        label_weight (Tensor | None): ``(N,)`` or ``pred``'s shape; elements
            with weight > 0 count (the weight's value is not used, as in the
            reference). ``None``: all count.
        edges (Tensor): ``(bins + 1,)`` region edges.
        acc_sum (Tensor | None): ``(bins,)`` float32 EMA buffer, updated in
            place when ``momentum > 0``.
        momentum (float): EMA momentum in [0, 1).
        reduction (str): ``'none'`` (``(N, C)`` weighted CE), ``'sum'`` or
            ``'mean'`` (sum divided by the number of valid elements).
        stats (Tensor | None): ``(4, bins)`` float64 accumulator of region
            counts and weights, of all elements and of the positives (see
            :func:`accumulate_region_stats`).
        global_density (bool): count regions over all processes (see
            :func:`harmonize`).
        options (HarmonizeOptions | None): bias correction, weight cap,
            warm-up (see :func:`harmonize`); ``None``: as published.
        scores (Tensor | None): ``(N,)`` soft targets in [0, 1] of the
            labelled classes (with labels ``target``): ``t = scores[i]`` for
            ``c == target[i]``, 0 elsewhere (Quality Focal Loss targets).

    Returns:
        Tensor: float32 loss; NaN if a logit is not finite (that element
        counts in no region; its gradient is NaN).
    """
    index = ghmc_region_index(pred.detach(), target, label_weight, edges, scores)
    bins = edges.numel() - 1
    positives = ghmc_positive_index(index, target, bins) if stats is not None else None
    weights, num_valid = harmonize(index, bins, None, acc_sum, momentum, stats,
                                   global_density, options, positives)
    if reduction == 'none':
        return ghmc_elementwise(pred, target, index, weights, scores)
    if pred.numel() == 0:  # keep the graph connected
        return pred.to(compute_dtype(pred)).sum() * 0
    if pred.requires_grad and torch.is_grad_enabled():
        total = _WeightedCESum.apply(pred, target, index, weights, scores)
    else:
        total = ghmc_weighted_sum(pred, target, index, weights, scores)
    if reduction == 'mean':
        total = total / (num_valid + EPS)
    return total


@MODELS.register_module()
class GHMCLoss(HarmonizedLoss):
    """GHM-C loss, a drop-in, exact and sync-free replacement for MMDetection's ``GHMC``.

    Same arguments, defaults, buffers (``edges``, ``acc_sum``) and values as
    ``mmdet.models.losses.GHMC``; the work is O(N) with no host sync. Beyond
    the reference: ``reduction='sum'`` works, weights and sums are float32
    whatever the logits' dtype, and inputs are checked.

    Non-finite logits (NaN, +-inf) never raise: they count in no region, so
    the EMA ``acc_sum`` stays as if they had been ignored
    (``label_weight = 0``), and the loss and their gradients are NaN, so an
    AMP grad scaler skips the step. (The reference also returns NaN for NaN
    logits and keeps them out of its regions; +-inf logits, whose ``g`` is
    finite, it does count.)

    Args:
        bins (int): number of unit regions ``M``. Defaults to 10.
        momentum (float): EMA momentum of the region counts, in [0, 1).
            Defaults to 0 (no EMA).
        use_sigmoid (bool): True: sigmoid CE over ``(N, C)`` logits, one
            example per (anchor, class). False: softmax CE over ``(N, C + 1)``
            logits (last = background), one example per row, with gradient
            norm ``1 - p_y`` (see :mod:`.ghm_c_softmax`). Defaults to True.
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

    COUNTS_POSITIVES = True

    def __init__(self, bins=10, momentum=0, use_sigmoid=True, loss_weight=1.0,
                 reduction='mean', global_density=False, ema_bias_correction=False,
                 weight_cap=None, warmup=0):
        super().__init__(bins, momentum, 1.0 + 1e-6, loss_weight, reduction, global_density,
                         ema_bias_correction=ema_bias_correction, weight_cap=weight_cap,
                         warmup=warmup)
        if not isinstance(use_sigmoid, bool):
            raise TypeError(f'use_sigmoid must be True or False, got {use_sigmoid!r}')
        self.use_sigmoid = use_sigmoid

    def forward(self, pred: Tensor, target: Union[Tensor, Tuple[Tensor, Tensor]],
                label_weight: Optional[Tensor] = None, reduction_override: Optional[str] = None,
                *, avg_factor=None, weight: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        The positional order is the reference ``GHMC.forward``'s; heads pass
        ``avg_factor`` by keyword.

        Args:
            pred (Tensor): logits ``(N, C)`` (softmax: ``(N, C + 1)``).
            target (Tensor | tuple): labels ``(N,)`` in ``[0, C]``, targets
                ``(N, C)`` in [0, 1], or ``(labels, scores)``, each ``(N,)``,
                as GFL/TOOD heads pass (the labelled class's target is the
                score in [0, 1], e.g. the IoU of the predicted box; the other
                classes' is 0). Softmax: labels only.
            label_weight (Tensor, optional): ``(N,)`` or ``(N, C)``; > 0 marks
                valid elements (softmax: ``(N,)``).
            reduction_override (str, optional): overrides ``reduction``.
            avg_factor: keyword only; ignored, as in the reference: the loss
                normalises by its own count of valid elements.
            weight (Tensor, optional): keyword only, another name of
                ``label_weight`` (GFL/TOOD heads pass ``weight=``).

        Returns:
            Tensor: float32 scalar, or ``(N, C)`` (softmax: ``(N,)``) for
            ``reduction='none'``.
        """
        reduction = self._reduction(reduction_override)
        if weight is not None:
            if label_weight is not None:
                raise ValueError('give the element weights as label_weight or as weight, '
                                 'not both')
            label_weight = weight
        check_float_tensor('pred', pred)
        if pred.dim() != 2:
            raise ValueError(f'pred must have shape (N, C), got {tuple(pred.shape)}')
        target, scores = split_quality_target(target, pred, self.use_sigmoid)
        if not self.use_sigmoid:
            return self._softmax_forward(pred, target, label_weight, reduction)
        if target.dim() == 1:
            check_labels(target, pred, num_classes=pred.shape[1])
        elif target.shape != pred.shape:
            raise ValueError(f'target must be labels ({pred.shape[0]},) or binary targets '
                             f'{tuple(pred.shape)}, got {tuple(target.shape)}')
        else:
            check_unit_range('target', target)
        check_weight_shape('label_weight', label_weight, pred, allow_rows=True)
        loss = ghm_c_loss(pred, target, label_weight, self.edges, self.acc_sum,
                          self.momentum, reduction, self.region_stats, self.global_density,
                          self.harmonize_options(), scores)
        return loss * self.loss_weight

    def _softmax_forward(self, pred, labels, label_weight, reduction):
        if labels.dim() != 1:
            raise ValueError(f'use_sigmoid=False takes labels of shape ({pred.shape[0]},), '
                             f'got {tuple(labels.shape)}')
        check_labels(labels, pred, num_classes=pred.shape[1] - 1)
        if label_weight is not None and label_weight.shape != labels.shape:
            raise ValueError(f'label_weight must have shape ({pred.shape[0]},), '
                             f'got {tuple(label_weight.shape)}')
        loss = ghm_c_softmax_loss(pred, labels, label_weight, self.edges, self.acc_sum,
                                  self.momentum, reduction, self.region_stats,
                                  self.global_density, self.harmonize_options())
        return loss * self.loss_weight

    def extra_repr(self) -> str:
        return (f'bins={self.bins}, momentum={self.momentum}, use_sigmoid={self.use_sigmoid}, '
                f'loss_weight={self.loss_weight}, reduction={self.reduction!r}')
