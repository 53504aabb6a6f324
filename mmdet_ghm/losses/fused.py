"""Element-wise kernels compiled with ``torch.compile``, with an eager fallback.

The GHM losses run a handful of element-wise passes over ``N x C`` elements;
compiled, each pass becomes one fused loop that reads the logits once and
materialises nothing but its output. Compilation happens on the first call
(a few seconds; shapes are marked dynamic, so the five FPN levels of a
RetinaNet share one compiled kernel). The eager path computes the same
values and is used when:

* the environment variable ``MMDET_GHM_COMPILE=0`` is set,
* the caller is itself being compiled (the kernels are then traced inline),
* ``torch.compile`` does not support this platform or Python version, or
  compilation fails on this machine (a warning says why, once per kernel).

Only the compiler's own errors (see
:func:`mmdet_ghm.utils.torch_compat.compiler_errors`) switch a kernel to
eager; any other error of a call (out of memory, bad inputs) propagates
unchanged and the kernel stays compiled.
"""
import contextlib
import functools
import os
import types
import warnings
from collections import Counter

import torch

from ..utils.torch_compat import (compile_available, compiled_cpu_division_is_ieee, compiler_errors,
                                  is_compiling)


def compile_enabled() -> bool:
    """Whether kernels are compiled (``MMDET_GHM_COMPILE``, default on)."""
    return os.environ.get('MMDET_GHM_COMPILE', '1').lower() not in ('0', 'false', 'no', 'off')


@contextlib.contextmanager
def kernels_compiled(enabled: bool):
    """Run the kernels compiled (``True``) or eager (``False``) inside the block.

    Sets ``MMDET_GHM_COMPILE`` for the block and restores it afterwards.
    """
    old = os.environ.get('MMDET_GHM_COMPILE')
    os.environ['MMDET_GHM_COMPILE'] = '1' if enabled else '0'
    try:
        yield
    finally:
        if old is None:
            del os.environ['MMDET_GHM_COMPILE']
        else:
            os.environ['MMDET_GHM_COMPILE'] = old


def kernel_repeats() -> int:
    """``MMDET_GHM_KERNEL_REPEAT`` (default 1): run each compiled kernel that many times.

    Only for showing that the speed guard
    (``tools/analysis_tools/check_loss_speed.py --calibrate``) catches kernels
    that became slower; the result is that of the last run.
    """
    value = os.environ.get('MMDET_GHM_KERNEL_REPEAT', '1')
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f'MMDET_GHM_KERNEL_REPEAT must be a positive integer, got {value!r}')
    return int(value)


def _warn_eager(name: str, reason: str) -> None:
    warnings.warn(
        f'mmdet_ghm: compiling {name} failed ({reason}); using the eager kernel, which '
        'gives the same values more slowly. Set MMDET_GHM_COMPILE=0 to skip the attempt.')


def _describe(error: BaseException) -> str:
    """``Type: first line`` of the error (of its cause, for a backend failure)."""
    inner = getattr(error, 'inner_exception', None)
    if isinstance(inner, BaseException):
        error = inner
    lines = str(error).strip().splitlines()
    return f'{type(error).__name__}: {lines[0] if lines else ""}'


def signature(args) -> tuple:
    """What selects a compiled variant: each tensor's dtype, rank and device type.

    Shapes are dynamic and not part of it.
    """
    return tuple((a.dtype, a.dim(), a.device.type) if isinstance(a, torch.Tensor) else
                 (type(a), a if isinstance(a, (int, float, bool)) else None) for a in args)


def _fresh_copy(fn):
    """``fn`` with its own code object, hence its own dynamo cache and recompile budget."""
    copy = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__,
                              fn.__defaults__, fn.__closure__)
    copy.__qualname__, copy.__module__ = fn.__qualname__, fn.__module__
    return copy


def fused(fn):
    """Decorate an element-wise kernel so that it runs compiled when possible.

    One compiled function per :func:`signature` of the arguments (dtypes,
    ranks, which optional tensors are given), each on its own copy of the
    kernel's code: dynamo's recompile limit counts per code object, and a
    test session (or a user mixing fp32, fp16, labels and soft targets)
    meets more variants than that limit while each variant needs one graph.

    The wrapper has ``eager`` (the undecorated kernel) and ``calls``, a
    :class:`collections.Counter` of the calls made outside compilation,
    by path: ``'compiled'`` or ``'eager'``.
    """
    state = {'compiled': {}, 'failed': False}
    calls = Counter()

    @functools.wraps(fn)
    def wrapper(*args):
        if is_compiling():
            return fn(*args)
        if state['failed'] or not compile_enabled():
            calls['eager'] += 1
            return fn(*args)
        key = signature(args)
        compiled = state['compiled'].get(key)
        if compiled is None:
            if not compile_available():
                state['failed'] = True
                _warn_eager(fn.__name__, 'torch.compile does not support this platform')
                calls['eager'] += 1
                return fn(*args)
            # Decided outside tracing, read while tracing (see region_index).
            compiled_cpu_division_is_ieee()
            compiled = torch.compile(_fresh_copy(fn), dynamic=True, fullgraph=True)
            state['compiled'][key] = compiled
        try:
            for _ in range(kernel_repeats() - 1):  # a deliberately slowed kernel
                compiled(*args)
            result = compiled(*args)
        except compiler_errors() as error:
            state['failed'] = True
            _warn_eager(fn.__name__, _describe(error))
            calls['eager'] += 1
            return fn(*args)
        calls['compiled'] += 1
        return result

    wrapper.eager = fn
    wrapper.calls = calls
    return wrapper
