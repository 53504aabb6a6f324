"""The fused-kernel wrapper: compiled by default, eager only after the compiler's own errors."""
import json
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch._dynamo.utils import counters

import mmdet_ghm.losses.fused as fused_module
from mmdet_ghm.losses import GHMCLoss, GHMRLoss
from mmdet_ghm.losses.fused import fused
from mmdet_ghm.losses.ghm_c import ghmc_region_index, ghmc_weighted_sum_and_grad
from mmdet_ghm.losses.ghm_r import ghmr_region_index, ghmr_scaled_grad, ghmr_weighted_sum
from mmdet_ghm.utils.torch_compat import compiler_errors

from ..conftest import kernels_compiled


def fresh_kernel():
    """A kernel no other test has compiled (new function object, new dynamo frame)."""

    @fused
    def affine(x):
        return x * 2 + 1

    return affine


def test_default_path_runs_the_compiled_kernel():
    kernel = fresh_kernel()
    graphs = counters['stats']['unique_graphs']
    with kernels_compiled(True):
        out = kernel(torch.arange(4.0))
    assert out.tolist() == [1.0, 3.0, 5.0, 7.0]
    assert kernel.calls == {'compiled': 1}
    assert counters['stats']['unique_graphs'] == graphs + 1  # dynamo captured a graph
    with kernels_compiled(False):
        kernel(torch.arange(4.0))
    assert kernel.calls == {'compiled': 1, 'eager': 1}


@pytest.mark.parametrize('name', ['ghmc', 'ghmr'])
def test_ghm_losses_run_their_kernels_compiled(name):
    kernels = ((ghmc_region_index, ghmc_weighted_sum_and_grad) if name == 'ghmc' else
               (ghmr_region_index, ghmr_weighted_sum, ghmr_scaled_grad))
    before = [dict(k.calls) for k in kernels]
    pred = torch.randn(50, 4, requires_grad=True)
    with kernels_compiled(True):
        if name == 'ghmc':
            GHMCLoss(bins=10)(pred, torch.randint(0, 5, (50,)), torch.ones(50)).backward()
        else:
            GHMRLoss()(pred, torch.randn(50, 4), torch.ones(50, 4)).backward()
    for kernel, old in zip(kernels, before):
        assert kernel.calls['compiled'] == old.get('compiled', 0) + 1, kernel.__name__
        assert kernel.calls['eager'] == old.get('eager', 0), kernel.__name__


def raising_compile(error):
    """A ``torch.compile`` whose compiled callable raises ``error`` on its first call."""
    raised = []

    def compile_(fn, **kwargs):
        def compiled(*args):
            if not raised:
                raised.append(error)
                raise error
            return fn(*args)
        return compiled

    return compile_


@pytest.mark.parametrize('error', [
    RuntimeError('CUDA out of memory. Tried to allocate 2.00 GiB'),
    MemoryError(),
    IndexError('index -9223372036854775808 is out of bounds for dimension 0 with size 11'),
    ValueError('bad value'),
], ids=['oom', 'memory', 'index', 'value'])
def test_errors_that_are_not_the_compilers_propagate_and_keep_the_kernel_compiled(
        monkeypatch, error):
    monkeypatch.setattr(fused_module.torch, 'compile', raising_compile(error))
    kernel = fresh_kernel()
    with kernels_compiled(True), warnings.catch_warnings():
        warnings.simplefilter('error')  # no "falling back" warning either
        with pytest.raises(type(error)) as info:
            kernel(torch.ones(3))
        assert info.value is error
        assert kernel(torch.ones(3)).tolist() == [3.0, 3.0, 3.0]
    assert kernel.calls == {'compiled': 1}


def test_a_compiler_error_falls_back_to_eager_once_with_a_warning(monkeypatch):
    from torch._inductor.exc import InvalidCxxCompiler
    monkeypatch.setattr(fused_module.torch, 'compile', raising_compile(InvalidCxxCompiler()))
    kernel = fresh_kernel()
    with kernels_compiled(True):
        with pytest.warns(UserWarning, match='compiling affine failed .*InvalidCxxCompiler'):
            assert kernel(torch.ones(2)).tolist() == [3.0, 3.0]
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            assert kernel(torch.ones(2)).tolist() == [3.0, 3.0]
    assert kernel.calls == {'eager': 2}


def test_compiler_errors_are_the_compilers_only():
    from torch._dynamo.exc import BackendCompilerFailed, TorchRuntimeError, Unsupported
    errors = compiler_errors()
    assert BackendCompilerFailed in errors and Unsupported in errors
    # dynamo's wrapper of errors of the computation itself (e.g. bad shapes)
    assert not issubclass(TorchRuntimeError, errors)
    for error in (RuntimeError, MemoryError, IndexError, ValueError, TypeError):
        assert not issubclass(error, errors)


def test_unsupported_platform_runs_eager_with_a_warning(monkeypatch):
    monkeypatch.setattr(fused_module, 'compile_available', lambda: False)
    kernel = fresh_kernel()
    with kernels_compiled(True):
        with pytest.warns(UserWarning, match='does not support this platform'):
            kernel(torch.ones(2))
        kernel(torch.ones(2))
    assert kernel.calls == {'eager': 2}


def test_no_cxx_compiler_falls_back_to_eager(tmp_path):
    """The real failure: inductor finds no C++ compiler (fresh cache, so it must compile)."""
    script = textwrap.dedent('''
        import json, warnings
        import torch
        import torch._inductor.config  # a bare `import torch` does not load it on torch 2.1
        torch._inductor.config.cpp.cxx = ('/nonexistent/c++',)
        from mmdet_ghm.losses.fused import fused

        @fused
        def affine(x):
            return x * 2 + 1

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            values = [affine(torch.arange(3.0)).tolist() for _ in range(2)]
        print(json.dumps(dict(values=values, calls=dict(affine.calls), warnings=[
            str(w.message) for w in caught if 'mmdet_ghm' in str(w.message)])))
    ''')
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(tmp_path), MMDET_GHM_COMPILE='1')
    result = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['values'] == [[1.0, 3.0, 5.0]] * 2
    assert report['calls'] == {'eager': 2}
    assert len(report['warnings']) == 1
    assert 'No working C++ compiler' in report['warnings'][0]
