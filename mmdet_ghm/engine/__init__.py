"""Engine extensions: safe checkpoint loading, hooks."""
from .hooks import GHMStatsHook  # noqa: F401  (registers the hook)
from .safe_checkpoint import install_safe_checkpoint_loading

__all__ = ['GHMStatsHook', 'install_safe_checkpoint_loading']
