"""torch >= 2.0: APIs newer than torch 2.0 are used only through mmdet_ghm.utils.torch_compat.

The oldest supported torch is simulated by removing what it lacks
(``torch.compiler.is_compiling`` is torch >= 2.3, ``torch.compiler`` torch >= 2.1),
and a source scan keeps direct uses from coming back.
"""
import pathlib
import re

import pytest
import torch
import torch._dynamo  # noqa: F401  (imported before its torch.compiler import is removed)

import mmdet_ghm
import mmdet_ghm.utils.torch_compat as tc
from mmdet_ghm.losses import GHMCLoss, GHMRLoss

from ..conftest import kernels_compiled

PACKAGE = pathlib.Path(mmdet_ghm.__file__).parent
# Newer than torch 2.0, or moved between versions: only torch_compat may name them.
NEWER_APIS = {
    'torch.compiler.is_compiling': r'torch\.compiler\.is_compiling',
    'torch.compiler (any use)': r'torch\.compiler\b',
    'torch._dynamo/_utils.is_compiling': r'(_dynamo|_utils)\.is_compiling',
    'torch._assert_async': r'_assert_async\(',
    'torch.amp.GradScaler': r'amp\.GradScaler',
    'torch.library.custom_op': r'library\.custom_op',
    'inductor internals': r'torch\._inductor\b',
}


@pytest.mark.parametrize('api', list(NEWER_APIS))
def test_no_module_outside_torch_compat_uses_newer_torch_apis(api):
    pattern = re.compile(NEWER_APIS[api])
    offenders = []
    for path in sorted(PACKAGE.rglob('*.py')):
        if path.name == 'torch_compat.py':
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split('#')[0]
            if pattern.search(code) and '``' not in code:  # docstrings quote names in ``..``
                offenders.append(f'{path.relative_to(PACKAGE)}:{number}: {line.strip()}')
    assert not offenders, f'use mmdet_ghm.utils.torch_compat instead of {api}:\n' + '\n'.join(
        offenders)


def ghm_values():
    logits = torch.randn(40, 5)
    labels = torch.randint(0, 6, (40,))
    pred, target = torch.randn(40, 4) * 0.1, torch.randn(40, 4) * 0.1
    with kernels_compiled(False):
        return (GHMCLoss(bins=10, momentum=0.75)(logits, labels, torch.ones(40)),
                GHMRLoss(momentum=0.7)(pred, target, torch.ones(40, 4)))


def recording(result, calls):
    def is_compiling():
        calls.append(result)
        return result
    return is_compiling


@pytest.fixture
def torch_2_1(monkeypatch):
    """torch 2.1-2.2: torch.compiler has no is_compiling; torch._utils has one.

    Returns the list of the calls it answered.
    """
    calls = []
    monkeypatch.delattr(torch.compiler, 'is_compiling')
    monkeypatch.setattr(torch._utils, 'is_compiling', recording(False, calls), raising=False)
    monkeypatch.setattr(tc, '_IS_COMPILING', tc._resolve_is_compiling())
    return calls


def test_is_compiling_falls_back_to_torch_utils(torch_2_1):
    assert tc.is_compiling() is False
    assert torch_2_1 == [False]


def test_is_compiling_falls_back_to_dynamo_then_false(monkeypatch):
    calls = []
    monkeypatch.delattr(torch, 'compiler')  # torch 2.0
    monkeypatch.delattr(torch._utils, 'is_compiling', raising=False)
    monkeypatch.setattr(torch._dynamo, 'is_compiling', recording(True, calls))
    assert tc._resolve_is_compiling()() is True
    assert calls == [True]
    monkeypatch.delattr(torch._dynamo, 'is_compiling')
    assert tc._resolve_is_compiling()() is False


def test_ghm_losses_give_the_same_values_without_torch_compiler_is_compiling(request):
    torch.manual_seed(3)
    expected = ghm_values()
    calls = request.getfixturevalue('torch_2_1')
    torch.manual_seed(3)
    values = ghm_values()
    assert calls  # the losses asked torch._utils.is_compiling
    assert all(torch.equal(a, b) for a, b in zip(values, expected))
    assert all(torch.isfinite(v) for v in values)


