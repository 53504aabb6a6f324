"""No host synchronisation, no per-region work: compile with fullgraph, count ops."""
import pytest
import torch

import mmdet_ghm.losses.checks as checks_module
import mmdet_ghm.losses.gradient_density as density_module
from mmdet_ghm.losses import GHMCLoss, GHMRLoss

from ..host_reads import HOST_READS, OpRecorder

def record(loss, *inputs):
    pred = inputs[0].clone().requires_grad_()
    with OpRecorder() as recorder:
        loss(pred, *inputs[1:]).backward()
    return recorder.ops


@pytest.fixture
def accelerator_path(monkeypatch):
    # On CPU two steps read memory on the host by design (there is no device
    # to wait for): the label range check and the bincounts of the regions (of
    # every element, and of the positives for the statistics).
    # Force the code paths taken on accelerators, which must never do so
    # (value checks of binary targets queue a device assertion there).
    monkeypatch.setattr(checks_module, 'check_label_range', lambda labels, num_classes: None)
    monkeypatch.setattr(checks_module, 'is_compiling', lambda: True)
    monkeypatch.setattr(density_module, 'counts_by_bincount', lambda index: False)


def test_cpu_path_reads_the_host_only_for_bincount_and_the_label_check(eager_kernels):
    ops = record(GHMCLoss(bins=10), torch.randn(50, 3), torch.randint(0, 4, (50,)),
                 torch.ones(50))
    reads = [op for op in ops if op in HOST_READS]
    # the regions of every element, then of the positives (region statistics)
    assert reads == ['aten._local_scalar_dense', 'aten.bincount', 'aten.bincount'], reads


@pytest.mark.parametrize('binary', [False, True])
def test_ghmc_ops_do_not_depend_on_bins_and_never_read_the_host(eager_kernels, accelerator_path,
                                                                binary):
    logits = torch.randn(300, 7)
    labels = torch.randint(0, 8, (300,))
    target = torch.nn.functional.one_hot(labels, 8)[:, :7].float() if binary else labels
    weight = torch.ones(300)
    few = record(GHMCLoss(bins=5, momentum=0.75), logits, target, weight)
    many = record(GHMCLoss(bins=200, momentum=0.75), logits, target, weight)
    assert sorted(few) == sorted(many)
    assert not HOST_READS.intersection(few), HOST_READS.intersection(few)


def test_ghmr_ops_do_not_depend_on_bins_and_never_read_the_host(eager_kernels, accelerator_path):
    pred, target, weight = torch.randn(300, 4), torch.randn(300, 4), torch.ones(300, 4)
    few = record(GHMRLoss(bins=3, momentum=0.7), pred, target, weight)
    many = record(GHMRLoss(bins=150, momentum=0.7), pred, target, weight)
    assert sorted(few) == sorted(many)
    assert not HOST_READS.intersection(few), HOST_READS.intersection(few)


def test_reference_is_caught_by_the_same_check():
    from mmdet.models.losses import GHMC
    ops = record(GHMC(bins=5), torch.randn(50, 3), torch.randint(0, 4, (50,)), torch.ones(50))
    assert 'aten._local_scalar_dense' in ops


def compare_compiled(loss_eager, loss_compiled, make_inputs, steps=2):
    step = torch.compile(lambda loss, *args: loss(*args), fullgraph=True, dynamic=True)
    for _ in range(steps):
        inputs = make_inputs()
        a = inputs[0].clone().requires_grad_()
        b = inputs[0].clone().requires_grad_()
        expected = loss_eager(a, *inputs[1:])
        got = step(loss_compiled, b, *inputs[1:])
        expected.backward()
        got.backward()
        assert torch.allclose(got, expected, rtol=1e-5)
        assert torch.allclose(b.grad, a.grad, rtol=1e-5, atol=1e-9)
    if loss_eager.acc_sum is not None:
        assert torch.allclose(loss_compiled.acc_sum, loss_eager.acc_sum, rtol=1e-6)


def test_ghmc_compiles_with_fullgraph(eager_kernels):
    torch._dynamo.reset()
    compare_compiled(
        GHMCLoss(bins=30, momentum=0.75), GHMCLoss(bins=30, momentum=0.75),
        lambda: (torch.randn(400, 9) * 3, torch.randint(0, 10, (400,)),
                 (torch.rand(400) > 0.1).float()))


def test_ghmr_compiles_with_fullgraph(eager_kernels):
    torch._dynamo.reset()
    compare_compiled(
        GHMRLoss(bins=10, momentum=0.7), GHMRLoss(bins=10, momentum=0.7),
        lambda: (torch.randn(200, 4) * 0.1, torch.randn(200, 4) * 0.1,
                 (torch.rand(200, 1) > 0.5).float().expand(200, 4).contiguous()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_no_host_sync_on_cuda(kernel_mode):
    cls = GHMCLoss(bins=30, momentum=0.75).cuda()
    reg = GHMRLoss(bins=10, momentum=0.7).cuda()
    logits = torch.randn(5000, 80, device='cuda', requires_grad=True)
    labels = torch.randint(0, 81, (5000,), device='cuda')
    weight = torch.ones(5000, device='cuda')
    deltas = torch.randn(5000, 4, device='cuda', requires_grad=True)
    targets = torch.randn(5000, 4, device='cuda')
    for _ in range(2):  # the first call compiles; check a warm one too
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode('error')
        try:
            total = cls(logits, labels, weight) + reg(deltas, targets, weight[:, None].expand(-1, 4))
            total.backward()
        finally:
            torch.cuda.set_sync_debug_mode('default')
    assert torch.isfinite(total).item()
