"""The gradient-density estimator shared by GHM-C and GHM-R.

The unit interval of gradient norms is cut into ``M = bins`` regions of width
``1/M``; region ``j`` holds the norms ``g`` with ``edges[j] <= g < edges[j+1]``.
Every function here is O(N) in the number of elements, independent of ``M``,
and free of host synchronisation: counts stay on the device as int64 tensors
(exact beyond 2**24 elements), the EMA update is a masked tensor update, and
nothing returns a data-dependent shape. Region index ``M`` is a sentinel for
invalid (ignored) elements; it is counted but never weighted.
"""
import sys
from typing import NamedTuple, Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from ..utils.torch_compat import compiled_cpu_division_is_ieee, is_compiling

# Regions are stored as uint8: at most 255 regions plus the sentinel.
MAX_BINS = 254
# MMDetection's weight_reduce_loss adds it to avg_factor; kept for parity.
EPS = torch.finfo(torch.float32).eps


class HarmonizeOptions(NamedTuple):
    """Options beyond the published GHM, all off by default (see :func:`harmonize`).

    Attributes:
        ema_updates (Tensor | None): ``(bins,)`` int64 count ``t_j`` of the EMA
            updates of each region (updated in place). Given, the density is
            the bias-corrected EMA ``S_j / (1 - m**t_j)``
            (:func:`debiased_density`); needs ``momentum > 0``.
        weight_cap (float | None): upper bound on each region's weight,
            ``beta_j <- min(beta_j, weight_cap)`` (:func:`region_weights`).
        warmup (int): number of training iterations ``K`` over which weights
            blend from uniform (1) to GHM; 0: off.
        warmup_iter (Tensor | None): int64 scalar, the current training
            iteration ``t`` (required when ``warmup > 0``); the blend factor is
            ``min(1, t / K)``, computed on the device.
    """

    ema_updates: Optional[Tensor] = None
    weight_cap: Optional[float] = None
    warmup: int = 0
    warmup_iter: Optional[Tensor] = None


