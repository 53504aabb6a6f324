"""OHEM: hand-computed selections, ties, top-k, gradients, no host sync, compile, contract."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

import mmdet_ghm.losses.checks as checks_module
from mmdet_ghm.losses import OHEMLoss, ohem_loss
from mmdet_ghm.losses.ohem import ohem_keep_mask, rank_descending

from ..host_reads import HOST_READS, OpRecorder


def softplus(x):
    return math.log1p(math.exp(x))


def hand_batch():
    """C = 2; label 2 is background; row 3 is ignored (weight 0)."""
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0], [-2.0, 1.0], [4.0, 0.0]])
    labels = torch.tensor([0, 2, 2, 2])
    weight = torch.tensor([1.0, 1.0, 1.0, 0.0])
    return logits, labels, weight


def test_hand_computed_ratio_mode():
    logits, labels, weight = hand_batch()
    logits.requires_grad_()
    loss = OHEMLoss(neg_pos_ratio=2, min_neg=0)(logits, labels, weight)
    # one positive (row 0, class 0): CE = softplus(-2). Valid negatives' CE:
    # softplus(-1), softplus(.5), softplus(3), softplus(-2), softplus(1);
    # the two hardest are softplus(3) and softplus(1). Row 3 (softplus(4)) is
    # the hardest of all but ignored.
    expected = (softplus(-2.0) + softplus(3.0) + softplus(1.0)) / 3
    assert abs(loss.item() - expected) < 1e-6
    loss.backward()
    grad = torch.zeros(4, 2)
    grad[0, 0] = torch.sigmoid(torch.tensor(2.0)) - 1
    grad[1, 1] = torch.sigmoid(torch.tensor(3.0))
    grad[2, 1] = torch.sigmoid(torch.tensor(1.0))
    assert torch.allclose(logits.grad, grad / 3, atol=1e-7)


def test_ratio_is_floored_and_min_neg_is_a_floor():
    logits, labels, weight = hand_batch()
    # floor(1.5 * 1) = 1 negative
    got = OHEMLoss(neg_pos_ratio=1.5, min_neg=0, reduction='sum')(logits, labels, weight)
    assert abs(got.item() - (softplus(-2.0) + softplus(3.0))) < 1e-6
    # min_neg = 3 > 1.5: three negatives
    got = OHEMLoss(neg_pos_ratio=1.5, min_neg=3, reduction='sum')(logits, labels, weight)
    expected = softplus(-2.0) + softplus(3.0) + softplus(1.0) + softplus(0.5)
    assert abs(got.item() - expected) < 1e-6


def test_without_positives_min_neg_hardest_negatives_are_kept():
    logits, _, _ = hand_batch()
    background = torch.full((4,), 2)
    loss = OHEMLoss(min_neg=3)(logits, background)
    # row 0 is background here: its 2.0 logit is now the third hardest negative
    expected = (softplus(4.0) + softplus(3.0) + softplus(2.0)) / 3
    assert abs(loss.item() - expected) < 1e-6
    # min_neg = 0 and no positives: nothing kept, zero loss (not NaN)
    loss = OHEMLoss(min_neg=0)(logits.requires_grad_(), background)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(4, 2))


def test_ties_keep_exactly_k_negatives():
    # eight equal losses: a threshold on the k-th loss would keep all eight
    logits = torch.zeros(4, 2, requires_grad=True)
    loss = OHEMLoss(min_neg=3, reduction='sum')(logits, torch.full((4,), 2))
    assert abs(loss.item() - 3 * math.log(2)) < 1e-6
    loss.backward()
    assert (logits.grad != 0).sum().item() == 3


def test_more_negatives_requested_than_exist_keeps_all_valid():
    logits, labels, weight = hand_batch()
    got = OHEMLoss(neg_pos_ratio=100)(logits, labels, weight)
    target = F.one_hot(labels, 3)[:, :2].float()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    assert torch.allclose(got, ce[:3].mean())


def test_topk_mode_ignores_the_sign():
    logits, labels, weight = hand_batch()
    logits[0, 0] = -2.5  # the positive becomes the second hardest valid element
    loss = OHEMLoss(topk=2)(logits, labels, weight)
    assert abs(loss.item() - (softplus(3.0) + softplus(2.5)) / 2) < 1e-6
    # K larger than the number of valid elements: all six valid ones
    target = F.one_hot(labels, 3)[:, :2].float()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    assert torch.allclose(OHEMLoss(topk=50)(logits, labels, weight), ce[:3].mean())


def test_weighted_losses_are_ranked():
    logits = torch.tensor([[3.0, 1.0]])
    target = torch.zeros(1, 2)
    # CE: softplus(3) > softplus(1), but weighted 0.1 * 3.05 < 1.0 * 1.31
    weight = torch.tensor([[0.1, 1.0]])
    got = OHEMLoss(min_neg=1, reduction='none')(logits, target, weight)
    assert got[0, 0] == 0 and abs(got[0, 1].item() - softplus(1.0)) < 1e-6


def test_soft_targets_above_zero_are_positives():
    logits = torch.tensor([[0.0, 5.0, -1.0]])
    target = torch.tensor([[0.4, 0.0, 0.0]])
    got = OHEMLoss(neg_pos_ratio=1, min_neg=0, reduction='none')(logits, target)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    assert torch.allclose(got, torch.tensor([[ce[0, 0].item(), ce[0, 1].item(), 0.0]]))


def test_rank_descending():
    key = torch.tensor([0.5, 2.0, 0.5, -1.0, 3.0])
    assert rank_descending(key).tolist() == [2, 1, 3, 4, 0]


def test_keep_mask_counts():
    loss = torch.rand(50, 4)
    positive = torch.zeros(50, 4, dtype=torch.bool)
    positive[:5, 0] = True
    keep = ohem_keep_mask(loss, positive, torch.ones((), dtype=torch.bool), 3.0, 0)
    assert keep.sum().item() == 20 and keep[positive].all()
    negatives = loss[~positive]
    assert loss[keep & ~positive].min() >= negatives.sort(descending=True).values[14]


def test_gradcheck_float64():
    logits, labels, weight = hand_batch()
    logits = logits.double().requires_grad_()
    loss = OHEMLoss(neg_pos_ratio=2, min_neg=0)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels, weight), (logits,))
    topk = OHEMLoss(topk=3)
    assert torch.autograd.gradcheck(
        lambda x: topk(x, labels, weight, reduction_override='none'), (logits,))


def test_reductions_loss_weight_and_avg_factor_is_ignored():
    logits = torch.randn(40, 3) * 2
    labels = torch.randint(0, 4, (40,))
    loss = OHEMLoss(min_neg=5, loss_weight=2.0)
    none = loss(logits, labels, reduction_override='none')
    total = loss(logits, labels, reduction_override='sum')
    mean = loss(logits, labels)
    kept = (none != 0).sum()
    num_pos = (labels < 3).sum()
    assert kept == num_pos + max(3 * num_pos, 5)
    assert torch.allclose(none.sum(), total)
    assert torch.allclose(mean, total / kept, rtol=1e-6)
    assert torch.equal(loss(logits, labels, avg_factor=123.0), mean)
    assert torch.allclose(mean, 2 * ohem_loss(logits, labels, None, 3.0, 5))


def test_recorder_catches_host_reads():
    x = torch.randn(10)
    with OpRecorder() as recorder:
        x[x > 0].sum().item()
    assert {'boolean-mask indexing', 'aten._local_scalar_dense'} <= set(recorder.ops)


@pytest.mark.parametrize('topk', [None, 10])
def test_never_reads_the_host(monkeypatch, topk):
    # On CPU the label range check reads memory by design; on accelerators it
    # is an asynchronous assertion. Everything else must stay on the device.
    monkeypatch.setattr(checks_module, 'check_label_range', lambda labels, n: None)
    logits = torch.randn(200, 6, requires_grad=True)
    labels = torch.randint(0, 7, (200,))
    weight = (torch.rand(200) > 0.1).float()
    with OpRecorder() as recorder:
        OHEMLoss(topk=topk)(logits, labels, weight).backward()
    assert not HOST_READS.intersection(recorder.ops), HOST_READS.intersection(recorder.ops)
    # the ratio mode ranks by one stable sort (torch 2.1 dispatches argsort(stable=True)
    # as aten.argsort, newer torch as aten.sort); the top-k mode sorts nothing
    sorts = {'aten.sort', 'aten.argsort'}.intersection(recorder.ops)
    assert bool(sorts) == (topk is None), sorts


@pytest.mark.parametrize('topk', [None, 7])
def test_compiles_with_fullgraph_and_matches_eager(topk):
    torch._dynamo.reset()
    loss = OHEMLoss(min_neg=4, topk=topk)
    step = torch.compile(lambda x, t, w: loss(x, t, w), fullgraph=True, dynamic=True)
    for n in (120, 90):  # two sizes: one compiled graph for both
        logits = torch.randn(n, 5) * 2
        labels = torch.randint(0, 6, (n,))
        weight = (torch.rand(n) > 0.1).float()
        a = logits.clone().requires_grad_()
        b = logits.clone().requires_grad_()
        expected = loss(a, labels, weight)
        got = step(b, labels, weight)
        expected.backward()
        got.backward()
        assert torch.allclose(got, expected, rtol=1e-6)
        assert torch.allclose(b.grad, a.grad, rtol=1e-5, atol=1e-9)


def test_empty_input_is_zero_and_connected():
    logits = torch.zeros(0, 7, requires_grad=True)
    loss = OHEMLoss()(logits, torch.zeros(0, dtype=torch.long), torch.zeros(0))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad.shape == (0, 7)


def test_half_precision_logits_give_float32_loss():
    logits = (torch.randn(100, 4) * 2).half()
    labels = torch.randint(0, 5, (100,))
    expected = OHEMLoss()(logits.float(), labels)
    half = logits.clone().requires_grad_()
    got = OHEMLoss()(half, labels)
    assert got.dtype == torch.float32 and torch.allclose(got, expected, rtol=1e-6)
    got.backward()
    assert half.grad.dtype == torch.float16


def test_builds_from_the_registry():
    loss = MODELS.build(dict(type='OHEMLoss', neg_pos_ratio=2, min_neg=10))
    assert isinstance(loss, OHEMLoss)
    assert (loss.neg_pos_ratio, loss.min_neg, loss.topk) == (2.0, 10, None)
    assert MODELS.build(dict(type='OHEMLoss', topk=64)).topk == 64


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(neg_pos_ratio=0), ValueError, 'neg_pos_ratio.*0'),
    (dict(neg_pos_ratio='3'), TypeError, "neg_pos_ratio.*'3'"),
    (dict(min_neg=-1), ValueError, 'min_neg.*-1'),
    (dict(min_neg=2.5), TypeError, r'min_neg.*2\.5'),
    (dict(topk=0), ValueError, 'topk.*0'),
    (dict(topk=True), TypeError, 'topk.*True'),
    (dict(use_sigmoid=False), ValueError, 'use_sigmoid=False'),
    (dict(reduction='avg'), ValueError, "reduction.*'avg'"),
])
def test_bad_config_raises_naming_the_value(kwargs, error, match):
    with pytest.raises(error, match=match):
        OHEMLoss(**kwargs)


def test_bad_inputs_raise_naming_the_value():
    loss = OHEMLoss()
    logits = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r'labels.*\[0, 3\].*got label 7'):
        loss(logits, torch.tensor([0, 1, 7, 3]))
    with pytest.raises(ValueError, match=r'target.*\[0, 1\].*2\.0'):
        loss(logits, torch.full((4, 3), 2.0))
    with pytest.raises(ValueError, match=r'weight.*\(4, 3\) or \(4,\).*\(2,\)'):
        loss(logits, torch.zeros(4, dtype=torch.long), torch.ones(2))
    with pytest.raises(ValueError, match="reduction_override.*'max'"):
        loss(logits, torch.zeros(4, dtype=torch.long), reduction_override='max')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_no_host_sync_on_cuda():
    loss = OHEMLoss()
    topk = OHEMLoss(topk=1000)
    logits = torch.randn(5000, 80, device='cuda', requires_grad=True)
    labels = torch.randint(0, 81, (5000,), device='cuda')
    weight = (torch.rand(5000, device='cuda') > 0.1).float()
    expected = ohem_loss(logits.detach().cpu(), labels.cpu(), weight.cpu())
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        total = loss(logits, labels, weight) + topk(logits, labels, weight)
        total.backward()
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert torch.allclose(loss(logits, labels, weight).cpu(), expected, rtol=1e-5)
