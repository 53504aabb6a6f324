"""How a sigmoid classification loss splits its gradient between positives and negatives.

The functional core of :class:`~mmdet_ghm.engine.hooks.ClsGradientShareHook`:
for one call of a head's classification loss, with logits ``pred`` ``(N, C)``,
labels ``(N,)`` in ``[0, C]`` (``C`` is background) and optional label weights
``(N,)`` or ``(N, C)`` (rows or elements with weight 0 are ignored), it counts
the valid (anchor, class) elements, the positive ones (each foreground row's
own class) and those whose gradient norm of sigmoid CE, ``g = |sigmoid(x) - t|``,
is large, and sums the absolute gradient the loss actually sent back to the
logits over the valid and over the positive elements. Every quantity stays a
tensor on the logits' device (no host synchronisation); :data:`FIELDS` names
the entries of the accumulator.

Any loss works (CE, FL, GHM-C, ...): the gradient is read from autograd, so
the share is the one the loss applied, with its normalisation and
``loss_weight`` (they cancel in the share).
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

#: The accumulator's entries, in order: ``grad_total`` / ``grad_pos`` /
#: ``grad_neg_overlap`` sum of the absolute gradient over the valid / positive
#: elements / negatives with ``g >= negative_g``; ``nonfinite``: valid
#: elements whose gradient was NaN or infinite (left out of the sums; an fp16
#: overflow step); ``valid`` / ``pos`` element counts; ``neg_overlap``: negatives
#: with ``g >= negative_g``; ``pos_hard``: positives with ``g >= hard_g``.
FIELDS = ('grad_total', 'grad_pos', 'grad_neg_overlap', 'nonfinite', 'valid', 'pos',
          'neg_overlap', 'pos_hard')
#: The entries :func:`gradient_sums` and :func:`forward_counts` give, in order.
BACKWARD_FIELDS = slice(0, 4)
FORWARD_FIELDS = slice(4, 8)
#: A negative at ``g >= 0.3`` scores ``p >= 0.3``: where the study's GHM models put
#: their positives (``mmdet_ghm.study.mechanism.NEGATIVE_OVERLAP_G``).
NEGATIVE_G = 0.3
HARD_G = 0.5


def check_cls_inputs(pred: Tensor, labels: Tensor, weights: Optional[Tensor]) -> None:
    """Raise ``ValueError`` naming the shape or dtype that does not fit."""
    if pred.dim() != 2 or not pred.is_floating_point():
        raise ValueError('the classification loss\'s first input must be float logits (N, C), '
                         f'got shape {tuple(pred.shape)} and dtype {pred.dtype}')
    if labels.shape != pred.shape[:1] or labels.is_floating_point():
        raise ValueError(f'labels must be integers of shape ({pred.shape[0]},) for logits '
                         f'{tuple(pred.shape)}, got shape {tuple(labels.shape)} and dtype '
                         f'{labels.dtype}')
    if weights is not None and weights.shape not in (pred.shape[:1], pred.shape):
        raise ValueError(f'label weights must have shape ({pred.shape[0]},) or '
                         f'{tuple(pred.shape)}, got {tuple(weights.shape)}')


def element_masks(labels: Tensor, weights: Optional[Tensor],
                  num_classes: int) -> Tuple[Tensor, Tensor]:
    """``(valid, positive)`` bool masks ``(N, C)`` of the (anchor, class) elements.

    A row is foreground when its label is below ``num_classes``; its positive
    element is its own class. Weights of 0 (row or element) make elements invalid.
    """
    classes = torch.arange(num_classes, device=labels.device)
    positive = labels.reshape(-1, 1) == classes  # background (== C) matches no class
    if weights is None:
        valid = torch.ones_like(positive)
    else:
        valid = (weights.reshape(labels.shape[0], -1) > 0).expand_as(positive)
    return valid, positive & valid


def overlapping_negatives(pred: Tensor, valid: Tensor, positive: Tensor,
                          negative_g: float = NEGATIVE_G) -> Tensor:
    """Bool mask ``(N, C)`` of the valid negatives scored ``p = g >= negative_g``."""
    return _overlapping(torch.sigmoid(pred.detach().float()), valid, positive, negative_g)


def _overlapping(prob: Tensor, valid: Tensor, positive: Tensor, negative_g: float) -> Tensor:
    return valid & ~positive & (prob >= negative_g)


def forward_counts(pred: Tensor, valid: Tensor, positive: Tensor,
                   negative_g: float = NEGATIVE_G, hard_g: float = HARD_G) -> Tensor:
    """``valid``, ``pos``, ``neg_overlap`` and ``pos_hard`` counts (float64, shape (4,))."""
    prob = torch.sigmoid(pred.detach().float())
    counts = torch.stack([valid.sum(), positive.sum(),
                          _overlapping(prob, valid, positive, negative_g).sum(),
                          (positive & (1 - prob >= hard_g)).sum()])
    return counts.double()


def gradient_sums(grad: Tensor, valid: Tensor, positive: Tensor, overlapping: Tensor) -> Tensor:
    """``grad_total``, ``grad_pos``, ``grad_neg_overlap`` and ``nonfinite`` of one gradient
    (float64, shape (4,)); ``overlapping``: :func:`overlapping_negatives`."""
    magnitude = grad.detach().double().abs()
    finite = torch.isfinite(magnitude)
    magnitude = torch.where(finite, magnitude, torch.zeros_like(magnitude))
    return torch.stack([(magnitude * valid).sum(), (magnitude * positive).sum(),
                        (magnitude * overlapping).sum(), (valid & ~finite).sum().double()])


def summarize_shares(totals) -> Optional[dict]:
    """Shares from an accumulator read to the host (a sequence in :data:`FIELDS` order).

    Returns ``None`` when no gradient was counted (no valid element, or no
    backward); else ``pos_share`` (the positives' share of the absolute
    gradient), ``pos_frac`` (their share of the valid elements),
    ``neg_overlap`` (share of the negatives with ``g >= negative_g``),
    ``neg_overlap_share`` (those negatives' share of the absolute gradient),
    ``pos_hard`` (share of the positives with ``g >= hard_g``, ``None``
    without positives) and ``nonfinite`` (count).
    """
    values = dict(zip(FIELDS, (float(v) for v in totals)))
    if values['grad_total'] <= 0 or values['valid'] <= 0:
        return None
    negatives = values['valid'] - values['pos']
    return dict(
        pos_share=values['grad_pos'] / values['grad_total'],
        pos_frac=values['pos'] / values['valid'],
        neg_overlap=values['neg_overlap'] / negatives if negatives > 0 else 0.0,
        neg_overlap_share=values['grad_neg_overlap'] / values['grad_total'],
        pos_hard=values['pos_hard'] / values['pos'] if values['pos'] > 0 else None,
        nonfinite=values['nonfinite'])
