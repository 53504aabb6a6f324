"""Shared pytest set-up: registries, deterministic seeds, switches for the fused kernels."""
import contextlib
import os

import pytest
import torch


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


@contextlib.contextmanager
def kernels_compiled(enabled: bool):
    """Run the GHM kernels compiled (``True``) or eager (``False``)."""
    old = os.environ.get('MMDET_GHM_COMPILE')
    os.environ['MMDET_GHM_COMPILE'] = '1' if enabled else '0'
    try:
        yield
    finally:
        if old is None:
            del os.environ['MMDET_GHM_COMPILE']
        else:
            os.environ['MMDET_GHM_COMPILE'] = old


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
