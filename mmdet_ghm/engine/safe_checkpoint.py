"""Checkpoints that load with ``torch.load(weights_only=True)``.

Since torch 2.6, ``torch.load`` refuses any pickled global that is not on an
allow-list. MMEngine 0.10.x checkpoints pickle ``HistoryBuffer`` objects (whose
pickled form calls ``getattr``) and numpy scalars/arrays in the message hub,
so resuming or testing them fails. Importing :mod:`mmdet_ghm` calls
:func:`install_safe_checkpoint_loading`, which fixes both directions:

* **Save**: ``Runner.save_checkpoint`` writes ``HistoryBuffer`` objects and
  numeric numpy values as plain dicts of tensors/Python numbers (tagged with
  :data:`SAFE_TAG`). Such files load with a bare ``torch.load`` (default
  ``weights_only=True``), even without this plugin.
* **Load**: MMEngine's local-file checkpoint loader is replaced by
  :func:`load_from_local`, which always uses ``weights_only=True`` and turns the
  tagged dicts back into ``HistoryBuffer``/numpy objects. Checkpoints written
  by plain MMEngine still load: their ``HistoryBuffer`` is rebuilt by a
  validating data-only stand-in, and only numpy's array/scalar constructors
  and numeric dtypes are allow-listed, for the duration of the load only.

Anything else (e.g. an object whose ``__reduce__`` calls ``os.system``) is
refused with :class:`UnsafeCheckpointError`. For a file you trust, set the
environment variable ``MMDET_GHM_TRUSTED_CHECKPOINT=1`` to load it with
``weights_only=False``.
"""
import os
import os.path as osp
import pickle
import warnings
from collections import OrderedDict

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.utils import digit_version

TRUST_ENV = 'MMDET_GHM_TRUSTED_CHECKPOINT'
SAFE_TAG = '__mmdet_ghm_safe__'

_TRUE = ('1', 'true', 'yes', 'on')
_FALSE = ('', '0', 'false', 'no', 'off')
# HistoryBuffer statistics that MMEngine pickles as getattr(HistoryBuffer, n).
_HISTORY_BUFFER_METHODS = ('min', 'max', 'mean', 'current')
_NUMPY_DTYPES = ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16',
                 'uint32', 'uint64', 'float16', 'float32', 'float64')
_TORCH_HAS_SAFE_GLOBALS = (
    hasattr(torch.serialization, 'safe_globals')
    and digit_version(torch.__version__) >= digit_version('2.6.0'))

