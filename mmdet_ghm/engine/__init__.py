"""Engine extensions: safe checkpoint loading, hooks."""
from .hooks import GHMStatsHook, GHMWarmupHook  # noqa: F401  (registers the hooks)
from .safe_checkpoint import install_safe_checkpoint_loading

__all__ = ['GHMStatsHook', 'GHMWarmupHook', 'install_safe_checkpoint_loading']
