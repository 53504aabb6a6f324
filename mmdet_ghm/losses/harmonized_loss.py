"""State shared by the GHM loss modules: region edges, EMA density, statistics."""
import numbers
from typing import Dict, Optional

import torch
import torch.nn as nn
from torch import Tensor

from .checks import (check_bins, check_flag, check_momentum, check_real, check_reduction,
                     check_warmup, check_weight_cap, resolve_reduction)
from .gradient_density import HarmonizeOptions, debiased_density, region_edges


class HarmonizedLoss(nn.Module):
    """Base of :class:`GHMCLoss` and :class:`GHMRLoss`.

    Buffers, named as in MMDetection's ``GHMC``/``GHMR`` so that their state
    dicts load either way: ``edges`` ``(bins + 1,)`` and, when
    ``momentum > 0``, the EMA density ``acc_sum`` ``(bins,)`` (saved in
    checkpoints). Besides, a non-persistent ``region_stats`` ``(4, bins)``
    float64 accumulates, on the device, the element count and the total
    weight of each region over the calls since :meth:`reset_region_stats`
    (RetinaNet calls the loss once per FPN level), and the same two for the
    positives alone where the loss tells them apart (``COUNTS_POSITIVES``:
    GHM-C; GHM-R's elements are all positives' coordinates). Nothing is read
    back to the host until a caller asks for :meth:`region_summary`.

    With ``global_density=True`` the region counts and the normaliser are
    summed over all processes before weighting (one all-reduce of
    ``bins + 1`` numbers per call): every process then holds the same EMA
    state, and the gradients after DDP's averaging equal those of a single
    process that sees the whole batch. Worth it when each GPU sees few
    images (the density of 2 images is noisy); it is off by default, as in
    the published settings.

    Three further options, each off by default (the published GHM, exactly);
    ``beta_j = N / (S_j * n)`` is region ``j``'s weight, whose average over
    the valid elements is 1 (the weight of plain CE):

    * ``ema_bias_correction=True`` (needs ``momentum > 0``): the EMA starts
      at zero, so a region seen for the first time gets ``1 / (1 - m)``
      times its weight (4x at ``m = 0.75``). The density used is
      ``S_j / (1 - m**t_j)``, ``t_j`` the number of updates of region ``j``
      (it is updated only when non-empty). Adds the persistent buffer
      ``ema_updates`` ``(bins,)`` int64.
    * ``weight_cap=c`` (a number > 0): ``beta_j <- min(beta_j, c)``, so no
      element gets more than ``c`` times the uniform CE weight (the
      reference's unbounded weights reach ``N / n`` for an element alone
      in its region, and overflow float16 above 65504). Capped weight is
      not redistributed: the other regions keep their weights. A cap on
      ``beta``, not a floor on the density, because ``beta`` is in units of
      the uniform weight whatever the batch size, image size or FPN level,
      while a density floor would be a count that must grow with them.
    * ``warmup=K`` (training iterations): weights blend from uniform to GHM,
      ``w_j = (1 - lam) * 1 + lam * beta_j`` for non-empty regions,
      ``lam = min(1, t / K)`` with ``t`` the training iteration (0-based), so
      the first iteration trains with plain CE. The loss cannot see the
      runner: ``t`` is given by :meth:`set_warmup_iter`, which
      ``GHMWarmupHook`` calls with ``runner.iter`` before every training
      iteration (a loss called in training mode before it was ever set
      raises). Iterations, not calls: RetinaNet calls the loss once per FPN
      level, and their number differs between configs. ``t`` is kept in the
      persistent int64 buffer ``warmup_iter``, so a checkpoint gives the
      same loss after loading; the density EMA keeps updating during
      warm-up. Order: bias-corrected density, ``beta``, cap, blend.

    The buffers of an option exist only when it is on, so the default state
    dict is MMDetection's.
    """

    #: Whether ``region_stats`` also counts the positives (rows 2 and 3).
    COUNTS_POSITIVES = False

    def __init__(self, bins: int, momentum: float, last_edge: float, loss_weight: float,
                 reduction: str, global_density: bool, *, ema_bias_correction: bool = False,
                 weight_cap: Optional[float] = None, warmup: int = 0):
        super().__init__()
        self.global_density = check_flag('global_density', global_density)
        self.bins = check_bins(bins)
        self.momentum = check_momentum(momentum)
        self.loss_weight = check_real('loss_weight', loss_weight)
        self.reduction = check_reduction(reduction)
        self.register_buffer('edges', region_edges(self.bins, last_edge))
        if self.momentum > 0:
            self.register_buffer('acc_sum', torch.zeros(self.bins))
        else:
            self.acc_sum = None
        self.register_buffer('region_stats', torch.zeros(4, self.bins, dtype=torch.float64),
                             persistent=False)
        self.ema_bias_correction = check_flag('ema_bias_correction', ema_bias_correction)
        if self.ema_bias_correction and self.momentum == 0:
            raise ValueError('ema_bias_correction=True corrects the EMA of the density and '
                             'needs momentum > 0, got momentum=0')
        if self.ema_bias_correction:
            self.register_buffer('ema_updates', torch.zeros(self.bins, dtype=torch.int64))
        self.weight_cap = check_weight_cap(weight_cap)
        self.warmup = check_warmup(warmup)
        self._warmup_clock_set = False
        if self.warmup:
            self.register_buffer('warmup_iter', torch.zeros((), dtype=torch.int64))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Refuse ``edges`` whose interior edges are not ``float32(j) / bins``.

        :func:`~.gradient_density.region_index` computes the interior edges
        where that is exact and reads them from ``edges`` elsewhere (CUDA), so
        other edges would give different regions on different devices. Every
        GHM state dict, this package's and MMDetection's, has these edges.
        """
        loaded = state_dict.get(prefix + 'edges')
        if loaded is not None and loaded.shape == self.edges.shape:
            expected = region_edges(self.bins, 0.0)[:-1]
            interior = loaded.detach().to('cpu', torch.float32)[:-1]
            if not torch.equal(interior, expected):
                j = int((interior != expected).nonzero()[0])
                raise ValueError(
                    f'{prefix}edges in the state dict are not the regions of bins={self.bins}: '
                    f'edge {j} is {float(interior[j])!r}, expected {float(expected[j])!r} '
                    f'(= {j} / {self.bins} in float32)')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set_warmup_iter(self, iteration: int) -> None:
        """Set the training iteration ``t`` of the warm-up (a device write, no sync).

        ``GHMWarmupHook`` calls it with ``runner.iter`` before every training
        iteration; a plain training loop calls it itself. No-op when
        ``warmup == 0``.
        """
        if isinstance(iteration, bool) or not isinstance(iteration, numbers.Integral):
            raise TypeError(f'iteration must be a non-negative int, got {iteration!r}')
        if iteration < 0:
            raise ValueError(f'iteration must be >= 0, got {iteration}')
        if not self.warmup:
            return
        self.warmup_iter.fill_(int(iteration))
        self._warmup_clock_set = True

    def harmonize_options(self) -> Optional[HarmonizeOptions]:
        """The options for :func:`harmonize`; ``None`` when all are off (as published)."""
        if not (self.ema_bias_correction or self.weight_cap is not None or self.warmup):
            return None
        if self.warmup and self.training and not self._warmup_clock_set:
            raise RuntimeError(
                f'{type(self).__name__}(warmup={self.warmup}) counts training iterations, '
                'but its iteration was never set: add custom_hooks=[dict(type='
                "'GHMWarmupHook')] to the config, or call loss.set_warmup_iter(i) before "
                'each training iteration')
        return HarmonizeOptions(
            ema_updates=self.ema_updates if self.ema_bias_correction else None,
            weight_cap=self.weight_cap,
            warmup=self.warmup,
            warmup_iter=self.warmup_iter if self.warmup else None)

    def reset_region_stats(self) -> None:
        """Zero the statistics accumulator (in place, on the device)."""
        self.region_stats.zero_()

    def region_summary(self) -> Dict[str, Tensor]:
        """Statistics since the last reset, as device tensors.

        Returns:
            dict: ``counts`` ``(bins,)`` elements per region, ``weight_share``
            ``(bins,)`` share of the total harmonizing weight per region,
            ``non_empty`` number of non-empty regions, ``density``
            ``(bins,)``: the EMA ``acc_sum`` with momentum (bias-corrected
            with ``ema_bias_correction``), else the counts;
            ``hard_half_share`` the share of the total weight in the regions
            of ``g >= 0.5`` (lower edge >= 0.5), and ``beta_max`` the largest
            weight per element of any region (its total weight over its
            count; with several calls, their count-weighted mean), which
            ``weight_cap`` bounds and warm-up pulls towards 1. Where the loss
            counts the positives (``COUNTS_POSITIVES``), also
            ``positive_counts`` ``(bins,)``, ``positive_weight_share``
            ``(bins,)`` (the positives' share of the total weight, per
            region), ``positive_share`` (their share of the total weight)
            and ``positive_fraction`` (their share of the elements).
        """
        counts, weights, positive_counts, positive_weights = self.region_stats
        if self.acc_sum is None:
            density = counts.clone()
        elif self.ema_bias_correction:
            density = debiased_density(self.acc_sum, self.ema_updates, self.momentum)
        else:
            density = self.acc_sum.clone()
        total = weights.sum().clamp(min=1e-12)
        hard_half = self.edges[:-1] >= 0.5
        summary = dict(
            counts=counts.clone(),
            weight_share=weights / total,
            non_empty=(counts > 0).sum(),
            density=density,
            hard_half_share=torch.where(hard_half, weights, torch.zeros_like(weights)).sum()
            / total,
            beta_max=(weights / counts.clamp(min=1)).max())
        if self.COUNTS_POSITIVES:
            summary.update(
                positive_counts=positive_counts.clone(),
                positive_weight_share=positive_weights / total,
                positive_share=positive_weights.sum() / total,
                positive_fraction=positive_counts.sum() / counts.sum().clamp(min=1))
        return summary

    def _reduction(self, reduction_override) -> str:
        return resolve_reduction(self.reduction, reduction_override)
