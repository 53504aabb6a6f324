"""The gradient-density estimator shared by GHM-C and GHM-R.

The unit interval of gradient norms is cut into ``M = bins`` regions of width
``1/M``; region ``j`` holds the norms ``g`` with ``edges[j] <= g < edges[j+1]``.
Every function here is O(N) in the number of elements, independent of ``M``,
and free of host synchronisation: counts stay on the device as int64 tensors
(exact beyond 2**24 elements), the EMA update is a masked tensor update, and
nothing returns a data-dependent shape. Region index ``M`` is a sentinel for
invalid (ignored) elements; it is counted but never weighted.
"""
from typing import Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from ..utils.torch_compat import is_compiling

# Regions are stored as uint8: at most 255 regions plus the sentinel.
MAX_BINS = 254
# MMDetection's weight_reduce_loss adds it to avg_factor; kept for parity.
EPS = torch.finfo(torch.float32).eps


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

    Args:
        g (Tensor): gradient norms in [0, 1], float32, any shape.
        valid (Tensor): bool, broadcastable to ``g``.
        edges (Tensor): ``(M + 1,)`` float32 from :func:`region_edges`.

    Returns:
        Tensor: uint8 of ``g``'s shape, in ``[0, M - 1]`` for valid elements
        and ``M`` for invalid ones.
    """
    bins = edges.numel() - 1
    guess = (g * bins).floor().clamp(0, bins - 1).to(torch.int64)
    below = (g < edges[guess]).to(torch.int64)
    above = (g >= edges[guess + 1]).to(torch.int64)
    index = (guess - below + above).clamp(0, bins - 1)
    return torch.where(valid, index, bins).to(torch.uint8)


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


def region_counts(index: Tensor, bins: int) -> Tensor:
    """Number of elements in each region, ``(bins + 1,)`` int64 (last: invalid).

    Counts are exact integers (int64), also beyond 2**24 elements. Off the
    CPU (see :func:`counts_by_bincount`) a scatter-add is used; eager calls
    convert the uint8 index to int64 in chunks to bound memory.
    """
    flat = index.reshape(-1)
    if counts_by_bincount(index):
        return torch.bincount(flat, minlength=bins + 1)
    counts = torch.zeros(bins + 1, dtype=torch.int64, device=index.device)
    if is_compiling():
        return counts.scatter_add_(0, flat.long(), torch.ones_like(flat, dtype=torch.int64))
    chunk = 1 << 22
    ones = torch.ones(min(chunk, flat.numel()), dtype=torch.int64, device=index.device)
    for part in flat.split(chunk):
        counts.scatter_add_(0, part.long(), ones[:part.numel()])
    return counts


def update_density(counts: Tensor, acc_sum: Tensor, momentum: float) -> Tensor:
    """Gradient density per region after this batch, ``(bins,)`` float32.

    Without momentum the density is the region count ``R_j``. With momentum
    ``m`` the EMA ``S_j = m * S_j + (1 - m) * R_j`` is updated in place, only
    for non-empty regions (as the reference does), and returned.

    Args:
        counts (Tensor): ``(bins + 1,)`` int64 from :func:`region_counts`.
        acc_sum (Tensor | None): ``(bins,)`` float32 EMA buffer; ``None`` when
            ``momentum == 0``.
        momentum (float): in [0, 1).
    """
    region = counts[:-1].to(torch.float32)
    if momentum <= 0:
        return region
    updated = momentum * acc_sum + (1 - momentum) * region
    acc_sum.copy_(torch.where(counts[:-1] > 0, updated, acc_sum))
    return acc_sum


def region_weights(counts: Tensor, density: Tensor, total: Tensor) -> Tensor:
    """Harmonizing weight of each region, ``(bins + 1,)`` float32.

    ``beta_j = total / (density_j * n)`` for the ``n`` non-empty regions of
    this batch; empty regions and the invalid sentinel get 0.

    Args:
        counts (Tensor): ``(bins + 1,)`` int64 region counts.
        density (Tensor): ``(bins,)`` float32 from :func:`update_density`.
        total (Tensor): float32 scalar, the normaliser ``N`` of the loss.
    """
    non_empty = counts[:-1] > 0
    num_non_empty = non_empty.sum().clamp(min=1).to(torch.float32)
    safe_density = torch.where(non_empty, density, torch.ones_like(density))
    weights = torch.where(non_empty, total / safe_density / num_non_empty,
                          torch.zeros_like(density))
    return torch.cat([weights, weights.new_zeros(1)])


def accumulate_region_stats(stats: Tensor, counts: Tensor, weights: Tensor) -> None:
    """Add this call's per-region statistics to ``stats`` in place, on the device.

    Args:
        stats (Tensor): ``(2, bins)`` float64: row 0 the element counts, row 1
            the total harmonizing weight ``R_j * beta_j`` of each region
            (float64 holds integer counts exactly up to 2**53).
        counts (Tensor): ``(bins + 1,)`` int64 region counts of this call.
        weights (Tensor): ``(bins + 1,)`` per-region weights of this call.
    """
    region = counts[:-1].to(torch.float64)
    stats.add_(torch.stack([region, region * weights[:-1].to(torch.float64)]))


def all_reduce_density(counts: Tensor, total: Tensor) -> Tuple[Tensor, Tensor, int]:
    """Sum region counts and the normaliser over all processes.

    One collective of ``bins + 1`` float64 numbers (integers stay exact up to
    2**53), enqueued on the device like any other: no host synchronisation.

    Returns:
        tuple: global counts ``(bins + 1,)`` int64 (the invalid slot stays
        local), global total, and the world size (1 when not distributed).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return counts, total, 1
    packed = torch.cat([counts[:-1].to(torch.float64), total.to(torch.float64).reshape(1)])
    dist.all_reduce(packed)
    global_counts = torch.cat([packed[:-1].round().to(torch.int64), counts[-1:]])
    return global_counts, packed[-1].to(total.dtype), dist.get_world_size()


def harmonize(index: Tensor,
              bins: int,
              total: Optional[Tensor],
              acc_sum: Optional[Tensor],
              momentum: float,
              stats: Optional[Tensor] = None,
              global_density: bool = False) -> Tuple[Tensor, Tensor]:
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

    Returns:
        tuple: weights ``(bins + 1,)`` float32 and the normaliser
        ``N = max(total, 1)`` float32.
    """
    counts = region_counts(index, bins)
    if total is None:
        total = counts[:-1].sum().to(torch.float32)
    world_size = 1
    if global_density:
        counts, total, world_size = all_reduce_density(counts, total)
    total = total.clamp(min=1)
    density = update_density(counts, acc_sum, momentum)
    weights = region_weights(counts, density, total)
    if stats is not None:
        accumulate_region_stats(stats, counts, weights)
    if world_size > 1:
        weights = weights * world_size
    return weights, total
