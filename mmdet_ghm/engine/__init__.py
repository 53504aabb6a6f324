"""Engine extensions: safe checkpoint loading, exact resume, hooks."""
from .hooks import GHMStatsHook, GHMWarmupHook, RNGStateHook  # noqa: F401  (registers the hooks)
from .safe_checkpoint import install_safe_checkpoint_loading

__all__ = ['GHMStatsHook', 'GHMWarmupHook', 'RNGStateHook', 'install_safe_checkpoint_loading']
