"""Per-level classification loss for heads that flatten all FPN levels.

MMDetection's dense heads call the classification loss in one of two ways:

* **per level** (RetinaNet, ATSS, GFL, TOOD): ``multi_apply`` over the FPN
  levels, one call per level on that level's ``B * H_l * W_l * A`` priors
  (images inside the level). GHM-C then counts its regions per level, and
  the levels share one EMA (``acc_sum``), updated once per level in level
  order. This is what the paper and MMDetection's ``configs/ghm`` trained.
* **flattened** (FCOS, FoveaBox, VFNet, ...): one call on the priors of all
  levels and images concatenated (level-major, images inside a level). The
  gradient density is then estimated over everything at once, and the EMA is
  updated once per iteration.

For losses without batch-level state (FL, CE) the two give the same value
up to float rounding. For GHM-C they do not: a density over all levels at
once makes the coarse levels (few priors) share the regions of the fine
levels (most priors), and the normaliser and the number of non-empty regions
are those of the whole batch.

:class:`PerLevelClsLossMixin` gives a flattening head the per-level
behaviour without copying its ``loss_by_feat``: for the duration of
``loss_by_feat`` the head's ``loss_cls`` attribute is shadowed by a
:class:`PerLevelLoss` that cuts every flattened input into the contiguous
per-level segments (sizes taken from ``cls_scores``), calls the real loss
module once per segment in level order and sums the results. That is
exactly what RetinaNet's per-level calls compute (same calls, same order,
same EMA updates; the sum is Python's ``sum`` over the levels, as MMEngine's
``parse_losses`` sums RetinaNet's per-level list).

Why this design (rather than the alternatives):

* Copying the head's ``loss_by_feat`` to call the loss per level would
  duplicate MMDetection's target assignment and box losses, which then drift
  from upstream; the shadow reuses them unchanged, and the same mixin serves
  any head that flattens in the level-major order.
* A ``level_sizes`` argument of the loss would need every head to pass it,
  i.e. the same copy of ``loss_by_feat``, and would tie GHM-C to a head
  layout.
* The shadow lives in the head's instance ``__dict__`` (which takes
  precedence over ``nn.Module``'s ``_modules`` lookup) and is removed in a
  ``finally``: the module tree, the state dict (``acc_sum`` stays at
  ``bbox_head.loss_cls.acc_sum``), ``named_modules`` (what ``GHMStatsHook``
  and ``GHMWarmupHook`` find) and checkpoints are never changed, not even
  during the call.
"""
from contextlib import contextmanager
from typing import Iterator, List, Sequence

import torch
from torch import Tensor, nn


