"""Make a resumed run continue exactly as the uninterrupted run would have."""
import warnings
from typing import Dict, Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

from mmdet_ghm.engine.rng_state import capture_rng_states, restore_rng_states
from mmdet_ghm.engine.worker_seeding import EpochWorkerInit
from mmdet_ghm.utils.torch_compat import shutdown_persistent_workers

#: Where the states go in a checkpoint (beside ``meta``, ``state_dict``, ...).
CHECKPOINT_KEY = 'rng_states'


class InexactResumeWarning(UserWarning):
    """A resumed run will not continue exactly as the uninterrupted run."""


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the random-number-generator states in checkpoints; restore them on resume.

    MMEngine's checkpoints keep the model, optimizer, schedulers and message
    hub, but no generator state: after ``--resume`` the augmentations, the
    workers and anything else that draws random numbers continue from a
    re-seeded state, so the resumed run becomes another run. With this hook:

    * every checkpoint holds the states of Python's ``random``, NumPy's global
      generator, torch's CPU generator and each CUDA device's generator, taken
      when the checkpoint is written (:mod:`mmdet_ghm.engine.rng_state`);
    * on resume they are restored where the uninterrupted run would go on:
      before the first epoch for an epoch-based loop, and after MMEngine has
      skipped the trained batches (just before the next one is read) for an
      iteration-based loop, so the skip's augmentations draw nothing from
      the restored stream;
    * validation leaves the states as it found them (its data loader draws a
      seed from torch's generator; without this an uninterrupted run, which
      validates between the checkpoint and the next epoch, would differ from
      a resumed one);
    * data loader workers (``num_workers > 0``, epoch-based loops) are seeded
      from the run's seed, the epoch, the rank and the worker id
      (:func:`~mmdet_ghm.engine.rng_state.worker_seed`), and persistent
      workers are restarted at each epoch, so that epoch ``e``'s workers draw
      the same numbers in a run resumed at ``e``. The sampler's order comes
      from its seed and the epoch already.

    A checkpoint without states (an old one, or one from a run without this
    hook) still resumes, with one :class:`InexactResumeWarning`. So does a
    checkpoint written in the middle of an epoch of an epoch-based loop
    (MMEngine restarts that epoch from its first batch).

    Add it with ``custom_hooks = [dict(type='RNGStateHook')]``.
    """

    priority = 'VERY_LOW'

    def __init__(self):
        self._loaded: Optional[Dict] = None
        self._val_states: Optional[Dict] = None

    # -- checkpoints ---------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Put the current states into ``checkpoint[CHECKPOINT_KEY]``."""
        checkpoint[CHECKPOINT_KEY] = capture_rng_states()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the loaded states until training starts (only a resume uses them)."""
        meta = checkpoint.get('meta', {})
        self._loaded = dict(states=checkpoint.get(CHECKPOINT_KEY), epoch=meta.get('epoch'),
                            iter=meta.get('iter'))

    def _take_resumed(self, runner) -> Optional[Dict]:
        """The loaded checkpoint's entry if this run resumed from it, else None."""
        loaded, self._loaded = self._loaded, None
        if loaded is None or runner.iter == 0:
            return None  # a fresh run, or weights loaded with load_from only
        if (loaded['epoch'], loaded['iter']) != (runner.epoch, runner.iter):
            return None
        return loaded

    # -- training ------------------------------------------------------------
    def before_train_epoch(self, runner) -> None:
        """Restore the states of a resumed run; seed this epoch's workers."""
        loop = runner.train_loop
        iter_based = isinstance(loop, IterBasedTrainLoop)
        if not iter_based:
            self._seed_workers(runner)
        loaded = self._take_resumed(runner)
        if loaded is None:
            return
        if loaded['states'] is None:
            self._warn(runner, 'the checkpoint holds no random-number-generator states (it was '
                       'written without RNGStateHook)')
            return
        if iter_based:
            loop.dataloader_iterator = _RestoreBeforeBatch(
                loop, runner.iter, lambda: self._restore(runner, loaded['states']))
            return
        if runner.iter != runner.epoch * len(loop.dataloader):
            self._warn(runner, f'the checkpoint was written in the middle of epoch '
                       f'{runner.epoch + 1} (iteration {runner.iter}); MMEngine restarts that '
                       'epoch from its first batch')
            return
        self._restore(runner, loaded['states'])

    def _seed_workers(self, runner) -> None:
        dataloader = runner.train_loop.dataloader
        if getattr(dataloader, 'num_workers', 0) == 0:
            return
        dataloader.worker_init_fn = EpochWorkerInit(
            seed=runner.seed, epoch=runner.epoch, rank=runner.rank)
        shutdown_persistent_workers(dataloader)

    def _restore(self, runner, states: Dict) -> None:
        for what in restore_rng_states(states):
            self._warn(runner, f'{what} could not be restored')

    @staticmethod
    def _warn(runner, why: str) -> None:
        message = f'RNGStateHook: {why}; the resumed run will not continue exactly as the ' \
                  'uninterrupted run would have.'
        runner.logger.warning(message)
        warnings.warn(message, InexactResumeWarning, stacklevel=2)

    # -- validation leaves the training stream alone -------------------------
    def before_val(self, runner) -> None:
        """Remember the states validation starts from."""
        self._val_states = capture_rng_states()

    def after_val(self, runner) -> None:
        """Put back the states validation started from."""
        if self._val_states is not None:
            restore_rng_states(self._val_states)
            self._val_states = None


class _RestoreBeforeBatch:
    """Wraps an iteration-based loop's data iterator: restore the states after ``skip`` batches.

    MMEngine resumes an iteration-based loop by reading (and so augmenting)
    the ``skip`` batches already trained on; the states are restored after
    that, right before the first new batch is read, and the loop gets its
    own iterator back.
    """

    def __init__(self, loop, skip: int, restore):
        self._loop = loop
        self._iterator = loop.dataloader_iterator
        self._skip = skip
        self._restore = restore

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip > 0:
            self._skip -= 1
            return next(self._iterator)
        self._restore()
        self._loop.dataloader_iterator = self._iterator
        return next(self._iterator)
