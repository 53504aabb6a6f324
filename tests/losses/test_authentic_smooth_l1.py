"""Authentic Smooth L1: hand values, gradients, agreement with GHM-R at one region, contract."""
import math

import pytest
import torch
from mmdet.registry import MODELS

from mmdet_ghm.losses import AuthenticSmoothL1Loss, GHMRLoss, authentic_smooth_l1_loss
from mmdet_ghm.losses.ghm_r import asl1_gradient


def test_hand_computed_example():
    mu = 0.02
    pred = torch.tensor([[0.0, 0.02], [1.0, -0.5]], requires_grad=True)
    target = torch.tensor([[0.0, 0.0], [0.0, 0.5]])
    weight = torch.tensor([[1.0, 1.0], [2.0, 0.0]])
    loss = AuthenticSmoothL1Loss(mu=mu)(pred, target, weight, avg_factor=4.0)
    # d = [[0, .02], [1, -1]]; ASL1(d) = sqrt(d^2 + mu^2) - mu
    asl1 = [0.0, math.sqrt(2) * mu - mu, math.sqrt(1 + mu * mu) - mu]
    expected = (asl1[0] + asl1[1] + 2 * asl1[2]) / 4
    assert abs(loss.item() - expected) < 1e-7
    loss.backward()
    # gradient d / sqrt(d^2 + mu^2), weighted, over avg_factor
    grad = torch.tensor([[0.0, 1 / math.sqrt(2)], [2 / math.sqrt(1 + mu * mu), 0.0]]) / 4
    assert torch.allclose(pred.grad, grad, atol=1e-7)


def test_asymptotes_quadratic_near_zero_linear_far():
    # float64: in float32, sqrt(d^2 + mu^2) - mu cancels for |d| << mu (about
    # 1e-3 relative error at d = mu / 200, 4e-10 absolute)
    mu = 0.02
    d = torch.tensor([1e-4, 50.0], dtype=torch.float64)
    loss = AuthenticSmoothL1Loss(mu=mu, reduction='none')(d, torch.zeros(2))
    assert abs(loss[0].item() - 1e-8 / (2 * mu)) / (1e-8 / (2 * mu)) < 1e-4
    assert abs(loss[1].item() - (50.0 - mu)) < 1e-4
    single = AuthenticSmoothL1Loss(mu=mu, reduction='none')(d.float(), torch.zeros(2))
    assert torch.allclose(single.double(), loss, rtol=2e-3, atol=1e-9)


def test_gradient_matches_asl1_gradient():
    pred = (torch.randn(30, 4) * 0.1).requires_grad_()
    target = torch.randn(30, 4) * 0.1
    AuthenticSmoothL1Loss(reduction='sum')(pred, target).backward()
    assert torch.allclose(pred.grad, asl1_gradient(pred.detach() - target, 0.02), atol=1e-6)
    assert pred.grad.abs().max() < 1


def test_gradcheck_float64_pred_and_target():
    pred = (torch.randn(10, 4, dtype=torch.float64) * 0.05).requires_grad_()
    target = (torch.randn(10, 4, dtype=torch.float64) * 0.05).requires_grad_()
    weight = torch.rand(10, dtype=torch.float64)
    loss = AuthenticSmoothL1Loss(mu=0.03)
    assert torch.autograd.gradcheck(lambda p, t: loss(p, t, weight, avg_factor=2.5),
                                    (pred, target))


def test_equals_ghm_r_with_a_single_region():
    # One region holds every valid element: GHM-R's weights are all 1 and it
    # divides by sum(weights), i.e. ASL1's mean with that avg_factor.
    pred, target = torch.randn(50, 4) * 0.3, torch.randn(50, 4) * 0.3
    weight = (torch.rand(50, 1) > 0.4).float().expand(50, 4).contiguous()
    ghm = GHMRLoss(mu=0.02, bins=1)(pred, target, weight)
    ours = AuthenticSmoothL1Loss(mu=0.02)(pred, target, weight, avg_factor=weight.sum())
    assert torch.allclose(ours, ghm, rtol=1e-6)


def test_reductions_row_weights_and_loss_weight():
    pred, target = torch.randn(20, 4), torch.randn(20, 4)
    rows = (torch.rand(20) > 0.3).float()
    loss = AuthenticSmoothL1Loss(loss_weight=10.0)
    none = loss(pred, target, rows, reduction_override='none')
    assert none.shape == (20, 4) and (none[rows == 0] == 0).all()
    total = loss(pred, target, rows, reduction_override='sum')
    assert torch.allclose(none.sum(), total)
    assert torch.allclose(loss(pred, target, rows), total / 80, rtol=1e-6)
    assert torch.allclose(total, 10 * authentic_smooth_l1_loss(pred, target, rows,
                                                               reduction='sum'))
    full = rows[:, None].expand(20, 4)
    assert torch.allclose(loss(pred, target, full, avg_factor=3), total / 3, rtol=1e-6)


def test_empty_input_is_zero_and_connected():
    pred = torch.zeros(0, 4, requires_grad=True)
    loss = AuthenticSmoothL1Loss()(pred, torch.zeros(0, 4), torch.zeros(0, 4))
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad.shape == (0, 4)


def test_half_precision_gives_float32_loss():
    pred, target = (torch.randn(64, 4) * 0.2).half(), (torch.randn(64, 4) * 0.2).half()
    expected = AuthenticSmoothL1Loss()(pred.float(), target.float())
    half = pred.clone().requires_grad_()
    got = AuthenticSmoothL1Loss()(half, target)
    assert got.dtype == torch.float32 and torch.allclose(got, expected, rtol=1e-6)
    got.backward()
    assert half.grad.dtype == torch.float16


def test_builds_from_the_registry():
    loss = MODELS.build(dict(type='AuthenticSmoothL1Loss', mu=0.05, loss_weight=2.0))
    assert isinstance(loss, AuthenticSmoothL1Loss)
    assert (loss.mu, loss.loss_weight, loss.reduction) == (0.05, 2.0, 'mean')


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(mu=0), ValueError, 'mu.*0'),
    (dict(mu=-0.02), ValueError, r'mu.*-0\.02'),
    (dict(mu='0.02'), TypeError, "mu.*'0.02'"),
    (dict(reduction='avg'), ValueError, "reduction.*'avg'"),
    (dict(loss_weight=None), TypeError, 'loss_weight.*None'),
])
def test_bad_config_raises_naming_the_value(kwargs, error, match):
    with pytest.raises(error, match=match):
        AuthenticSmoothL1Loss(**kwargs)


def test_bad_inputs_raise_naming_the_value():
    loss = AuthenticSmoothL1Loss()
    pred = torch.randn(5, 4)
    with pytest.raises(ValueError, match=r"target.*\(5, 4\).*\(5, 3\)"):
        loss(pred, torch.zeros(5, 3))
    with pytest.raises(TypeError, match='target.*int64'):
        loss(pred, torch.zeros(5, 4, dtype=torch.long))
    with pytest.raises(TypeError, match='pred.*int64'):
        loss(torch.zeros(5, 4, dtype=torch.long), torch.zeros(5, 4))
    with pytest.raises(ValueError, match=r'weight.*\(5, 4\) or \(5,\).*\(4,\)'):
        loss(pred, torch.zeros(5, 4), torch.ones(4))
    with pytest.raises(ValueError, match="reduction_override.*'avg'"):
        loss(pred, torch.zeros(5, 4), reduction_override='avg')
