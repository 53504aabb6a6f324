"""Training hooks (registered in ``mmengine.registry.HOOKS``)."""
from .cls_gradient_share_hook import ClsGradientShareHook
from .ghm_stats_hook import GHMStatsHook
from .ghm_warmup_hook import GHMWarmupHook
from .rng_state_hook import InexactResumeWarning, RNGStateHook

__all__ = ['ClsGradientShareHook', 'GHMStatsHook', 'GHMWarmupHook', 'InexactResumeWarning',
           'RNGStateHook']
