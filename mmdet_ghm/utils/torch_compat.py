"""What differs between the torch versions this package supports (torch >= 2.0).

Every use of a torch API that is newer than torch 2.0, or that moved between
versions, goes through this module, so that the rest of the package reads
the same on every version:

* :func:`is_compiling`: ``torch.compiler.is_compiling`` appeared in torch
  2.3; torch 2.0-2.2 have ``torch._utils.is_compiling`` and
  ``torch._dynamo.is_compiling``.
* :func:`compile_available`: ``torch.compile`` exists (torch >= 2.0) and
  supports this interpreter (torch < 2.4 refuses Python 3.12, torch 2.0-2.1
  refuse Windows; they raise when ``torch.compile`` is called).
* :func:`assert_async`: ``torch._assert_async(cond, message)``; the message
  overload is missing from some versions, which then get the bare assertion.
* :func:`compiler_errors`: the exception classes by which ``torch.compile``
  reports that it cannot compile (as opposed to errors of the computation).
* :func:`compiled_cpu_division_is_ieee`: whether inductor's C++ kernels
  divide as IEEE 754 does; read from the compiler flags, which moved
  between versions (and are private).
* :func:`shutdown_persistent_workers`: stop a ``DataLoader``'s persistent
  workers so that its next ``iter()`` starts new ones; the loader keeps them
  in the private ``_iterator`` (torch 1.7 to 2.13 at least).
"""
import functools
import sys
from typing import Callable, Optional, Sequence, Tuple, Type

import torch
from torch import Tensor


def _resolve_is_compiling() -> Callable[[], bool]:
    """This torch's "is the caller being compiled" function.

    The first of ``torch.compiler.is_compiling`` (torch >= 2.3),
    ``torch._utils.is_compiling`` and ``torch._dynamo.is_compiling`` (torch
    2.0-2.2; dynamo folds both to True while tracing), else constant False.
    Resolved once, at import: dynamo in torch 2.1 cannot trace ``hasattr`` on
    a module, so :func:`is_compiling` must not look anything up when called.
    """
    found = getattr(getattr(torch, 'compiler', None), 'is_compiling', None)
    if found is None:
        found = getattr(getattr(torch, '_utils', None), 'is_compiling', None)
    if found is None:
        try:
            from torch._dynamo import is_compiling as found
        except ImportError:
            return lambda: False
    return found


_IS_COMPILING = _resolve_is_compiling()


def is_compiling() -> bool:
    """Whether the caller is being traced by ``torch.compile`` (False in eager code)."""
    return _IS_COMPILING()


@functools.lru_cache(maxsize=None)
def compile_available() -> bool:
    """Whether ``torch.compile`` exists and supports this platform and Python."""
    if not hasattr(torch, 'compile'):
        return False
    try:
        from torch._dynamo.eval_frame import check_if_dynamo_supported
    except ImportError:
        return True
    try:
        check_if_dynamo_supported()
    except RuntimeError:
        return False
    return True


def _assert_async_takes_message() -> bool:
    try:
        torch.ops.aten._assert_async.msg
    except (AttributeError, RuntimeError):
        return False
    return True


_ASSERT_ASYNC_TAKES_MESSAGE = _assert_async_takes_message()


def assert_async(condition: Tensor, message: str) -> None:
    """Queue an assertion that the one-element ``condition`` is true (no host sync).

    The message reaches the error only where torch supports it (on CUDA the
    device assertion's text is fixed by torch).
    """
    if _ASSERT_ASYNC_TAKES_MESSAGE:
        torch._assert_async(condition, message)
    else:
        torch._assert_async(condition)


# Exception classes raised when compilation fails, by module and name. Names
# that a torch version lacks are skipped (see compiler_errors).
_COMPILER_ERROR_NAMES = (
    # The backend (inductor) failed: no working C++ compiler, C++ or Triton
    # compilation error, missing lowering. InductorError (torch >= 2.6)
    # derives from it.
    ('torch._dynamo.exc', 'BackendCompilerFailed'),
    # Dynamo cannot trace the function without a graph break (fullgraph=True).
    ('torch._dynamo.exc', 'Unsupported'),
    # A bug inside dynamo.
    ('torch._dynamo.exc', 'InternalTorchDynamoError'),
    # Raised unwrapped by some versions.
    ('torch._inductor.exc', 'InvalidCxxCompiler'),
    ('torch._inductor.exc', 'CppCompileError'),
    ('torch._inductor.exc', 'TritonMissing'),
    ('torch._inductor.exc', 'GPUTooOldForTriton'),
)


