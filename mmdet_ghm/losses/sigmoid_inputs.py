"""Inputs of the sigmoid classification losses GHM is compared with.

:class:`AlphaBalancedCELoss`, :class:`ContinuousFocalLoss` and
:class:`OHEMLoss` take the inputs MMDetection's dense heads pass to
``loss_cls``: logits ``(N, C)``; integer labels ``(N,)`` in ``[0, C]``
(``C`` is background) or binary / soft targets of the logits' shape with
values in [0, 1]; and an optional weight ``(N,)`` or ``(N, C)``. The checks
here raise errors that name the bad value. Tensor *values* are checked as in
:func:`.checks.check_label_range`: eagerly on CPU, by an asynchronous device
assertion on accelerators and under ``torch.compile`` (no host sync).
Logits are not checked: NaN or infinite logits give a non-finite loss (OHEM
included), never an error.
"""
from typing import Optional

import torch.nn as nn
from torch import Tensor

from .checks import (check_float_tensor, check_labels, check_real, check_reduction,
                     check_unit_range, check_weight_shape, resolve_reduction)


def check_use_sigmoid(loss_name: str, use_sigmoid) -> bool:
    """``use_sigmoid`` must be True: the losses are sigmoid (per-class) losses.

    Dense heads read ``use_sigmoid`` from the loss config to size their
    classifier (``C`` logits with sigmoid, ``C + 1`` with softmax).
    """
    if use_sigmoid is not True:
        raise ValueError(f'{loss_name} supports only use_sigmoid=True (sigmoid CE); '
                         f'got use_sigmoid={use_sigmoid!r}')
    return True


def check_sigmoid_inputs(pred: Tensor, target: Tensor, weight: Optional[Tensor]) -> None:
    """Check logits, labels or targets, and weight; raise naming the bad value.

    Args:
        pred (Tensor): logits ``(N, C)``, floating point.
        target (Tensor): integer labels ``(N,)`` in ``[0, C]``, or targets of
            ``pred``'s shape in [0, 1] (any real or bool dtype).
        weight (Tensor | None): ``(N,)`` or ``(N, C)``.
    """
    check_float_tensor('pred', pred)
    if pred.dim() != 2:
        raise ValueError(f'pred must have shape (N, C), got {tuple(pred.shape)}')
    if not isinstance(target, Tensor):
        raise TypeError(f'target must be a torch.Tensor, got {type(target).__name__}')
    if target.dim() == 1:
        check_labels(target, pred, num_classes=pred.shape[1])
    elif target.shape == pred.shape:
        check_unit_range('target', target)
    else:
        raise ValueError(f'target must be labels ({pred.shape[0]},) or targets '
                         f'{tuple(pred.shape)}, got {tuple(target.shape)}')
    check_weight_shape('weight', weight, pred, allow_rows=True)


def element_weight(weight: Optional[Tensor], pred: Tensor) -> Optional[Tensor]:
    """``weight`` broadcastable to ``pred`` (``(N,)`` becomes ``(N, 1)``), float."""
    if weight is None:
        return None
    if weight.dim() < pred.dim():
        weight = weight.unsqueeze(-1)
    return weight.float() if not weight.is_floating_point() else weight


class SigmoidClassificationLoss(nn.Module):
    """Module shell of the sigmoid baselines: arguments, input checks, forward contract.

    Subclasses implement :meth:`compute`; ``forward(pred, target, weight=None,
    avg_factor=None, reduction_override=None)`` is MMDetection's contract:
    logits ``(N, C)``, labels ``(N,)`` in ``[0, C]`` or targets ``(N, C)`` in
    [0, 1], weight ``(N,)`` or ``(N, C)``; returns a float32 scalar, or
    ``(N, C)`` for ``'none'``.
    """

    def __init__(self, use_sigmoid: bool, reduction: str, loss_weight: float):
        super().__init__()
        self.use_sigmoid = check_use_sigmoid(type(self).__name__, use_sigmoid)
        self.reduction = check_reduction(reduction)
        self.loss_weight = check_real('loss_weight', loss_weight)

    def compute(self, pred: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str,
                avg_factor) -> Tensor:
        """The loss before ``loss_weight`` (checked inputs)."""
        raise NotImplementedError

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor=None, reduction_override: Optional[str] = None) -> Tensor:
        """Check the inputs, then ``loss_weight * compute(...)``."""
        reduction = resolve_reduction(self.reduction, reduction_override)
        check_sigmoid_inputs(pred, target, weight)
        return self.loss_weight * self.compute(pred, target, weight, reduction, avg_factor)
