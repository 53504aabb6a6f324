"""Element-wise kernels compiled with ``torch.compile``, with an eager fallback.

The GHM losses run a handful of element-wise passes over ``N x C`` elements;
compiled, each pass becomes one fused loop that reads the logits once and
materialises nothing but its output. Compilation happens on the first call
(a few seconds; shapes are marked dynamic, so the five FPN levels of a
RetinaNet share one compiled kernel). The eager path computes the same
values and is used when:

* the environment variable ``MMDET_GHM_COMPILE=0`` is set,
* the caller is itself being compiled (the kernels are then traced inline),
* compilation fails on this machine (a warning says why, once).
"""
import functools
import os
import warnings

import torch


def compile_enabled() -> bool:
    """Whether kernels are compiled (``MMDET_GHM_COMPILE``, default on)."""
    return os.environ.get('MMDET_GHM_COMPILE', '1').lower() not in ('0', 'false', 'no', 'off')


def fused(fn):
    """Decorate an element-wise kernel so that it runs compiled when possible."""
    state = {'compiled': None, 'failed': False}

    @functools.wraps(fn)
    def wrapper(*args):
        if torch.compiler.is_compiling() or state['failed'] or not compile_enabled():
            return fn(*args)
        if state['compiled'] is None:
            state['compiled'] = torch.compile(fn, dynamic=True, fullgraph=True)
        try:
            return state['compiled'](*args)
        except Exception as error:  # compiler missing or unsupported backend
            state['failed'] = True
            warnings.warn(
                f'mmdet_ghm: compiling {fn.__name__} failed '
                f'({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}); '
                'using the eager kernel, which gives the same values more slowly. '
                'Set MMDET_GHM_COMPILE=0 to skip the attempt.')
            return fn(*args)

    wrapper.eager = fn
    return wrapper
