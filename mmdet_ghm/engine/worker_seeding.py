"""Data loader workers seeded by epoch, so that a resumed epoch starts them alike.

MMEngine seeds worker ``w`` of rank ``r`` with ``seed + num_workers * r + w``
once, when the workers start: persistent workers then carry their state
from epoch to epoch, and a run resumed at epoch ``e`` starts them afresh, so
its augmentations differ from the uninterrupted run's. :class:`EpochWorkerInit`
seeds each worker from ``(seed, epoch, rank, worker_id)`` instead;
``RNGStateHook`` installs it at every epoch and restarts persistent workers
(:func:`~mmdet_ghm.utils.torch_compat.shutdown_persistent_workers`), at the
cost of a loader without persistent workers.
"""
import random
from dataclasses import dataclass

import numpy as np
import torch

from mmdet_ghm.engine.rng_state import worker_seed


@dataclass(frozen=True)
class EpochWorkerInit:
    """A ``worker_init_fn`` that seeds ``random``, NumPy and torch for one epoch.

    Picklable (a plain dataclass), so it also works with the ``spawn`` start
    method.
    """

    seed: int
    epoch: int
    rank: int

    def __call__(self, worker_id: int) -> None:
        seed = worker_seed(self.seed, self.epoch, self.rank, worker_id)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

