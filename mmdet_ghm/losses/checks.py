"""Argument checks shared by the losses: clear errors that name the bad value.

Configuration values and shapes are checked eagerly, in Python. Tensor
*values* (labels in range) cannot be checked without reading them: on CPU
that read is an ordinary memory read and raises ``ValueError`` at once; on an
accelerator, or inside ``torch.compile``, an asynchronous device assertion is
queued instead, so the check costs no host synchronisation and fails at the
next point the host waits for the device anyway.
"""
import math
import numbers
from typing import Optional

import torch
from torch import Tensor

from ..utils.torch_compat import assert_async, is_compiling
from .gradient_density import MAX_BINS

REDUCTIONS = ('none', 'mean', 'sum')


def check_bins(bins) -> int:
    """``bins``: a positive integer no larger than :data:`MAX_BINS`."""
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral):
        raise TypeError(f'bins must be a positive integer, got {bins!r} '
                        f'of type {type(bins).__name__}')
    if not 1 <= bins <= MAX_BINS:
        raise ValueError(f'bins must be in [1, {MAX_BINS}], got {bins}')
    return int(bins)


def check_momentum(momentum) -> float:
    """``momentum``: a real number in [0, 1)."""
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f'momentum must be a number in [0, 1), got {momentum!r}')
    if not 0 <= momentum < 1:
        raise ValueError(f'momentum must be in [0, 1), got {momentum}')
    return float(momentum)


def check_positive(name: str, value) -> float:
    """A real number > 0 (``mu``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f'{name} must be a positive number, got {value!r}')
    if not value > 0:
        raise ValueError(f'{name} must be > 0, got {value}')
    return float(value)


def check_real(name: str, value) -> float:
    """A finite real number (``loss_weight``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f'{name} must be a number, got {value!r}')
    return float(value)


def check_reduction(reduction, name: str = 'reduction') -> str:
    """One of ``'none'``, ``'mean'``, ``'sum'``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f'{name} must be one of {REDUCTIONS}, got {reduction!r}')
    return reduction


def check_float_tensor(name: str, tensor) -> Tensor:
    """A floating-point tensor."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f'{name} must be a torch.Tensor, got {type(tensor).__name__}')
    if not tensor.is_floating_point():
        raise TypeError(f'{name} must be a floating-point tensor, got dtype {tensor.dtype}')
    return tensor


def check_weight_shape(name: str, weight, pred: Tensor, allow_rows: bool) -> None:
    """``weight`` has ``pred``'s shape, or ``(N,)`` when ``allow_rows``."""
    if weight is None:
        return
    if not isinstance(weight, Tensor):
        raise TypeError(f'{name} must be a torch.Tensor or None, got {type(weight).__name__}')
    if weight.shape == pred.shape:
        return
    if allow_rows and weight.shape == pred.shape[:1]:
        return
    expected = f'{tuple(pred.shape)}' + (f' or {tuple(pred.shape[:1])}' if allow_rows else '')
    raise ValueError(f'{name} must have shape {expected}, got {tuple(weight.shape)}')


def check_labels(labels, pred: Tensor, num_classes: int) -> None:
    """Integer labels ``(N,)`` matching ``pred``'s rows, in ``[0, num_classes]``."""
    if not isinstance(labels, Tensor):
        raise TypeError(f'labels must be a torch.Tensor, got {type(labels).__name__}')
    if labels.shape != pred.shape[:1]:
        raise ValueError(f'labels must have shape ({pred.shape[0]},) to match pred '
                         f'{tuple(pred.shape)}, got {tuple(labels.shape)}')
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f'labels of shape (N,) must be an integer tensor, got dtype {labels.dtype}')
    check_label_range(labels, num_classes)


def check_values(values: Tensor, ok: Tensor, message: str, noun: str = 'value') -> None:
    """Every element of ``values`` satisfies the mask ``ok``, else ``message``.

    On CPU (eager) raise ``ValueError`` with ``message`` and the first bad
    value; on accelerators and under ``torch.compile`` queue an asynchronous
    device assertion instead (no host synchronisation).
    """
    if values.numel() == 0:
        return
    if is_compiling() or values.device.type != 'cpu':
        assert_async(ok.all(), message)
        return
    if not bool(ok.all()):
        raise ValueError(f'{message}, got {noun} {values[~ok][0].item()}')


def check_label_range(labels: Tensor, num_classes: int) -> None:
    """Labels lie in ``[0, num_classes]`` (``num_classes`` is background)."""
    check_values(labels, (labels >= 0) & (labels <= num_classes),
                 f'labels must lie in [0, {num_classes}] ({num_classes} = background '
                 f'for {num_classes} classes)', noun='label')


def check_unit_range(name: str, values: Tensor) -> None:
    """Soft / binary targets lie in [0, 1]; NaN counts as out of range."""
    check_values(values, (values >= 0) & (values <= 1), f'{name} must lie in [0, 1]')


def resolve_reduction(reduction: str, reduction_override: Optional[str]) -> str:
    """``reduction_override`` if given (checked), else ``reduction``."""
    if reduction_override is None:
        return reduction
    return check_reduction(reduction_override, 'reduction_override')


def check_flag(name: str, value) -> bool:
    """``True`` or ``False`` (``global_density``, ``ema_bias_correction``)."""
    if not isinstance(value, bool):
        raise TypeError(f'{name} must be True or False, got {value!r}')
    return value


def check_weight_cap(weight_cap) -> Optional[float]:
    """``None`` (no cap) or a finite real number > 0."""
    if weight_cap is None:
        return None
    if isinstance(weight_cap, bool) or not isinstance(weight_cap, numbers.Real):
        raise TypeError(f'weight_cap must be None or a number > 0, got {weight_cap!r}')
    if not (math.isfinite(weight_cap) and weight_cap > 0):
        raise ValueError(f'weight_cap must be a finite number > 0 (or None for no cap), '
                         f'got {weight_cap}')
    return float(weight_cap)


def check_warmup(warmup) -> int:
    """A non-negative integer number of training iterations (0: no warm-up)."""
    if isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral):
        raise TypeError(f'warmup must be a non-negative integer (training iterations), '
                        f'got {warmup!r} of type {type(warmup).__name__}')
    if warmup < 0:
        raise ValueError(f'warmup must be >= 0 (0: no warm-up), got {warmup}')
    return int(warmup)
