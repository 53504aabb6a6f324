"""Training hooks (registered in ``mmengine.registry.HOOKS``)."""
from .ghm_stats_hook import GHMStatsHook

__all__ = ['GHMStatsHook']