_installed = False


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds objects that could run code when unpickled."""


def trusted_checkpoints_enabled():
    """Return whether ``MMDET_GHM_TRUSTED_CHECKPOINT`` opts in to full pickle.

    Returns:
        bool: True if the variable is one of ``1/true/yes/on``.

    Raises:
        ValueError: If the variable holds any other non-false value.
    """
    value = os.environ.get(TRUST_ENV, '').strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f'{TRUST_ENV}={os.environ[TRUST_ENV]!r} is not understood; use 1 to '
        'trust checkpoint files (unsafe pickle loading) or 0/unset to keep '
        'weights_only loading.')


# ---------------------------------------------------------------------------
# Save side: replace HistoryBuffer / numpy objects by tagged plain data.
# ---------------------------------------------------------------------------
def _same_dict_type(obj, items):
    out = type(obj)(items)
    if type(obj) is OrderedDict:  # e.g. a state_dict's ``_metadata``
        out.__dict__.update(obj.__dict__)
    return out


def _ndarray_to_safe(array):
    if array.dtype.name not in _NUMPY_DTYPES:
        return array  # kept as is; loads through the numpy allow-list
    array = np.ascontiguousarray(array)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder('='))
    return {SAFE_TAG: 'ndarray', 'data': torch.from_numpy(array).clone()}


def to_safe(obj):
    """Convert an object tree so that ``weights_only`` loading accepts it.

    ``HistoryBuffer`` objects and numeric numpy arrays/scalars become dicts
    tagged with :data:`SAFE_TAG`; :func:`from_safe` reverses this. Containers
    are copied only where something changed (an ``OrderedDict``'s attributes
    such as ``_metadata`` are kept); the input is never modified.

    Args:
        obj: Checkpoint or any part of it.

    Returns:
        The converted object (``obj`` itself if nothing needed converting).
    """
    if isinstance(obj, HistoryBuffer):
        return {
            SAFE_TAG: 'HistoryBuffer',
            'max_length': int(obj.max_length),
            'log_history': to_safe(np.asarray(obj._log_history)),
            'count_history': to_safe(np.asarray(obj._count_history)),
        }
    if isinstance(obj, np.ndarray):
        return _ndarray_to_safe(obj)
    if isinstance(obj, np.generic):
        if obj.dtype.name not in _NUMPY_DTYPES:
            return obj
        return {SAFE_TAG: 'numpy_scalar', 'dtype': obj.dtype.name,
                'value': obj.item()}
    if type(obj) in (dict, OrderedDict):
        items = [(k, to_safe(v)) for k, v in obj.items()]
        if all(new is obj[k] for k, new in items):
            return obj
        return _same_dict_type(obj, items)
    if type(obj) in (list, tuple):
        items = [to_safe(v) for v in obj]
        if all(new is old for new, old in zip(items, obj)):
            return obj
        return type(obj)(items)
    return obj


def _restore_tagged(obj):
    kind = obj[SAFE_TAG]
    if kind == 'ndarray':
        return obj['data'].cpu().numpy()
    if kind == 'numpy_scalar':
        return np.dtype(obj['dtype']).type(obj['value'])
    if kind == 'HistoryBuffer':
        return HistoryBuffer(
            from_safe(obj['log_history']), from_safe(obj['count_history']),
            obj['max_length'])
    raise ValueError(f'Unknown {SAFE_TAG} entry {kind!r} in checkpoint; it '
                     'was written by a newer mmdet-ghm.')


def from_safe(obj):
    """Undo :func:`to_safe` (and rebuild legacy ``HistoryBuffer`` objects).

    Args:
        obj: Loaded checkpoint or any part of it.

    Returns:
        The restored object; unchanged containers are returned as they are.
    """
    if isinstance(obj, _LegacyHistoryBuffer):
        return obj.to_history_buffer()
    if type(obj) in (dict, OrderedDict):
        if SAFE_TAG in obj:
            return _restore_tagged(obj)
        items = [(k, from_safe(v)) for k, v in obj.items()]
        if all(new is obj[k] for k, new in items):
            return obj
        return _same_dict_type(obj, items)
    if type(obj) in (list, tuple):
        items = [from_safe(v) for v in obj]
        if all(new is old for new, old in zip(items, obj)):
            return obj
        return type(obj)(items)
    return obj


# ---------------------------------------------------------------------------
# Load side: allow-list for checkpoints written by plain MMEngine.
# ---------------------------------------------------------------------------
class _LegacyHistoryBuffer:
    """Data-only stand-in for a pickled ``HistoryBuffer``.

    The unpickler maps ``mmengine.logging.history_buffer.HistoryBuffer`` to this
    class, so no MMEngine code runs while loading; :meth:`__setstate__` checks
    the state and :func:`from_safe` turns it into a real ``HistoryBuffer``.
    """

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(
                f'HistoryBuffer state must be a dict, got {type(state)}')
        for key in ('_log_history', '_count_history'):
            if not isinstance(state.get(key), np.ndarray):
                raise pickle.UnpicklingError(
                    f'HistoryBuffer state {key!r} must be a numpy array, got '
                    f'{type(state.get(key))}')
        methods = state.get('statistics_methods', {})
        if not isinstance(methods, dict) or any(
                v != f'HistoryBuffer.{k}' for k, v in methods.items()):
            raise pickle.UnpicklingError(
                'HistoryBuffer statistics_methods may only name the built-in '
                f'statistics {_HISTORY_BUFFER_METHODS}, got {methods!r}')
        max_length = state.get('max_length', 1000000)
        if not isinstance(max_length, int):
            raise pickle.UnpicklingError(
                f'HistoryBuffer max_length must be an int, got {max_length!r}')
        self.log_history = state['_log_history']
        self.count_history = state['_count_history']
        self.max_length = max_length

    def to_history_buffer(self):
        """Return the equivalent ``HistoryBuffer``."""
        return HistoryBuffer(self.log_history, self.count_history,
                             self.max_length)


def _history_buffer_method(owner, name):
    """Stand-in for ``getattr`` in legacy checkpoints.

    MMEngine pickles ``HistoryBuffer.min`` etc. as
    ``getattr(HistoryBuffer, 'min')``. This accepts exactly those calls and
    returns the name as a string; every other use is refused.
    """
    if owner is not _LegacyHistoryBuffer or name not in \
            _HISTORY_BUFFER_METHODS:
        raise pickle.UnpicklingError(
            f'getattr({owner!r}, {name!r}) is not allowed in a checkpoint')
    return f'HistoryBuffer.{name}'


def _legacy_safe_globals():
    """Globals allowed (during one load only) for plain-MMEngine files."""
    safe = [
        (_LegacyHistoryBuffer,
         'mmengine.logging.history_buffer.HistoryBuffer'),
        (_history_buffer_method, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
    ]
    safe += [type(np.dtype(name)) for name in _NUMPY_DTYPES]
    try:  # numpy >= 2 keeps the real module in numpy._core
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy < 1.26
        from numpy.core import multiarray
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        safe.append((multiarray._reconstruct, f'{module}._reconstruct'))
        safe.append((multiarray.scalar, f'{module}.scalar'))
    return safe


def _refusal(filename, error):
    return UnsafeCheckpointError(
        f'Refusing to load checkpoint {filename!r} with weights_only=True: '
        f'{error}\nIt holds Python objects that could run code when loaded '
        '(mmdet-ghm only accepts tensors, plain containers, numeric numpy '
        "values and MMEngine's HistoryBuffer). If you trust the file's "
        f'origin, set the environment variable {TRUST_ENV}=1 to load it '
        'with weights_only=False.')


def safe_load(file, map_location=None):
    """Load a checkpoint with ``weights_only=True`` and restore its objects.

    Args:
        file (str | file-like): Checkpoint path or readable binary buffer.
        map_location: Same as :func:`torch.load`.

    Returns:
        The loaded checkpoint with ``HistoryBuffer``/numpy objects restored.

    Raises:
        UnsafeCheckpointError: If the file needs globals outside the
            allow-list and ``MMDET_GHM_TRUSTED_CHECKPOINT`` is not set.
    """
    name = file if isinstance(file, (str, os.PathLike)) else repr(file)
    start = file.tell() if hasattr(file, 'tell') else None
    try:
        if _TORCH_HAS_SAFE_GLOBALS:
            with torch.serialization.safe_globals(_legacy_safe_globals()):
                checkpoint = torch.load(
                    file, map_location=map_location, weights_only=True)
        else:  # older torch: plugin-written files still load safely
            checkpoint = torch.load(
                file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if not trusted_checkpoints_enabled():
            raise _refusal(name, error) from None
        warnings.warn(
            f'{TRUST_ENV} is set: loading {name!r} with weights_only=False. '
            'This runs any code stored in the file.')
        if start is not None:
            file.seek(start)
        checkpoint = torch.load(
            file, map_location=map_location, weights_only=False)
    return from_safe(checkpoint)


def load_from_local(filename, map_location):
    """MMEngine ``CheckpointLoader`` scheme for local paths (safe version).

    Args:
        filename (str): Local checkpoint path (``~`` is expanded).
        map_location: Same as :func:`torch.load`.

    Returns:
        dict: The loaded checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_load(filename, map_location=map_location)


def _safe_save_checkpoint(save_checkpoint):

    def save(checkpoint, *args, **kwargs):
        return save_checkpoint(to_safe(checkpoint), *args, **kwargs)

    save.__doc__ = save_checkpoint.__doc__
    save.__wrapped__ = save_checkpoint
    save._mmdet_ghm_safe = True
    return save


def install_safe_checkpoint_loading():
    """Make MMEngine save and load checkpoints that need no unsafe pickle.

    Registers :func:`load_from_local` as MMEngine's loader for local files and
    wraps the ``save_checkpoint`` used by ``Runner.save_checkpoint`` with
    :func:`to_safe`. Safe to call more than once.
    """
    global _installed
    if _installed:
        return
    from mmengine.runner import checkpoint as ckpt_module
    from mmengine.runner import runner as runner_module

    ckpt_module.CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
    if not getattr(runner_module.save_checkpoint, '_mmdet_ghm_safe', False):
        runner_module.save_checkpoint = _safe_save_checkpoint(
            runner_module.save_checkpoint)
    _installed = True