def level_sizes(cls_scores: Sequence[Tensor], cls_out_channels: int) -> List[int]:
    """Rows of each level in a head's flattened ``(N, cls_out_channels)`` scores.

    Args:
        cls_scores: per level ``(B, A * cls_out_channels, H, W)``.
        cls_out_channels: classes per prior (``C``, or ``C + 1`` for softmax).

    Returns:
        list[int]: ``B * A * H * W`` of each level, in level order.

    Raises:
        ValueError: a level's channels are not a multiple of
            ``cls_out_channels``, or a score map is not 4-D.
    """
    sizes = []
    for level, score in enumerate(cls_scores):
        if score.dim() != 4 or score.shape[1] % cls_out_channels:
            raise ValueError(
                f'cls_scores[{level}] must have shape (B, A * {cls_out_channels}, H, W), '
                f'got {tuple(score.shape)}')
        sizes.append(score.numel() // cls_out_channels)
    return sizes


class PerLevelLoss:
    """Calls a loss module once per level on segments of flattened inputs.

    Every tensor argument whose first dimension is ``sum(sizes)`` (also inside
    a tuple or list, e.g. a ``(labels, scores)`` target) is split into the
    per-level segments; every other argument (``avg_factor``,
    ``reduction_override``, ...) is passed unchanged to each call. Scalar
    results are summed over the levels; per-element results
    (``reduction='none'``) are concatenated back in the flattened order.
    Attribute look-ups (``use_sigmoid``, ``custom_accuracy``, ...) go to the
    wrapped module.

    Args:
        loss (nn.Module): the real loss module (its state, e.g. GHM-C's EMA,
            is shared by all levels).
        sizes (Sequence[int]): rows of each level, in flattened order.
        owner (str): who wraps the loss, for error messages.
    """

    def __init__(self, loss: nn.Module, sizes: Sequence[int], owner: str = 'the head'):
        self.loss = loss
        self.sizes = [int(s) for s in sizes]
        self.total = sum(self.sizes)
        self.owner = owner

    def __getattr__(self, name):
        # only reached for names this object does not define itself
        return getattr(self.__dict__['loss'], name)

    def _split(self, value, name: str):
        """Per-level pieces of ``value`` (a list), or None if it is passed whole."""
        if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == self.total:
            return list(value.split(self.sizes, dim=0))
        if isinstance(value, (tuple, list)) and any(
                isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == self.total
                for v in value):
            parts = [self._split(v, f'{name}[{i}]') for i, v in enumerate(value)]
            return [type(value)(v if p is None else p[level] for v, p in zip(value, parts))
                    for level in range(len(self.sizes))]
        return None

    def __call__(self, pred: Tensor, *args, **kwargs):
        if not isinstance(pred, Tensor) or pred.dim() == 0 or pred.shape[0] != self.total:
            shape = tuple(pred.shape) if isinstance(pred, Tensor) else type(pred).__name__
            raise ValueError(
                f'{self.owner} (cls_loss_per_level=True) calls loss_cls per level on the '
                f'flattened scores of all levels, {self.total} rows '
                f'(levels: {self.sizes}); got pred {shape}. This head does not flatten '
                f'its scores that way: set cls_loss_per_level=False')
        pieces = [list(pred.split(self.sizes, dim=0))]
        for i, arg in enumerate(args):
            pieces.append(self._split(arg, f'argument {i + 1}'))
        kw_pieces = {k: self._split(v, k) for k, v in kwargs.items()}
        outputs = []
        for level in range(len(self.sizes)):
            level_args = [p[level] if p is not None else a
                          for p, a in zip(pieces[1:], args)]
            level_kwargs = {k: (kw_pieces[k][level] if kw_pieces[k] is not None else v)
                            for k, v in kwargs.items()}
            outputs.append(self.loss(pieces[0][level], *level_args, **level_kwargs))
        if all(o.dim() == 0 for o in outputs):
            return sum(outputs)  # level order, as MMEngine's parse_losses sums a list
        return torch.cat(outputs, dim=0)


@contextmanager
def per_level_cls_loss(head: nn.Module, sizes: Sequence[int]) -> Iterator[PerLevelLoss]:
    """Within the block, ``head.loss_cls`` is a :class:`PerLevelLoss` of the real one.

    The real module stays registered where it is (``head._modules``); only
    attribute access is shadowed through the instance ``__dict__``.
    """
    if 'loss_cls' in head.__dict__:
        raise RuntimeError(f'{type(head).__name__}.loss_cls is already shadowed '
                           f'(nested per-level loss calls)')
    wrapper = PerLevelLoss(head.loss_cls, sizes, owner=type(head).__name__)
    head.__dict__['loss_cls'] = wrapper
    try:
        yield wrapper
    finally:
        del head.__dict__['loss_cls']


class PerLevelClsLossMixin:
    """Makes a flattening dense head call ``loss_cls`` once per FPN level.

    Put it before the head class: ``class MyHead(PerLevelClsLossMixin,
    FCOSHead)``. The head must flatten its classification scores as FCOS
    does (each level ``(B, A * C, H, W)`` permuted to ``(B * H * W * A, C)``,
    levels concatenated) and call ``self.loss_cls`` once on all of them in
    ``loss_by_feat(cls_scores, ...)``; a call with another number of rows
    raises ``ValueError``.

    Args:
        cls_loss_per_level (bool): True: per-level density (one loss call per
            level on its segment, losses summed, the loss module's state
            shared), as RetinaNet's per-level calls. False: the head's own
            flattened call, unchanged. Defaults to True.
    """

    def __init__(self, *args, cls_loss_per_level: bool = True, **kwargs) -> None:
        if not isinstance(cls_loss_per_level, bool):
            raise TypeError(f'cls_loss_per_level must be True or False, '
                            f'got {cls_loss_per_level!r}')
        super().__init__(*args, **kwargs)
        self.cls_loss_per_level = cls_loss_per_level

    def loss_by_feat(self, cls_scores: List[Tensor], *args, **kwargs):
        """The head's ``loss_by_feat``, with ``loss_cls`` per level if asked."""
        if not self.cls_loss_per_level:
            return super().loss_by_feat(cls_scores, *args, **kwargs)
        with per_level_cls_loss(self, level_sizes(cls_scores, self.cls_out_channels)):
            return super().loss_by_feat(cls_scores, *args, **kwargs)
