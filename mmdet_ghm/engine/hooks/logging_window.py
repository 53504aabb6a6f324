"""The logging window the statistics hooks pool over.

A window is every training iteration since the previous logging iteration of
the same epoch (or since the epoch began), up to and including the next
logging iteration of the ``LoggerHook`` or the epoch's last iteration.
"""
from typing import Optional, Tuple

from mmengine.hooks import Hook, LoggerHook

#: The interval without a ``LoggerHook`` (MMEngine's default).
DEFAULT_INTERVAL = 50


def logger_interval(runner, interval: Optional[int]) -> Tuple[int, bool]:
    """``(interval, ignore_last)``: ``interval`` or the ``LoggerHook``'s, and its
    ``ignore_last`` (True without one)."""
    logger_hook = next((h for h in runner.hooks if isinstance(h, LoggerHook)), None)
    if interval is None:
        interval = logger_hook.interval if logger_hook is not None else DEFAULT_INTERVAL
    ignore_last = logger_hook.ignore_last if logger_hook is not None else True
    return interval, ignore_last


def is_window_end(hook: Hook, runner, batch_idx: int, interval: int) -> bool:
    """Whether iteration ``batch_idx`` of the epoch ends a window."""
    return (hook.every_n_inner_iters(batch_idx, interval)
            or hook.end_of_epoch(runner.train_dataloader, batch_idx))


def check_interval(interval) -> None:
    """Raise ``ValueError`` unless ``interval`` is a positive int or ``None``."""
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int)
                                 or interval < 1):
        raise ValueError(f'interval must be a positive int or None, got {interval!r}')
