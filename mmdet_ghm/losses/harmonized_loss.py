"""State shared by the GHM loss modules: region edges, EMA density, statistics."""
from typing import Dict

import torch
import torch.nn as nn
from torch import Tensor

from .checks import (check_bins, check_momentum, check_real, check_reduction,
                     resolve_reduction)
from .gradient_density import region_edges


class HarmonizedLoss(nn.Module):
    """Base of :class:`GHMCLoss` and :class:`GHMRLoss`.

    Buffers, named as in MMDetection's ``GHMC``/``GHMR`` so that their state
    dicts load either way: ``edges`` ``(bins + 1,)`` and, when
    ``momentum > 0``, the EMA density ``acc_sum`` ``(bins,)`` (saved in
    checkpoints). Besides, a non-persistent ``region_stats`` ``(2, bins)``
    float64 accumulates, on the device, the element count and the total
    weight of each region over the calls since :meth:`reset_region_stats`
    (RetinaNet calls the loss once per FPN level). Nothing is read back to
    the host until a caller asks for :meth:`region_summary`.

    With ``global_density=True`` the region counts and the normaliser are
    summed over all processes before weighting (one all-reduce of
    ``bins + 1`` numbers per call): every process then holds the same EMA
    state, and the gradients after DDP's averaging equal those of a single
    process that sees the whole batch. Worth it when each GPU sees few
    images (the density of 2 images is noisy); it is off by default, as in
    the published settings.
    """

    def __init__(self, bins: int, momentum: float, last_edge: float, loss_weight: float,
                 reduction: str, global_density: bool):
        super().__init__()
        if not isinstance(global_density, bool):
            raise TypeError(f'global_density must be True or False, got {global_density!r}')
        self.global_density = global_density
        self.bins = check_bins(bins)
        self.momentum = check_momentum(momentum)
        self.loss_weight = check_real('loss_weight', loss_weight)
        self.reduction = check_reduction(reduction)
        self.register_buffer('edges', region_edges(self.bins, last_edge))
        if self.momentum > 0:
            self.register_buffer('acc_sum', torch.zeros(self.bins))
        else:
            self.acc_sum = None
        self.register_buffer('region_stats', torch.zeros(2, self.bins, dtype=torch.float64),
                             persistent=False)

    def reset_region_stats(self) -> None:
        """Zero the statistics accumulator (in place, on the device)."""
        self.region_stats.zero_()

    def region_summary(self) -> Dict[str, Tensor]:
        """Statistics since the last reset, as device tensors.

        Returns:
            dict: ``counts`` ``(bins,)`` elements per region, ``weight_share``
            ``(bins,)`` share of the total harmonizing weight per region,
            ``non_empty`` number of non-empty regions, and ``density``
            ``(bins,)``: the EMA ``acc_sum`` with momentum, else the counts.
        """
        counts, weights = self.region_stats
        return dict(
            counts=counts.clone(),
            weight_share=weights / weights.sum().clamp(min=1e-12),
            non_empty=(counts > 0).sum(),
            density=(self.acc_sum if self.acc_sum is not None else counts).clone())

    def _reduction(self, reduction_override) -> str:
        return resolve_reduction(self.reduction, reduction_override)