@functools.lru_cache(maxsize=None)
def compiler_errors() -> Tuple[Type[BaseException], ...]:
    """Exception classes that mean "``torch.compile`` could not compile this".

    ``TorchRuntimeError`` is deliberately absent: dynamo raises it when the
    traced computation itself fails (e.g. mismatched shapes), which is an
    error of the inputs, not of the compiler.
    """
    import importlib
    errors = []
    for module_name, name in _COMPILER_ERROR_NAMES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        error = getattr(module, name, None)
        if isinstance(error, type) and issubclass(error, BaseException):
            errors.append(error)
    return tuple(errors)


# gcc/clang flags after which ``x / y`` may be compiled as ``x * (1 / y)``
# (-freciprocal-math, implied by the others), and those that undo them; the
# last one given wins.
_RECIPROCAL_ON = ('-Ofast', '-ffast-math', '-funsafe-math-optimizations', '-freciprocal-math')
_RECIPROCAL_OFF = ('-fno-fast-math', '-fno-unsafe-math-optimizations', '-fno-reciprocal-math')


def division_flags_are_ieee(flags: Sequence[str]) -> bool:
    """Whether C++ compiled with ``flags`` keeps float division correctly rounded."""
    reciprocal = False
    for flag in flags:
        flag = '-' + flag.lstrip('-')
        if flag in _RECIPROCAL_ON:
            reciprocal = True
        elif flag in _RECIPROCAL_OFF:
            reciprocal = False
    return not reciprocal


def _inductor_cpp_math_flags() -> Optional[Sequence[str]]:
    """The floating-point flags of inductor's C++ kernels, ``None`` if unknown.

    torch >= 2.4 lists them in ``torch._inductor.cpp_builder._get_ffast_math_flags``
    (torch 2.13: ``-ffast-math``'s parts, then ``-fno-unsafe-math-optimizations``);
    older versions build them elsewhere, and are reported unknown, as is
    Windows (MSVC takes other flags) and a machine without a C++ compiler
    (the flags depend on which compiler it is).
    """
    if sys.platform == 'win32':
        return None
    try:
        from torch._inductor.cpp_builder import _get_ffast_math_flags
    except ImportError:
        return None
    try:
        return list(_get_ffast_math_flags())
    except compiler_errors():
        return None


_COMPILED_CPU_DIVISION_IS_IEEE = False


def compiled_cpu_division_is_ieee() -> bool:
    """Whether ``x / y`` in a CPU kernel that inductor compiles is correctly rounded.

    False when the flags cannot be read (older torch) or allow reciprocal
    math: callers that need ``j / M`` bit-exact then take another route. The
    verdict is computed outside compilation and kept; while dynamo traces, the
    kept value is returned (False if it was never computed), so the function
    is safe to call from code being compiled.
    """
    global _COMPILED_CPU_DIVISION_IS_IEEE
    if is_compiling():
        return _COMPILED_CPU_DIVISION_IS_IEEE
    flags = _inductor_cpp_math_flags()
    _COMPILED_CPU_DIVISION_IS_IEEE = flags is not None and division_flags_are_ieee(flags)
    return _COMPILED_CPU_DIVISION_IS_IEEE


def shutdown_persistent_workers(dataloader) -> bool:
    """Stop ``dataloader``'s persistent workers, if it has started any.

    Its next ``iter()`` then starts new workers (with its current
    ``worker_init_fn``), as a loader without persistent workers does at
    every epoch.

    Returns:
        bool: whether workers were stopped.
    """
    iterator = getattr(dataloader, '_iterator', None)
    if iterator is None or not getattr(dataloader, 'persistent_workers', False):
        return False
    shutdown = getattr(iterator, '_shutdown_workers', None)
    if shutdown is not None:
        shutdown()
    dataloader._iterator = None
    return True
