"""GHM-C for softmax classifiers (Faster R-CNN's and SSD's ``C + 1``-way heads).

For logits ``z`` ``(N, C + 1)`` and label ``y``, the gradient of softmax CE
w.r.t. ``z`` is ``softmax(z) - onehot(y)``. Its largest component, and half
its L1 norm, is ``1 - p_y``; we take

    g = 1 - p_y = 1 - softmax(z)[y]        (in [0, 1])

as the example's gradient norm. It plays the role ``|p - t|`` plays for
sigmoid CE: 0 for a confident correct example, 1 for a confident wrong one,
and with two classes it *equals* the sigmoid norm of the logit difference.
(The L2 norm would mix in how the wrong mass is spread over the other
classes and range over [0, sqrt(2)], breaking the unit regions.) Examples
(rows, not row x class elements) are then harmonized as in GHM-C:
``beta = N / (density * non-empty regions)``, loss ``sum(beta * CE) / N``.
"""
from typing import Optional

import torch
from torch import Tensor

from .fused import fused
from .gradient_density import (EPS, HarmonizeOptions, compute_dtype, element_weights, harmonize,
                               region_index)


@fused
def label_ce_and_finite_rows(logits: Tensor, labels: Tensor):
    """Per row: ``-log softmax(logits)[label]``, the finite flag and ``logsumexp(logits)``.

    ``(N,)`` float32 (float64 kept), bool, float32. The CE is computed as
    ``log_softmax`` does (``x - max - log(sum(exp(x - max)))``); compiled,
    one loop over each row gives all of them.
    """
    x = logits.to(compute_dtype(logits))
    row_max = x.amax(dim=-1, keepdim=True)
    shifted = x - row_max
    log_sum = shifted.exp().sum(dim=-1, keepdim=True).log()
    label_shifted = shifted.gather(-1, labels.long().unsqueeze(-1))
    return ((log_sum - label_shifted).squeeze(-1), x.isfinite().all(dim=-1),
            (row_max + log_sum).squeeze(-1))


def softmax_gradient_norm(logits: Tensor, labels: Tensor) -> Tensor:
    """``1 - softmax(logits)[label]`` per row, ``(N,)``, float32 (float64 kept).

    From :func:`label_ce_and_finite_rows`, as the loss computes it.
    """
    return 1 - (-label_ce_and_finite_rows(logits, labels)[0]).exp()


@fused
def label_ce_grad(logits: Tensor, labels: Tensor, logsumexp: Tensor,
                  grad_rows: Tensor) -> Tensor:
    """``grad_rows[:, None] * (softmax(logits) - onehot(labels))`` in ``logits``' dtype.

    ``softmax = exp(x - logsumexp)`` with the forward's ``logsumexp``: one
    exponential per element and no row reduction.
    """
    x = logits.to(compute_dtype(logits))
    onehot = torch.arange(x.shape[-1], device=x.device) == labels.long().unsqueeze(-1)
    grad = (x - logsumexp.unsqueeze(-1)).exp() - onehot.to(x.dtype)
    return (grad * grad_rows.unsqueeze(-1)).to(logits.dtype)


class _LabelCE(torch.autograd.Function):
    """Softmax CE of each row and whether its logits are finite, in one read of the logits.

    Backward computes the gradient from the saved logits and row
    ``logsumexp`` in one more read (``F.cross_entropy`` writes the
    log-softmax in forward and reads it back with its gradient).
    """

    @staticmethod
    def forward(ctx, logits, labels):
        ce, finite, logsumexp = label_ce_and_finite_rows(logits, labels)
        ctx.save_for_backward(logits, labels, logsumexp)
        ctx.mark_non_differentiable(finite)
        return ce, finite

    @staticmethod
    def backward(ctx, grad_ce, grad_finite):
        logits, labels, logsumexp = ctx.saved_tensors
        return label_ce_grad(logits, labels, logsumexp, grad_ce), None


def ghm_c_softmax_loss(pred: Tensor,
                       labels: Tensor,
                       label_weight: Optional[Tensor],
                       edges: Tensor,
                       acc_sum: Optional[Tensor] = None,
                       momentum: float = 0.0,
                       reduction: str = 'mean',
                       stats: Optional[Tensor] = None,
                       global_density: bool = False,
                       options: Optional[HarmonizeOptions] = None) -> Tensor:
    """Softmax GHM-C loss.

    Args:
        pred (Tensor): logits ``(N, C + 1)``; the last class is background.
        labels (Tensor): integer labels ``(N,)`` in ``[0, C]``.
        label_weight (Tensor | None): ``(N,)``; rows with weight > 0 count.
        edges, acc_sum, momentum, stats, global_density, options: as in
            :func:`mmdet_ghm.losses.ghm_c.ghm_c_loss`.
        reduction (str): ``'none'`` (``(N,)``), ``'sum'`` or ``'mean'``.

    Returns:
        Tensor: float32 loss; NaN if a row holds a non-finite logit (that row
        counts in no region; its gradient is NaN).
    """
    # One read of the logits gives the CE (with its own backward), the
    # gradient norm and which rows are finite.
    ce, finite = _LabelCE.apply(pred, labels)
    with torch.no_grad():
        g = 1 - (-ce.detach()).exp()  # softmax_gradient_norm from the same log-softmax
        valid = finite if label_weight is None else finite & (label_weight > 0)
        index = region_index(g, valid, edges)
        bins = edges.numel() - 1
        # the positives (foreground rows), for the statistics only
        positives = None if stats is None else torch.where(
            labels < pred.shape[1] - 1, index,
            torch.full((), bins, dtype=index.dtype, device=index.device))
    weights, num_valid = harmonize(index, bins, None, acc_sum, momentum, stats,
                                   global_density, options, positives)
    loss = element_weights(weights, index, finite) * ce
    if reduction == 'none':
        return loss
    loss = loss.sum()
    if reduction == 'mean':
        loss = loss / (num_valid + EPS)
    return loss
