"""Engine extensions: safe checkpoint loading, hooks."""
from .safe_checkpoint import install_safe_checkpoint_loading

__all__ = ['install_safe_checkpoint_loading']