def test_compile_available(monkeypatch):
    tc.compile_available.cache_clear()
    try:
        assert tc.compile_available() is True

        def unsupported():
            raise RuntimeError('Python 3.12+ not yet supported for torch.compile')

        monkeypatch.setattr(torch._dynamo.eval_frame, 'check_if_dynamo_supported', unsupported)
        tc.compile_available.cache_clear()
        assert tc.compile_available() is False
        monkeypatch.undo()
        monkeypatch.delattr(torch, 'compile')
        tc.compile_available.cache_clear()
        assert tc.compile_available() is False
    finally:
        monkeypatch.undo()
        tc.compile_available.cache_clear()


@pytest.mark.parametrize('takes_message', [True, False])
def test_assert_async_with_and_without_the_message_overload(monkeypatch, takes_message):
    monkeypatch.setattr(tc, '_ASSERT_ASYNC_TAKES_MESSAGE', takes_message)
    seen = []
    real = torch._assert_async

    def recording(*args):
        seen.append(len(args))
        return real(*args)

    monkeypatch.setattr(torch, '_assert_async', recording)
    tc.assert_async(torch.tensor(True), 'labels must lie in [0, 3]')
    with pytest.raises(RuntimeError, match='labels must lie' if takes_message else ''):
        tc.assert_async(torch.tensor(False), 'labels must lie in [0, 3]')
    assert seen == [2, 2] if takes_message else seen == [1, 1]


def test_compiler_errors_skip_names_a_torch_version_lacks(monkeypatch):
    monkeypatch.setattr(tc, '_COMPILER_ERROR_NAMES', (
        ('torch._dynamo.exc', 'BackendCompilerFailed'),
        ('torch._dynamo.exc', 'NoSuchErrorInThisVersion'),
        ('torch._no_such_module', 'Error'),
    ))
    tc.compiler_errors.cache_clear()
    try:
        assert tc.compiler_errors() == (torch._dynamo.exc.BackendCompilerFailed,)
    finally:
        monkeypatch.undo()
        tc.compiler_errors.cache_clear()


@pytest.mark.parametrize('flags, ieee', [
    ([], True),
    (['-O3', '-ffast-math'], False),
    (['ffast-math', 'fno-unsafe-math-optimizations'], True),  # inductor's, torch >= 2.1
    (['funsafe-math-optimizations'], False),
    (['-fno-unsafe-math-optimizations', '-freciprocal-math'], False),
    (['-Ofast', '-fno-reciprocal-math'], True),
])
def test_division_flags_are_ieee(flags, ieee):
    assert tc.division_flags_are_ieee(flags) is ieee


def test_compiled_cpu_division_follows_inductor_flags(monkeypatch):
    import torch._inductor.config as inductor_config
    assert tc.compiled_cpu_division_is_ieee()
    monkeypatch.setattr(inductor_config.cpp, 'enable_unsafe_math_opt_flag', True)
    assert not tc.compiled_cpu_division_is_ieee()
    monkeypatch.setattr(tc, '_inductor_cpp_math_flags', lambda: None)  # older torch
    assert not tc.compiled_cpu_division_is_ieee()
    monkeypatch.undo()
    assert tc.compiled_cpu_division_is_ieee()  # the kept verdict is this torch's again


def test_shutdown_persistent_workers_starts_new_workers_next_epoch():
    from torch.utils.data import DataLoader

    def worker_pid(_):
        import os
        return os.getpid()

    loader = DataLoader(list(range(2)), batch_size=1, num_workers=1, persistent_workers=True,
                        collate_fn=worker_pid)
    assert not tc.shutdown_persistent_workers(loader)  # none started yet
    first = set(loader)
    assert set(loader) == first  # persistent: the same worker again
    assert tc.shutdown_persistent_workers(loader)
    assert loader._iterator is None
    assert set(loader).isdisjoint(first)  # a new worker process
    assert not tc.shutdown_persistent_workers(DataLoader([0], num_workers=0))
