"""The density estimator: exact regions, exact counts, EMA and weights."""
import pytest
import torch

import mmdet_ghm.losses.gradient_density as density_module
from mmdet_ghm.losses.gradient_density import (bincount_in_lanes, region_counts, region_edges,
                                               region_index, region_weights, update_density)


def brute_force_regions(g, edges):
    """Region by explicit edge comparisons, as the reference loops do."""
    out = torch.full(g.shape, -1, dtype=torch.int64)
    for j in range(edges.numel() - 1):
        out[(g >= edges[j]) & (g < edges[j + 1])] = j
    return out


def test_edges_match_reference_construction():
    edges = region_edges(30, 1.0 + 1e-6)
    expected = torch.arange(31).float() / 30
    expected[-1] += 1e-6
    assert torch.equal(edges, expected)
    assert edges.dtype == torch.float32


def edge_neighbours(edges):
    """Every edge, its float32 neighbours, 0, 1 and random norms in [0, 1]."""
    inner = edges[:-1]
    return torch.cat([
        inner,
        torch.nextafter(inner, torch.tensor(-1.0)).clamp(min=0),
        torch.nextafter(inner, torch.tensor(2.0)),
        torch.tensor([0.0, 1.0, torch.nextafter(torch.tensor(1.0), torch.tensor(0.0))]),
        torch.rand(200, generator=torch.Generator().manual_seed(len(edges))),
    ])


def test_region_index_is_exact_on_and_next_to_every_edge():
    for bins in (3, 7, 10, 30, 100):
        edges = region_edges(bins, 1.0 + 1e-6)
        g = edge_neighbours(edges)
        index = region_index(g, torch.ones_like(g, dtype=torch.bool), edges)
        assert index.dtype == torch.uint8
        assert torch.equal(index.long(), brute_force_regions(g, edges)), bins


@pytest.mark.parametrize('route', ['division', 'gather', 'compiled', 'float64'])
def test_region_index_is_exact_for_every_number_of_regions(route, monkeypatch):
    """Both ways to find the neighbouring edges (computed ``j / M``, gathered
    from ``edges``), eager and compiled, and float64 norms compared with the
    float32 edges, agree with the edge comparisons for every ``M`` allowed."""
    if route == 'gather':
        monkeypatch.setattr(density_module, 'edges_by_division', lambda g: False)
    assert route == 'gather' or density_module.edges_by_division(torch.zeros(1))
    index_fn = region_index
    if route == 'compiled':
        index_fn = torch.compile(region_index, dynamic=True, fullgraph=True)
    for bins in range(1, density_module.MAX_BINS + 1):
        for last_edge in (1.0 + 1e-6, 1e3):  # GHM-C's and GHM-R's last edge
            edges = region_edges(bins, last_edge)
            g = edge_neighbours(edges)
            g = g[g <= 1]
            if route == 'float64':
                g = g.double()
            index = index_fn(g, torch.ones_like(g, dtype=torch.bool), edges)
            assert torch.equal(index.long(), brute_force_regions(g, edges)), (bins, last_edge)


def test_compiled_cpu_kernels_divide_exactly_on_this_torch():
    # Otherwise region_index silently takes the slower gather route here.
    from mmdet_ghm.utils.torch_compat import compiled_cpu_division_is_ieee
    assert compiled_cpu_division_is_ieee()


def test_floor_alone_would_misplace_some_edge_neighbours():
    # The correction step matters: somewhere next to a float32 edge,
    # floor(g * M) disagrees with the edge comparison.
    disagreements = 0
    for bins in (3, 7, 10, 30, 100):
        edges = region_edges(bins, 1.0 + 1e-6)
        g = torch.cat([edges[1:-1], torch.nextafter(edges[1:-1], torch.tensor(0.0))])
        floor = (g * bins).floor().long()
        disagreements += int((floor != brute_force_regions(g, edges)).sum())
    assert disagreements > 0


def test_invalid_elements_go_to_the_sentinel_region():
    edges = region_edges(4, 1.0 + 1e-6)
    g = torch.tensor([0.1, 0.6, 0.9, 1.0])
    valid = torch.tensor([True, False, True, False])
    assert region_index(g, valid, edges).tolist() == [0, 4, 3, 4]


@pytest.fixture(params=['bincount', 'scatter_add'])
def counting_path(request, monkeypatch):
    """Both ways of counting: bincount (eager CPU) and scatter-add (elsewhere)."""
    if request.param == 'scatter_add':
        monkeypatch.setattr(density_module, 'counts_by_bincount', lambda index: False)
    return request.param


def test_counts_are_exact_beyond_float32_integers(counting_path):
    n = (1 << 24) + 3  # float32 cannot represent 2**24 + 1 or + 3
    index = torch.zeros(n, dtype=torch.uint8)
    index[-1] = 2
    counts = region_counts(index, 2)
    assert counts.dtype == torch.int64
    assert counts.tolist() == [n - 1, 0, 1]


def test_counts_match_a_direct_count(counting_path):
    index = torch.randint(0, 11, (3, 12345), dtype=torch.uint8)
    index[0, :7] = 10
    counts = region_counts(index, 10)
    assert counts.tolist() == [int((index == j).sum()) for j in range(11)]


@pytest.mark.parametrize('size', [2, 11, 31, 32, 33, 64, 65, 128, 129, 255])
def test_bincount_in_lanes_matches_bincount(size):
    """Every lane width (8, 4, 2 bytes per word, or none), the largest value in every
    byte position (a carry into the next byte would move a count), lengths that leave a
    tail, and views that start off a word boundary (plain bincount then)."""
    generator = torch.Generator().manual_seed(size)
    data = torch.randint(0, size, (1000,), dtype=torch.uint8, generator=generator)
    data[:16] = size - 1
    for flat in (data, data[:997], data[1:], data[8:], data[:5], data[:0]):
        assert torch.equal(bincount_in_lanes(flat, size), torch.bincount(flat, minlength=size))


def test_counts_with_an_empty_region_keep_their_length(counting_path):
    index = torch.zeros(100, dtype=torch.uint8)
    assert region_counts(index, 30).shape == (31,)


def test_ema_updates_only_non_empty_regions():
    acc = torch.tensor([4.0, 8.0, 2.0])
    counts = torch.tensor([10, 0, 6, 99])  # last: invalid sentinel, ignored
    density = update_density(counts, acc, 0.75)
    assert torch.allclose(acc, torch.tensor([0.75 * 4 + 0.25 * 10, 8.0, 0.75 * 2 + 0.25 * 6]))
    assert density is acc


def test_density_without_momentum_is_the_count():
    counts = torch.tensor([3, 0, 5, 7])
    assert update_density(counts, None, 0.0).tolist() == [3.0, 0.0, 5.0]


def test_weights_divide_by_density_and_non_empty_regions():
    counts = torch.tensor([2, 0, 6, 5])
    density = torch.tensor([2.0, 0.0, 6.0])
    total = torch.tensor(8.0)
    weights = region_weights(counts, density, total)
    # two non-empty regions: beta_j = 8 / (density_j * 2); empty and sentinel: 0
    assert torch.allclose(weights, torch.tensor([2.0, 0.0, 8 / 12, 0.0]))


def test_all_empty_gives_zero_weights_not_nan():
    counts = torch.tensor([0, 0, 0, 9])
    weights = region_weights(counts, torch.zeros(3), torch.tensor(1.0))
    assert torch.equal(weights, torch.zeros(4))
