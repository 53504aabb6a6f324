"""α-balanced sigmoid CE: hand values, parity with MMDetection's CE, gradients and the contract."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.losses import CrossEntropyLoss
from mmdet.registry import MODELS

from mmdet_ghm.losses import AlphaBalancedCELoss, alpha_balanced_ce_loss


def softplus(x):
    return math.log1p(math.exp(x))


def make_batch(n=60, c=5):
    logits = torch.randn(n, c) * 3
    labels = torch.randint(0, c + 1, (n,))  # c is background
    weight = (torch.rand(n) > 0.2).float()
    return logits, labels, weight


def test_hand_computed_example():
    # C = 2. Row 0: label 1 -> t = [0, 1]. Row 1: background -> t = [0, 0].
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]], requires_grad=True)
    labels = torch.tensor([1, 2])
    loss = AlphaBalancedCELoss(alpha=0.75, reduction='sum')(logits, labels)
    # CE(x, t=1) = softplus(-x), CE(x, t=0) = softplus(x); alpha on t = 1 only.
    expected = (0.25 * softplus(0.0) + 0.75 * softplus(-2.0) + 0.25 * softplus(-1.0)
                + 0.25 * softplus(0.5))
    assert abs(loss.item() - expected) < 1e-6
    loss.backward()
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    grad = torch.tensor([[0.25 * sig(0.0), 0.75 * (sig(2.0) - 1)],
                         [0.25 * sig(-1.0), 0.25 * sig(0.5)]])
    assert torch.allclose(logits.grad, grad, atol=1e-7)


def test_soft_targets_interpolate_alpha():
    logits = torch.tensor([[0.3, -2.0]])
    target = torch.tensor([[0.3, 1.0]])
    got = AlphaBalancedCELoss(alpha=0.8, reduction='none')(logits, target)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    factor = torch.tensor([[0.8 * 0.3 + 0.2 * 0.7, 0.8]])
    assert torch.allclose(got, factor * ce)


@pytest.mark.parametrize('binary', [False, True], ids=['labels', 'binary'])
def test_alpha_half_is_half_of_mmdet_cross_entropy(binary):
    logits, labels, weight = make_batch()
    target = F.one_hot(labels, 6)[:, :5].float() if binary else labels
    if binary:  # MMDetection's CE needs (N, C) weights with (N, C) targets
        weight = weight[:, None].expand(-1, 5).contiguous()
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    ours = AlphaBalancedCELoss(alpha=0.5, loss_weight=2.0)(a, target, weight, avg_factor=9.0)
    ref = CrossEntropyLoss(use_sigmoid=True)(b, target, weight, avg_factor=9.0)
    ours.backward()
    ref.backward()
    assert torch.allclose(ours, ref, rtol=1e-6)
    assert torch.allclose(a.grad, b.grad, rtol=1e-6, atol=1e-8)


def test_positives_and_negatives_scale_by_alpha():
    logits, labels, _ = make_batch(40, 3)
    target = F.one_hot(labels, 4)[:, :3].float()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    got = AlphaBalancedCELoss(alpha=0.9, reduction='none')(logits, labels)
    assert torch.allclose(got[target == 1], 0.9 * ce[target == 1])
    assert torch.allclose(got[target == 0], 0.1 * ce[target == 0], rtol=1e-5)


def test_gradcheck_float64():
    logits = (torch.randn(12, 4, dtype=torch.float64) * 2).requires_grad_()
    labels = torch.randint(0, 5, (12,))
    soft = torch.rand(12, 4, dtype=torch.float64)
    weight = torch.rand(12, dtype=torch.float64)
    loss = AlphaBalancedCELoss(alpha=0.3)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels, weight, avg_factor=3.0),
                                    (logits,))
    assert torch.autograd.gradcheck(lambda x: loss(x, soft, reduction_override='none'),
                                    (logits,))


def test_reductions_weight_avg_factor_and_loss_weight():
    logits, labels, weight = make_batch(30, 4)
    loss = AlphaBalancedCELoss(loss_weight=3.0)
    none = loss(logits, labels, weight, reduction_override='none')
    assert none.shape == (30, 4)
    assert (none[weight == 0] == 0).all()
    total = loss(logits, labels, weight, reduction_override='sum')
    assert torch.allclose(none.sum(), total)
    assert torch.allclose(loss(logits, labels, weight), total / 120, rtol=1e-6)
    assert torch.allclose(loss(logits, labels, weight, avg_factor=7), total / 7, rtol=1e-6)
    unscaled = alpha_balanced_ce_loss(logits, labels, weight, 0.75, 'sum')
    assert torch.allclose(total, 3 * unscaled)
    # (N, C) weights act element-wise
    full = weight[:, None].expand(30, 4).contiguous()
    assert torch.allclose(loss(logits, labels, full, reduction_override='sum'), total)


def test_empty_input_is_zero_and_connected():
    logits = torch.zeros(0, 7, requires_grad=True)
    loss = AlphaBalancedCELoss()(logits, torch.zeros(0, dtype=torch.long), torch.zeros(0))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad.shape == (0, 7)


def test_half_precision_logits_give_float32_loss():
    logits, labels, weight = make_batch(200, 6)
    logits = logits.half().float()
    expected = AlphaBalancedCELoss()(logits, labels, weight)
    half = logits.half().requires_grad_()
    got = AlphaBalancedCELoss()(half, labels, weight)
    assert got.dtype == torch.float32
    assert torch.allclose(got, expected, rtol=1e-6)
    got.backward()
    assert half.grad.dtype == torch.float16


def test_builds_from_the_registry():
    loss = MODELS.build(dict(type='AlphaBalancedCELoss', alpha=0.6, loss_weight=2.0))
    assert isinstance(loss, AlphaBalancedCELoss)
    assert (loss.alpha, loss.loss_weight, loss.use_sigmoid) == (0.6, 2.0, True)


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(alpha=1.5), ValueError, r'alpha.*1\.5'),
    (dict(alpha=-0.1), ValueError, r'alpha.*-0\.1'),
    (dict(alpha='0.25'), TypeError, "alpha.*'0.25'"),
    (dict(use_sigmoid=False), ValueError, 'use_sigmoid=False'),
    (dict(reduction='avg'), ValueError, "reduction.*'avg'"),
    (dict(loss_weight=None), TypeError, 'loss_weight.*None'),
])
def test_bad_config_raises_naming_the_value(kwargs, error, match):
    with pytest.raises(error, match=match):
        AlphaBalancedCELoss(**kwargs)


def test_bad_inputs_raise_naming_the_value():
    loss = AlphaBalancedCELoss()
    logits = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r'labels.*\[0, 3\].*got label 4'):
        loss(logits, torch.tensor([0, 1, 4, 3]))
    with pytest.raises(ValueError, match=r'target.*\[0, 1\].*1\.5'):
        loss(logits, torch.full((4, 3), 1.5))
    with pytest.raises(ValueError, match=r'target.*\[0, 1\].*-0\.5'):
        loss(logits, torch.full((4, 3), -0.5))
    with pytest.raises(ValueError, match=r'target.*\[0, 1\].*nan'):
        loss(logits, torch.full((4, 3), float('nan')))
    with pytest.raises(TypeError, match='integer.*float32'):
        loss(logits, torch.zeros(4))
    with pytest.raises(ValueError, match=r'labels must have shape \(4,\).*\(5,\)'):
        loss(logits, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r'target.*\(4, 2\)'):
        loss(logits, torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r'weight.*\(4, 3\) or \(4,\).*\(3,\)'):
        loss(logits, torch.zeros(4, dtype=torch.long), torch.ones(3))
    with pytest.raises(ValueError, match=r'pred.*\(N, C\).*\(4,\)'):
        loss(torch.randn(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match='pred.*int64'):
        loss(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="reduction_override.*'avg'"):
        loss(logits, torch.zeros(4, dtype=torch.long), reduction_override='avg')
