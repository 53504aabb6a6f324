"""GHM-C for softmax heads: gradient norm 1 - p_y, weights by hand, gradcheck."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmdet_ghm.losses import GHMCLoss
from mmdet_ghm.losses.ghm_c_softmax import softmax_gradient_norm


def test_gradient_norm_is_the_largest_gradient_component():
    logits = torch.randn(50, 6, requires_grad=True)
    labels = torch.randint(0, 6, (50,))
    F.cross_entropy(logits, labels, reduction='sum').backward()
    g = softmax_gradient_norm(logits.detach(), labels)
    assert torch.allclose(g, logits.grad.abs().max(dim=1).values, atol=1e-6)
    assert torch.allclose(g, logits.grad.abs().sum(dim=1) / 2, atol=1e-6)


def test_two_classes_give_the_sigmoid_norm():
    z = torch.randn(40, 2)
    labels = torch.randint(0, 2, (40,))
    p = torch.sigmoid(z[:, 0] - z[:, 1])  # probability of class 0
    t = (labels == 0).float()
    assert torch.allclose(softmax_gradient_norm(z, labels), (p - t).abs(), atol=1e-6)


def test_hand_computed_weights_and_gradient(eager_kernels):
    # 3 classes + background. Rows: confident right (g ~ 0), uniform (g = 3/4),
    # uniform (g = 3/4), confident wrong (g ~ 1), ignored row.
    logits = torch.tensor([[20.0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1],
                           [0, 0, 0, 20.0], [5, 0, 0, 0]], requires_grad=True)
    labels = torch.tensor([0, 3, 1, 2, 1])
    weight = torch.tensor([1.0, 1, 1, 1, 0])
    loss = GHMCLoss(bins=4, use_sigmoid=False)(logits, labels, weight)
    # regions of width 1/4: g ~ 0 -> 0; g = .75 -> 3; g ~ 1 -> 3.
    # N = 4 valid rows, n = 2 regions; beta = 4 / (1 * 2) = 2 and 4 / (3 * 2) = 2/3
    ce = F.cross_entropy(logits.detach(), labels, reduction='none')
    beta = torch.tensor([2.0, 2 / 3, 2 / 3, 2 / 3, 0.0])
    assert torch.allclose(loss, (beta * ce).sum() / 4, rtol=1e-6)
    loss.backward()
    p = logits.detach().softmax(dim=1)
    grad = beta[:, None] * (p - F.one_hot(labels, 4)) / 4
    assert torch.allclose(logits.grad, grad, atol=1e-7)
    assert math.isclose(ce[1].item(), math.log(4), rel_tol=1e-6)


def hand_weights(logits, labels, label_weight, bins=10):
    """beta = N / (R_j * n) per valid row (no momentum), 0 for ignored rows; and N."""
    region = (softmax_gradient_norm(logits, labels) * bins).floor().long().clamp(max=bins - 1)
    valid = label_weight > 0
    counts = torch.bincount(region[valid], minlength=bins).float()
    num_valid, non_empty = valid.sum().float(), (counts > 0).sum().float()
    beta = torch.where(valid, num_valid / (counts[region] * non_empty), torch.zeros(()))
    return beta, num_valid, counts


def test_reductions_by_hand(eager_kernels):
    logits, labels = torch.randn(40, 5) * 2, torch.randint(0, 5, (40,))
    label_weight = (torch.rand(40) > 0.25).float()
    assert 0 < label_weight.sum() < 40
    beta, num_valid, counts = hand_weights(logits, labels, label_weight)
    assert (counts > 0).sum() >= 3  # several regions: weights differ between rows
    ce = F.cross_entropy(logits, labels, reduction='none')
    loss = GHMCLoss(bins=10, use_sigmoid=False, loss_weight=2.0)
    none = loss(logits, labels, label_weight, reduction_override='none')
    torch.testing.assert_close(none, 2.0 * beta * ce, rtol=1e-5, atol=0)  # per-row weighted CE
    assert (none[label_weight == 0] == 0).all()
    total = loss(logits, labels, label_weight, reduction_override='sum')
    torch.testing.assert_close(total, 2.0 * (beta * ce).sum(), rtol=1e-5, atol=0)
    mean = loss(logits, labels, label_weight)
    torch.testing.assert_close(mean, 2.0 * (beta * ce).sum() / num_valid, rtol=1e-5, atol=0)
    torch.testing.assert_close(total, mean * num_valid, rtol=1e-5, atol=0)


def test_ema_and_reductions(eager_kernels):
    loss = GHMCLoss(bins=10, momentum=0.75, use_sigmoid=False)
    logits, labels = torch.randn(30, 5), torch.randint(0, 5, (30,))
    ones = torch.ones(30)
    beta, _, counts = hand_weights(logits, labels, ones)
    ce = F.cross_entropy(logits, labels, reduction='none')
    none = loss(logits, labels, None, reduction_override='none')
    assert torch.allclose(loss.acc_sum, 0.25 * counts)
    # density S = 0.25 R: every weight is 4 times the momentum-free one
    torch.testing.assert_close(none, 4 * beta * ce, rtol=1e-5, atol=0)
    total = loss(logits, labels, None, reduction_override='sum')  # second EMA step
    assert torch.allclose(loss.acc_sum, 0.25 * counts * 0.75 + 0.25 * counts, rtol=1e-6)
    # S = 0.4375 R
    torch.testing.assert_close(total, (beta * ce).sum() / 0.4375, rtol=1e-5, atol=0)


def test_gradcheck_float64(eager_kernels):
    logits = torch.randn(20, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 4, (20,))
    loss = GHMCLoss(bins=10, use_sigmoid=False)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels, None), (logits,))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_gradient_is_the_weighted_cross_entropy_gradient(kernel_mode, dtype):
    """The loss's own backward (from the saved logits and row logsumexp) against
    autograd through F.cross_entropy with the same row weights, eager and compiled."""
    generator = torch.Generator().manual_seed(0)
    logits = (torch.randn(300, 7, generator=generator) * 3).to(dtype).requires_grad_()
    labels = torch.randint(0, 7, (300,), generator=generator)
    label_weight = (torch.rand(300, generator=generator) > 0.2).float()
    loss = GHMCLoss(bins=10, use_sigmoid=False)
    grad, = torch.autograd.grad(loss(logits, labels, label_weight) * 3.0, logits)
    assert grad.dtype == dtype
    ce = F.cross_entropy(logits.float(), labels, reduction='none')
    weighted = loss(logits, labels, label_weight, reduction_override='none').detach()
    row_weight = weighted / ce.detach()  # the harmonizing weight of each row
    expected, = torch.autograd.grad((row_weight * ce).sum() * 3.0 / label_weight.sum(), logits)
    tol = dict(rtol=1e-5, atol=1e-8) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-5)
    assert torch.allclose(grad.float(), expected.float(), **tol)


def test_softmax_inputs_are_checked(eager_kernels):
    loss = GHMCLoss(use_sigmoid=False)
    logits = torch.randn(4, 3)  # 2 classes + background
    with pytest.raises(ValueError, match='got label 3'):
        loss(logits, torch.tensor([0, 1, 2, 3]), None)
    with pytest.raises(ValueError, match=r'labels of shape \(4,\).*\(4, 3\)'):
        loss(logits, torch.zeros(4, 3), None)
    with pytest.raises(ValueError, match=r'label_weight.*\(4,\).*\(4, 3\)'):
        loss(logits, torch.zeros(4, dtype=torch.long), torch.ones(4, 3))
