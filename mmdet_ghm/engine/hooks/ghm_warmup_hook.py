"""Tell the GHM losses with ``warmup=K`` which training iteration is running."""
from typing import List, Tuple

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mmdet_ghm.losses.harmonized_loss import HarmonizedLoss

from .ghm_stats_hook import find_harmonized_losses


@HOOKS.register_module()
class GHMWarmupHook(Hook):
    """Drive the warm-up of every ``GHMCLoss``/``GHMRLoss`` with ``warmup > 0``.

    A loss cannot see the runner, and counting its own calls would tie ``K``
    to the number of calls per iteration (one per FPN level: 5 on COCO,
    3 in the synthetic configs). Before every training iteration this hook
    calls ``loss.set_warmup_iter(runner.iter)`` (a device write, no host
    synchronisation), so ``K`` is in training iterations, the 0-based
    iteration ``t`` gives the blend ``lam = min(1, t / K)``, and a resumed
    run continues from the restored ``runner.iter``. Like MMDetection's
    ``SetEpochInfoHook``, it only pushes the runner's counter into the model.

    Add it with ``custom_hooks = [dict(type='GHMWarmupHook')]``; a loss with
    ``warmup > 0`` trained without it raises an error naming this hook.
    """

    priority = 'NORMAL'

    def __init__(self):
        self.losses: List[Tuple[str, HarmonizedLoss]] = []

    def before_train(self, runner) -> None:
        """Find the GHM losses with a warm-up."""
        self.losses = [(path, module) for path, module in find_harmonized_losses(runner.model)
                       if module.warmup > 0]
        if not self.losses:
            runner.logger.warning('GHMWarmupHook: no GHM loss in the model has warmup > 0; '
                                  'the hook does nothing.')
            return
        runner.logger.info('GHMWarmupHook: ' + ', '.join(
            f'{path} (warmup={module.warmup} iterations)' for path, module in self.losses))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Set the iteration of every warm-up loss to ``runner.iter``."""
        for _, module in self.losses:
            module.set_warmup_iter(runner.iter)
