"""Density over the global batch: 2 CPU processes (gloo) against one process."""
import gc
import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from mmdet_ghm.losses import GHMCLoss, GHMRLoss

WORLD = 2
STEPS = 2


def make_data(step):
    g = torch.Generator().manual_seed(100 + step)
    features = torch.randn(64, 8, generator=g)
    labels = torch.randint(0, 6, (64,), generator=g)  # 5 classes + background
    label_weight = (torch.rand(64, generator=g) > 0.2).float()
    box_targets = torch.randn(64, 4, generator=g) * 0.1
    box_weight = (labels < 5).float()[:, None].expand(-1, 4).contiguous()
    return features, labels, label_weight, box_targets, box_weight


def make_model():
    torch.manual_seed(0)
    return torch.nn.Linear(8, 5 + 4)


def train(model, losses, rank=0, world=1):
    """A few steps; returns per-step parameter gradients, the EMA states and GHM-C's
    region statistics (all elements and positives, summed over the steps)."""
    cls_loss, reg_loss = losses
    grads = []
    for step in range(STEPS):
        rows = slice(rank * 64 // world, (rank + 1) * 64 // world)
        features, labels, lw, box_targets, box_weight = (t[rows] for t in make_data(step))
        out = model(features)
        loss = cls_loss(out[:, :5], labels, lw) + reg_loss(out[:, 5:], box_targets, box_weight)
        model.zero_grad()
        loss.backward()
        module = model.module if hasattr(model, 'module') else model
        grads.append([p.grad.clone() for p in module.parameters()])
        with torch.no_grad():
            for p in module.parameters():
                p -= 0.5 * p.grad
    return grads, cls_loss.acc_sum.clone(), reg_loss.acc_sum.clone(), \
        cls_loss.region_stats.clone()


def worker(rank, init_file, out_dir):
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=WORLD)
    try:
        os.environ['MMDET_GHM_COMPILE'] = '0'
        model = DistributedDataParallel(make_model())
        losses = (GHMCLoss(bins=10, momentum=0.75, global_density=True),
                  GHMRLoss(bins=10, momentum=0.7, global_density=True))
        torch.save(train(model, losses, rank, WORLD), os.path.join(out_dir, f'rank{rank}.pt'))
        # Let every collective finish and free DDP's reducer while the process
        # group is alive: destroying the group from the reducer's destructor
        # can deadlock on the GIL with gloo's worker thread.
        dist.barrier()
        del model
        gc.collect()
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope='module')
def distributed_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('global_density')
    context = mp.spawn(worker, args=(str(tmp / 'init'), str(tmp)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 300
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail('the 2 distributed workers did not finish within 300 s')
    return [torch.load(tmp / f'rank{r}.pt') for r in range(WORLD)]


def single_process(global_density):
    losses = (GHMCLoss(bins=10, momentum=0.75, global_density=global_density),
              GHMRLoss(bins=10, momentum=0.7, global_density=global_density))
    return train(make_model(), losses)


def test_ddp_gradients_equal_one_process_on_the_whole_batch(distributed_results, eager_kernels):
    expected_grads = single_process(False)[0]
    for rank_grads, *_ in distributed_results:
        for step in range(STEPS):
            for got, expected in zip(rank_grads[step], expected_grads[step]):
                assert torch.allclose(got, expected, rtol=1e-5, atol=1e-7), step


def test_every_rank_holds_the_single_process_ema(distributed_results, eager_kernels):
    _, cls_acc, reg_acc, _ = single_process(False)
    for _, rank_cls_acc, rank_reg_acc, _ in distributed_results:
        assert torch.allclose(rank_cls_acc, cls_acc, rtol=1e-6)
        assert torch.allclose(rank_reg_acc, reg_acc, rtol=1e-6)
    assert (cls_acc > 0).sum() >= 3


def test_every_rank_counts_the_whole_batch_and_its_positives(distributed_results,
                                                            eager_kernels):
    stats = single_process(False)[3]
    assert stats[2].sum() > 0  # positives counted
    for *_, rank_stats in distributed_results:
        torch.testing.assert_close(rank_stats, stats, rtol=1e-6, atol=1e-9)


def test_local_density_differs_from_global(eager_kernels):
    # Without the option, each half batch has its own density: the check above
    # would fail, so it is not vacuous.
    cls_full = single_process(False)[1]
    half = GHMCLoss(bins=10, momentum=0.75)
    features, labels, lw, _, _ = make_data(0)
    half(make_model()(features[:32])[:, :5], labels[:32], lw[:32])
    assert not torch.allclose(half.acc_sum, cls_full)


def test_global_density_is_a_no_op_without_a_process_group(eager_kernels):
    grads_on, cls_on, reg_on, _ = single_process(True)
    grads_off, cls_off, reg_off, _ = single_process(False)
    assert torch.equal(cls_on, cls_off) and torch.equal(reg_on, reg_off)
    assert all(torch.equal(a, b) for a, b in zip(grads_on[0], grads_off[0]))


def test_global_density_must_be_a_bool():
    with pytest.raises(TypeError, match="global_density.*'yes'"):
        GHMCLoss(global_density='yes')
