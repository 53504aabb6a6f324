"""The process's random-number-generator states as checkpoint-safe data.

:func:`capture_rng_states` reads the states of Python's ``random``, NumPy's
global generator, torch's CPU generator and every CUDA device's generator;
:func:`restore_rng_states` sets them back. The captured form holds only
tensors, ints, floats, strings and lists, so it loads with
``torch.load(weights_only=True)`` (no pickled NumPy or Python objects).

:func:`worker_seed` gives a data loader worker its seed from the run's seed,
the epoch, the rank and the worker id, so that a worker started for epoch
``e`` draws the same numbers whether the run began at epoch 0 or resumed at
``e``.
"""
import random
from typing import Dict, List

import numpy as np
import torch

#: Bumped when the captured layout changes; a newer layout is refused.
RNG_STATE_VERSION = 1


def capture_rng_states() -> Dict:
    """The current generator states.

    Returns:
        dict: ``version``; ``python`` (``[version, state list of 625 ints,
        gauss_next]``); ``numpy`` (``kind``, ``keys`` int64 tensor (624,),
        ``pos``, ``has_gauss``, ``cached_gaussian``); ``torch`` (uint8 tensor);
        ``cuda`` (one uint8 tensor per visible CUDA device, empty without CUDA).
    """
    py_version, py_state, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    cuda: List[torch.Tensor] = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = [state.clone() for state in torch.cuda.get_rng_state_all()]
    return dict(
        version=RNG_STATE_VERSION,
        python=[py_version, list(py_state), gauss_next],
        numpy=dict(kind=str(kind), keys=torch.from_numpy(keys.astype(np.int64)),
                   pos=int(pos), has_gauss=int(has_gauss),
                   cached_gaussian=float(cached_gaussian)),
        torch=torch.get_rng_state().clone(),
        cuda=cuda)


def check_rng_states(states) -> None:
    """Raise ``ValueError`` naming what is wrong unless ``states`` is captured data."""
    if not isinstance(states, dict):
        raise ValueError(f'RNG states must be a dict, got {type(states).__name__}')
    version = states.get('version')
    if version != RNG_STATE_VERSION:
        raise ValueError(f'RNG states of version {version!r}; this mmdet_ghm reads version '
                         f'{RNG_STATE_VERSION}')
    missing = [key for key in ('python', 'numpy', 'torch', 'cuda') if key not in states]
    if missing:
        raise ValueError(f'RNG states lack {missing}')


def restore_rng_states(states: Dict) -> List[str]:
    """Set every generator to ``states`` (from :func:`capture_rng_states`).

    CUDA states are restored when this process has as many CUDA devices as
    the captured run; otherwise they are left alone.

    Returns:
        list[str]: what could not be restored (empty when everything was).

    Raises:
        ValueError: ``states`` is not captured data.
    """
    check_rng_states(states)
    py_version, py_state, gauss_next = states['python']
    random.setstate((py_version, tuple(py_state), gauss_next))
    np_state = states['numpy']
    keys = np.asarray(np_state['keys'].numpy(), dtype=np.uint32)
    np.random.set_state((np_state['kind'], keys, np_state['pos'], np_state['has_gauss'],
                         np_state['cached_gaussian']))
    torch.set_rng_state(states['torch'].cpu())
    cuda = states['cuda']
    if not cuda:
        return []
    devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if devices != len(cuda):
        return [f'the CUDA generators ({len(cuda)} saved, {devices} visible)']
    torch.cuda.set_rng_state_all([state.cpu() for state in cuda])
    return []


def worker_seed(seed: int, epoch: int, rank: int, worker_id: int) -> int:
    """A 32-bit seed for data loader worker ``worker_id`` of ``rank`` in ``epoch``."""
    entropy = [value & 0xFFFFFFFFFFFFFFFF for value in (seed, epoch, rank, worker_id)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])