#: The published behaviour: no option on.
PUBLISHED = HarmonizeOptions()


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """float64 for float64 inputs (gradcheck), float32 for every other dtype."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def region_edges(bins: int, last_edge: float) -> Tensor:
    """Region edges ``(bins + 1,)`` float32, as MMDetection's GHM losses build them.

    ``edges[j] = j / bins`` computed in float32; the last edge is replaced by
    ``last_edge`` (GHM-C nudges it to ``1 + 1e-6`` so ``g = 1`` falls in the
    last region; GHM-R sets it far above 1).
    """
    edges = torch.arange(bins + 1).float() / bins
    edges[-1] = last_edge
    return edges


def region_index(g: Tensor, valid: Tensor, edges: Tensor) -> Tensor:
    """Region of each gradient norm, exactly as the edge comparisons define it.

    ``floor(g * M)`` can be off by one next to an edge, because ``j / M`` is
    rounded to float32; one comparison with each neighbouring edge corrects
    it, so the result equals ``j`` with ``edges[j] <= g < edges[j + 1]``.
    A non-finite ``g`` (NaN from a NaN or infinite input) is invalid.

    The neighbouring edges are computed, not looked up, where that is exact
    (see :func:`edges_by_division`): a per-element gather from ``edges`` is
    a scalar loop in inductor's C++ kernels and took most of the time of the
    pass. ``edges`` must then be :func:`region_edges`' (interior edges
    ``float32(j) / M``; the last edge is read from ``edges``), which
    :class:`HarmonizedLoss` checks when a state dict is loaded.

    Args:
        g (Tensor): gradient norms in [0, 1], float32, any shape.
        valid (Tensor): bool, broadcastable to ``g``.
        edges (Tensor): ``(M + 1,)`` float32 from :func:`region_edges`.

    Returns:
        Tensor: uint8 of ``g``'s shape, in ``[0, M - 1]`` for valid elements
        with finite ``g`` and ``M`` for the others.
    """
    bins = edges.numel() - 1
    valid = valid & g.isfinite()
    g = torch.where(valid, g, 0.0)  # a finite stand-in, so the index is defined
    guess = (g * bins).floor().clamp(0, bins - 1)
    if edges_by_division(g):
        j = guess.to(torch.float32)  # float32 edges also for float64 g
        lower = (j / bins).to(g.dtype)
        upper = torch.where(guess == bins - 1, edges[-1], (j + 1) / bins).to(g.dtype)
    else:
        lower = edges[guess.long()]
        upper = edges[guess.long() + 1]
    index = (guess - (g < lower).to(g.dtype) + (g >= upper).to(g.dtype)).clamp(0, bins - 1)
    return torch.where(valid, index, bins).to(torch.uint8)


def edges_by_division(g: Tensor) -> bool:
    """Whether :func:`region_index` may compute ``edges[j]`` as ``float32(j) / M``.

    That is bit-exact where division is IEEE 754: in eager CPU code (ATen
    divides, as :func:`region_edges` did) and in inductor's C++ kernels
    compiled without reciprocal math
    (:func:`~mmdet_ghm.utils.torch_compat.compiled_cpu_division_is_ieee`).
    Not on accelerators: CUDA's ATen multiplies by the reciprocal of a scalar
    divisor and Triton's division is approximate, while a gather from a small
    table is cheap there.
    """
    if g.device.type != 'cpu':
        return False
    return not is_compiling() or compiled_cpu_division_is_ieee()


def element_weights(weights: Tensor, index: Tensor, finite: Tensor) -> Tensor:
    """Weight of each element, ``weights[index]``; NaN where the input is not finite.

    A non-finite input counts in no region (:func:`region_index`), and its
    NaN weight makes its loss and its gradient NaN whatever the loss function
    gives there (``0 * inf`` is NaN, ``0 * 0`` would not be): the loss is
    then non-finite, as in MMDetection's ``GHMC``/``GHMR``, and so are the
    gradients, which is what makes an AMP grad scaler skip the step.

    Args:
        weights (Tensor): ``(bins + 1,)`` from :func:`region_weights`.
        index (Tensor): uint8 regions from :func:`region_index`.
        finite (Tensor): bool, broadcastable to ``index``: the input is finite.
    """
    return torch.where(finite, weights[index.int()], float('nan'))


def counts_by_bincount(index: Tensor) -> bool:
    """Whether :func:`region_counts` may use ``torch.bincount`` for ``index``.

    Only for eager CPU tensors: there ``bincount``'s read of the maximum is a
    plain memory read (no device to wait for), its output has ``bins + 1``
    entries because :func:`region_index` bounds the index by construction,
    and it is 5-8x faster than a scatter-add on uint8 input. On accelerators
    ``bincount`` would synchronise, and inside ``torch.compile`` its shape is
    data-dependent, so both use the scatter-add.
    """
    return index.device.type == 'cpu' and not is_compiling()


# Lanes of bincount_in_lanes and the integer type that holds one byte per lane.
_LANE_WORDS = ((8, torch.int64), (4, torch.int32), (2, torch.int16))


def bincount_in_lanes(flat: Tensor, size: int) -> Tensor:
    """``torch.bincount(flat, minlength=size)`` for a 1-D uint8 ``flat`` with values < ``size``.

    ``bincount`` adds one to a counter per element; on a run of equal values
    (most elements of a batch are in one region) each increment waits for the
    previous one, which made it as slow as a whole compiled kernel. Here
    neighbouring bytes count in different counters: viewed as ``L``-byte
    integers, every word gets one integer added that puts ``k * size`` in its
    byte ``L - 1 - k`` of significance (``L`` lanes, ``L * size <= 256``, so
    no byte carries and the top byte, which gets 0, keeps the sign: no
    overflow), and the ``L`` lanes' counts are summed after (the last
    ``numel % L`` bytes are added by a scatter-add). Falls back to
    one plain ``bincount`` where that is not possible (too many regions, a
    misaligned view, a big-endian machine).
    """
    lanes, word = next(((n, w) for n, w in _LANE_WORDS if n * size <= 256), (1, None))
    body = flat.numel() - flat.numel() % lanes
    if (word is None or sys.byteorder != 'little' or body == 0
            or flat.storage_offset() % lanes or not flat.is_contiguous()):
        return torch.bincount(flat, minlength=size)
    # byte k (little-endian) of each word gets (L - 1 - k) * size
    shift = sum(((lanes - 1 - k) * size) << (8 * k) for k in range(lanes))
    laned = (flat[:body].view(word) + shift).view(torch.uint8)
    counts = torch.bincount(laned, minlength=lanes * size).view(lanes, size).sum(0)
    tail = flat[body:].long()  # fewer than L elements: a scatter-add, no second host read
    return counts.scatter_add_(0, tail, torch.ones_like(tail))


def region_counts(index: Tensor, bins: int) -> Tensor:
    """Number of elements in each region, ``(bins + 1,)`` int64 (last: invalid).

    Counts are exact integers (int64), also beyond 2**24 elements. On the
    CPU they come from :func:`bincount_in_lanes`. Off the
    CPU (see :func:`counts_by_bincount`) a scatter-add is used; eager calls
    convert the uint8 index to int64 in chunks to bound memory.
    """
    flat = index.reshape(-1)
    if counts_by_bincount(index):
        return bincount_in_lanes(flat, bins + 1)
    counts = torch.zeros(bins + 1, dtype=torch.int64, device=index.device)
    if is_compiling():
        return counts.scatter_add_(0, flat.long(), torch.ones_like(flat, dtype=torch.int64))
    chunk = 1 << 22
    ones = torch.ones(min(chunk, flat.numel()), dtype=torch.int64, device=index.device)
    for part in flat.split(chunk):
        counts.scatter_add_(0, part.long(), ones[:part.numel()])
    return counts


def update_density(counts: Tensor, acc_sum: Tensor, momentum: float,
                   ema_updates: Optional[Tensor] = None) -> Tensor:
    """Gradient density per region after this batch, ``(bins,)`` float32.

    Without momentum the density is the region count ``R_j``. With momentum
    ``m`` the EMA ``S_j = m * S_j + (1 - m) * R_j`` is updated in place, only
    for non-empty regions (as the reference does), and returned. With
    ``ema_updates`` (bias correction, off in the reference) the update count
    ``t_j`` of each non-empty region is incremented in place and the
    bias-corrected EMA of :func:`debiased_density` is returned instead.

    Args:
        counts (Tensor): ``(bins + 1,)`` int64 from :func:`region_counts`.
        acc_sum (Tensor | None): ``(bins,)`` float32 EMA buffer; ``None`` when
            ``momentum == 0``.
        momentum (float): in [0, 1).
        ema_updates (Tensor | None): ``(bins,)`` int64 update counts ``t_j``.
    """
    region = counts[:-1].to(torch.float32)
    if momentum <= 0:
        return region
    updated = momentum * acc_sum + (1 - momentum) * region
    acc_sum.copy_(torch.where(counts[:-1] > 0, updated, acc_sum))
    if ema_updates is not None:
        ema_updates.add_((counts[:-1] > 0).to(ema_updates.dtype))
        return debiased_density(acc_sum, ema_updates, momentum)
    return acc_sum


def debiased_density(acc_sum: Tensor, ema_updates: Tensor, momentum: float) -> Tensor:
    """Bias-corrected EMA ``S_j / (1 - m**t_j)``, ``(bins,)`` float32.

    The EMA starts at zero, so after its first update a region's ``S_j`` is
    ``(1 - m) * R_j`` and its weight ``1 / (1 - m)`` times too large (4x at
    the published ``m = 0.75``). Dividing by ``1 - m**t_j``, with ``t_j`` the
    number of updates region ``j`` has had (regions are updated only when
    non-empty), makes the estimate an average of the counts seen so far:
    ``R_j`` after one update, ``(m R_j' + R_j) / (1 + m)`` after two, and the
    plain EMA once ``m**t_j`` vanishes. Regions never updated keep ``S_j = 0``.
    The correction is computed in float64 (``bins`` numbers).
    """
    correction = 1 - torch.pow(momentum, ema_updates.to(torch.float64))
    seen = ema_updates > 0
    correction = torch.where(seen, correction, torch.ones_like(correction))
    return (acc_sum.to(torch.float64) / correction).to(acc_sum.dtype)


def region_weights(counts: Tensor, density: Tensor, total: Tensor,
                   weight_cap: Optional[float] = None,
                   warmup_lambda: Optional[Tensor] = None) -> Tensor:
    """Harmonizing weight of each region, ``(bins + 1,)`` float32.

    ``beta_j = total / (density_j * n)`` for the ``n`` non-empty regions of
    this batch; empty regions and the invalid sentinel get 0. Options (off
    in the reference), applied in this order to non-empty regions:

    * ``weight_cap``: ``beta_j <- min(beta_j, weight_cap)``;
    * ``warmup_lambda`` ``lam``: ``w_j = (1 - lam) * 1 + lam * beta_j``.

    Args:
        counts (Tensor): ``(bins + 1,)`` int64 region counts.
        density (Tensor): ``(bins,)`` float32 from :func:`update_density`.
        total (Tensor): float32 scalar, the normaliser ``N`` of the loss.
        weight_cap (float | None): upper bound on ``beta_j``.
        warmup_lambda (Tensor | None): float32 scalar ``lam`` in [0, 1]
            (:func:`warmup_factor`).
    """
    non_empty = counts[:-1] > 0
    num_non_empty = non_empty.sum().clamp(min=1).to(torch.float32)
    safe_density = torch.where(non_empty, density, torch.ones_like(density))
    weights = torch.where(non_empty, total / safe_density / num_non_empty,
                          torch.zeros_like(density))
    if weight_cap is not None:
        weights = weights.clamp(max=weight_cap)
    if warmup_lambda is not None:
        weights = torch.where(non_empty, (1 - warmup_lambda) + warmup_lambda * weights,
                              torch.zeros_like(density))
    return torch.cat([weights, weights.new_zeros(1)])


def warmup_factor(warmup_iter: Tensor, warmup: int) -> Tensor:
    """Blend factor ``lam = min(1, t / K)``, float32 scalar, on ``warmup_iter``'s device.

    Args:
        warmup_iter (Tensor): int64 scalar, the training iteration ``t >= 0``.
        warmup (int): ``K > 0`` iterations.
    """
    return (warmup_iter.to(torch.float32) / warmup).clamp(max=1)


def accumulate_region_stats(stats: Tensor, counts: Tensor, weights: Tensor,
                            positive_counts: Optional[Tensor] = None) -> None:
    """Add this call's per-region statistics to ``stats`` in place, on the device.

    Args:
        stats (Tensor): ``(4, bins)`` float64: the element counts, the total
            harmonizing weight ``R_j * beta_j`` of each region, and the same
            two for the positives alone (float64 holds integer counts exactly
            up to 2**53).
        counts (Tensor): ``(bins + 1,)`` int64 region counts of this call.
        weights (Tensor): ``(bins + 1,)`` per-region weights of this call.
        positive_counts (Tensor | None): ``(bins + 1,)`` int64 counts of the
            positives (GHM-C); ``None`` leaves the positives' rows as they are.
    """
    weight = weights[:-1].to(torch.float64)
    region = counts[:-1].to(torch.float64)
    if positive_counts is None:
        stats[:2].add_(torch.stack([region, region * weight]))
        return
    positive = positive_counts[:-1].to(torch.float64)
    stats.add_(torch.stack([region, region * weight, positive, positive * weight]))


def all_reduce_density(counts: Tensor, total: Tensor, positive_counts: Optional[Tensor] = None
                       ) -> Tuple[Tensor, Tensor, int, Optional[Tensor]]:
    """Sum region counts and the normaliser over all processes.

    One collective of ``bins + 1`` float64 numbers (integers stay exact up to
    2**53; ``2 * bins + 1`` with ``positive_counts``, summed in the same
    collective), enqueued on the device like any other: no host
    synchronisation.

    Returns:
        tuple: global counts ``(bins + 1,)`` int64 (the invalid slot stays
        local), global total, the world size (1 when not distributed) and the
        global ``positive_counts`` (as given when ``None``).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return counts, total, 1, positive_counts
    parts = [counts[:-1].to(torch.float64), total.to(torch.float64).reshape(1)]
    if positive_counts is not None:
        parts.append(positive_counts[:-1].to(torch.float64))
    packed = torch.cat(parts)
    dist.all_reduce(packed)
    bins = counts.numel() - 1

    def unpack(start, local):
        return torch.cat([packed[start:start + bins].round().to(torch.int64), local[-1:]])
    if positive_counts is not None:
        positive_counts = unpack(bins + 1, positive_counts)
    return unpack(0, counts), packed[bins].to(total.dtype), dist.get_world_size(), \
        positive_counts


def harmonize(index: Tensor,
              bins: int,
              total: Optional[Tensor],
              acc_sum: Optional[Tensor],
              momentum: float,
              stats: Optional[Tensor] = None,
              global_density: bool = False,
              options: Optional[HarmonizeOptions] = None,
              positive_index: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """From region indices to per-region weights: count, (all-reduce), EMA, weigh.

    Args:
        index (Tensor): uint8 regions from :func:`region_index`.
        bins (int): number of regions.
        total (Tensor | None): the loss's normaliser before clamping to >= 1
            (GHM-R: the sum of label weights); ``None``: the number of valid
            elements (GHM-C).
        acc_sum, momentum: see :func:`update_density`.
        stats (Tensor | None): accumulator for :func:`accumulate_region_stats`.
        global_density (bool): estimate the density over all processes. The
            weights are then multiplied by the world size, so that after DDP
            averages the gradients they equal those of one process that sees
            the whole batch.
        options (HarmonizeOptions | None): bias-corrected EMA, weight cap,
            warm-up (see :class:`HarmonizeOptions`); ``None``: as published.
        positive_index (Tensor | None): uint8 regions of the positives only
            (``bins`` elsewhere), for the positives' rows of ``stats``; not
            used for the weights.

    Returns:
        tuple: weights ``(bins + 1,)`` float32 and the normaliser
        ``N = max(total, 1)`` float32.
    """
    counts = region_counts(index, bins)
    positive_counts = (region_counts(positive_index, bins)
                       if stats is not None and positive_index is not None else None)
    if total is None:
        total = counts[:-1].sum().to(torch.float32)
    world_size = 1
    if global_density:
        counts, total, world_size, positive_counts = all_reduce_density(counts, total,
                                                                        positive_counts)
    total = total.clamp(min=1)
    options = PUBLISHED if options is None else options
    if options.ema_updates is not None and momentum <= 0:
        raise ValueError(f'EMA bias correction needs momentum > 0, got momentum={momentum}')
    if options.warmup and options.warmup_iter is None:
        raise ValueError(f'warmup={options.warmup} needs warmup_iter, the training iteration')
    density = update_density(counts, acc_sum, momentum, options.ema_updates)
    lam = warmup_factor(options.warmup_iter, options.warmup) if options.warmup else None
    weights = region_weights(counts, density, total, options.weight_cap, lam)
    if stats is not None:
        accumulate_region_stats(stats, counts, weights, positive_counts)
    if world_size > 1:
        weights = weights * world_size
    return weights, total
