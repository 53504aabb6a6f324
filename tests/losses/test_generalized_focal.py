"""Continuous ("generalized") focal loss: hand values, Focal Loss parity, gradients, contract."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.losses import FocalLoss
from mmdet.registry import MODELS

from mmdet_ghm.losses import ContinuousFocalLoss, continuous_focal_loss

from ..conftest import skip_unless_compiled_assert_async_fires


def sig(v):
    return 1 / (1 + math.exp(-v))


def make_batch(n=60, c=5):
    logits = torch.randn(n, c) * 3
    labels = torch.randint(0, c + 1, (n,))  # c is background
    weight = (torch.rand(n) > 0.2).float()
    return logits, labels, weight


def test_hand_computed_soft_targets():
    x, y = 0.4, 0.7
    logits = torch.tensor([[x, -1.0]], requires_grad=True)
    target = torch.tensor([[y, 0.0]])
    loss = ContinuousFocalLoss(beta=2.0, reduction='sum')(logits, target)
    p, q = sig(x), sig(-1.0)
    ce = -(y * math.log(p) + (1 - y) * math.log(1 - p))
    ce_neg = -math.log(1 - q)
    expected = (y - p) ** 2 * ce + q ** 2 * ce_neg
    assert abs(loss.item() - expected) < 1e-6
    loss.backward()
    # d/dx [(p - y)^2 CE] = 2 (p - y) p (1 - p) CE + (p - y)^2 (p - y)
    grad = [2 * (p - y) * p * (1 - p) * ce + (p - y) ** 3,
            2 * q * q * (1 - q) * ce_neg + q ** 3]
    assert torch.allclose(logits.grad, torch.tensor([grad]), atol=1e-6)


@pytest.mark.parametrize('beta', [2.0, 1.5])
@pytest.mark.parametrize('binary', [False, True], ids=['labels', 'binary'])
def test_binary_targets_equal_mmdet_focal_loss_without_alpha(beta, binary):
    # FocalLoss always applies alpha: alpha = 0.5 halves both terms, x2 undoes it.
    logits, labels, weight = make_batch()
    target = F.one_hot(labels, 6)[:, :5].float() if binary else labels
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    ours = ContinuousFocalLoss(beta=beta)(a, target, weight, avg_factor=11.0)
    ref = FocalLoss(gamma=beta, alpha=0.5, loss_weight=2.0)(b, target, weight,
                                                             avg_factor=11.0)
    ours.backward()
    ref.backward()
    assert torch.allclose(ours, ref, rtol=1e-6)
    assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-8)


def test_beta_zero_is_cross_entropy():
    logits = torch.randn(20, 3) * 2
    target = torch.rand(20, 3)
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    ours = ContinuousFocalLoss(beta=0.0, reduction='sum')(a, target)
    ref = F.binary_cross_entropy_with_logits(b, target, reduction='sum')
    ours.backward()
    ref.backward()
    assert torch.allclose(ours, ref, rtol=1e-6)
    assert torch.allclose(a.grad, b.grad, rtol=1e-6)


def test_ratio_to_ce_is_the_modulating_factor():
    logits = torch.randn(30, 4) * 2
    target = torch.rand(30, 4)
    got = ContinuousFocalLoss(beta=3.0, reduction='none')(logits, target)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    assert torch.allclose(got / ce, (logits.sigmoid() - target).abs() ** 3, rtol=1e-4)


def test_gradient_is_finite_where_p_equals_y_for_small_beta():
    # saturated logits give p == y exactly; d ** 0.5 has an infinite slope there
    logits = torch.tensor([[100.0, -100.0, 0.0]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0, 0.5]])
    loss = ContinuousFocalLoss(beta=0.5, reduction='sum')(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # p = y: factor 0 and gradient 0, for saturated and soft elements alike
    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros(1, 3))


def test_gradcheck_float64():
    logits = (torch.randn(12, 4, dtype=torch.float64) * 2).requires_grad_()
    soft = torch.rand(12, 4, dtype=torch.float64)
    labels = torch.randint(0, 5, (12,))
    weight = torch.rand(12, 4, dtype=torch.float64)
    for beta in (2.0, 0.5):
        loss = ContinuousFocalLoss(beta=beta)
        assert torch.autograd.gradcheck(lambda x: loss(x, soft, weight), (logits,))
        assert torch.autograd.gradcheck(
            lambda x: loss(x, labels, reduction_override='none'), (logits,))


def test_reductions_weight_avg_factor_and_loss_weight():
    logits, labels, weight = make_batch(30, 4)
    loss = ContinuousFocalLoss(loss_weight=0.5)
    none = loss(logits, labels, weight, reduction_override='none')
    assert none.shape == (30, 4)
    assert (none[weight == 0] == 0).all()
    total = loss(logits, labels, weight, reduction_override='sum')
    assert torch.allclose(none.sum(), total)
    assert torch.allclose(loss(logits, labels, weight), total / 120, rtol=1e-6)
    assert torch.allclose(loss(logits, labels, weight, avg_factor=7), total / 7, rtol=1e-6)
    assert torch.allclose(total, 0.5 * continuous_focal_loss(logits, labels, weight, 2.0, 'sum'))


def test_compiles_with_fullgraph_and_checks_the_range_on_the_device():
    torch._dynamo.reset()
    loss = ContinuousFocalLoss()
    step = torch.compile(lambda x, t: loss(x, t), fullgraph=True)
    logits, target = torch.randn(16, 3), torch.rand(16, 3)
    assert torch.allclose(step(logits, target), loss(logits, target), rtol=1e-6)
    skip_unless_compiled_assert_async_fires()
    with pytest.raises(RuntimeError, match=r'target must lie in \[0, 1\]'):
        step(logits, target + 1)


def test_empty_input_is_zero_and_connected():
    logits = torch.zeros(0, 7, requires_grad=True)
    loss = ContinuousFocalLoss()(logits, torch.zeros(0, 7))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad.shape == (0, 7)


def test_half_precision_logits_give_float32_loss():
    logits, labels, weight = make_batch(200, 6)
    logits = logits.half().float()
    expected = ContinuousFocalLoss()(logits, labels, weight)
    half = logits.half().requires_grad_()
    got = ContinuousFocalLoss()(half, labels, weight)
    assert got.dtype == torch.float32
    assert torch.allclose(got, expected, rtol=1e-6)
    got.backward()
    assert half.grad.dtype == torch.float16


def test_builds_from_the_registry():
    loss = MODELS.build(dict(type='ContinuousFocalLoss', beta=1.0))
    assert isinstance(loss, ContinuousFocalLoss)
    assert (loss.beta, loss.loss_weight, loss.use_sigmoid) == (1.0, 1.0, True)


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(beta=-1), ValueError, 'beta.*-1'),
    (dict(beta=None), TypeError, 'beta.*None'),
    (dict(use_sigmoid=False), ValueError, 'use_sigmoid=False'),
    (dict(reduction='avg'), ValueError, "reduction.*'avg'"),
    (dict(loss_weight='1'), TypeError, "loss_weight.*'1'"),
])
def test_bad_config_raises_naming_the_value(kwargs, error, match):
    with pytest.raises(error, match=match):
        ContinuousFocalLoss(**kwargs)


def test_bad_inputs_raise_naming_the_value():
    loss = ContinuousFocalLoss()
    logits = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r'target.*\[0, 1\].*1\.25'):
        loss(logits, torch.tensor([[0.0, 1.25, 0.5]] * 4))
    with pytest.raises(ValueError, match=r'got label -1'):
        loss(logits, torch.tensor([0, -1, 2, 3]))
    with pytest.raises(ValueError, match=r'target.*\(4, 2\)'):
        loss(logits, torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r'weight.*\(4, 3\) or \(4,\).*\(4, 1\)'):
        loss(logits, torch.zeros(4, 3), torch.ones(4, 1))
