"""Non-finite inputs (NaN, +inf, -inf) give a non-finite loss, never an error.

For the GHM losses, moreover: a non-finite element counts in no region, so the
EMA state after a bad batch equals that of a run in which the bad elements were
masked out (``label_weight = 0``), and the next finite batch gives exactly the
values of that run; the bad elements' gradients are NaN (an AMP grad scaler
then skips the step). Binary targets outside [0, 1] raise a ValueError naming
the value.
"""
import math

import pytest
import torch

import mmdet_ghm.losses.checks as checks_module
from mmdet_ghm.losses import (AlphaBalancedCELoss, AuthenticSmoothL1Loss, ContinuousFocalLoss,
                              GHMCLoss, GHMRLoss, OHEMLoss)
from mmdet_ghm.losses.ghm_c import ghmc_region_index
from mmdet_ghm.losses.ghm_r import ghmr_region_index

BAD = [math.nan, math.inf, -math.inf]
BAD_IDS = ['nan', '+inf', '-inf']
REDUCTIONS = ['mean', 'sum', 'none']
N, C = 40, 5
# (row, column) of the bad elements: a positive of class 1, and negatives.
BAD_AT = [(3, 1), (10, 0), (11, 4)]


def ghm_case(kind, bad):
    """Module, bad inputs, masked inputs (bad elements finite, weight 0), mask, next inputs.

    ``mask`` is True at the bad elements of ``pred`` (softmax: rows).
    """
    labels = torch.randint(0, C + 1, (N,))
    labels[3] = 1
    rows = torch.tensor([r for r, _ in BAD_AT])
    cols = torch.tensor([c for _, c in BAD_AT])
    if kind == 'ghmr':
        module = GHMRLoss(momentum=0.7, bins=10)
        pred, target = torch.randn(N, 4) * 0.1, torch.randn(N, 4) * 0.1
        mask = torch.zeros(N, 4, dtype=torch.bool)
        mask[rows, cols % 4] = True
        weight = (torch.rand(N, 4) > 0.2).float()
        weight[mask] = 1
        bad_pred = torch.where(mask, torch.tensor(bad), pred)
        nxt = (torch.randn(N, 4) * 0.1, torch.randn(N, 4) * 0.1, torch.ones(N, 4))
        return module, (bad_pred, target, weight), (pred, target, weight * ~mask), mask, nxt
    if kind == 'ghmc-softmax':
        module = GHMCLoss(bins=10, momentum=0.75, use_sigmoid=False)
        pred = torch.randn(N, C + 1) * 3
        mask = torch.zeros(N, dtype=torch.bool)
        mask[rows] = True
        weight = torch.ones(N)
        bad_pred = pred.clone()
        bad_pred[rows, cols] = bad
        nxt = (torch.randn(N, C + 1) * 3, torch.randint(0, C + 1, (N,)), torch.ones(N))
        return module, (bad_pred, labels, weight), (pred, labels, weight * ~mask), mask, nxt
    module = GHMCLoss(bins=10, momentum=0.75)
    pred = torch.randn(N, C) * 3
    mask = torch.zeros(N, C, dtype=torch.bool)
    mask[rows, cols] = True
    weight = torch.ones(N, C)
    bad_pred = torch.where(mask, torch.tensor(bad), pred)
    target = labels
    if kind == 'ghmc-binary':
        target = torch.nn.functional.one_hot(labels, C + 1)[:, :C].float()
    if kind == 'ghmc-quality':  # GFL's (labels, IoU scores)
        target = (labels, torch.rand(N))
    nxt = (torch.randn(N, C) * 3, target, torch.ones(N, C))
    return module, (bad_pred, target, weight), (pred, target, weight * ~mask), mask, nxt


def forward_backward(module, pred, target, weight, reduction):
    pred = pred.clone().requires_grad_()
    loss = module(pred, target, weight, reduction_override=reduction)
    loss.sum().backward()
    return loss.detach(), pred.grad


KINDS = ['ghmc-labels', 'ghmc-binary', 'ghmc-quality', 'ghmc-softmax', 'ghmr']


@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('bad', BAD, ids=BAD_IDS)
@pytest.mark.parametrize('kind', KINDS)
def test_ghm_non_finite_is_nan_and_leaves_the_ema_as_if_masked(kernel_mode, kind, bad, reduction):
    kernel = ghmr_region_index if kind == 'ghmr' else ghmc_region_index
    compiled_before = kernel.calls['compiled']
    torch.manual_seed(1)
    module, bad_inputs, masked_inputs, mask, nxt = ghm_case(kind, bad)
    masked_module = type(module)(**{k: getattr(module, k) for k in ('bins', 'momentum')},
                                 **({} if kind == 'ghmr' else {'use_sigmoid': module.use_sigmoid}))

    loss, grad = forward_backward(module, *bad_inputs, reduction)
    masked_loss, masked_grad = forward_backward(masked_module, *masked_inputs, reduction)

    if reduction == 'none':
        assert torch.isnan(loss[mask]).all()
        assert torch.isfinite(loss[~mask]).all()
        if kind != 'ghmr':  # GHM-R's N is the sum of label weights, which differs
            assert torch.equal(loss[~mask], masked_loss[~mask])
    else:
        assert torch.isnan(loss)
        assert torch.isfinite(masked_loss)
    # The bad elements' gradients are NaN (a grad scaler skips the step) ...
    assert torch.isnan(grad[mask]).all()
    assert torch.isfinite(grad[~mask]).all()
    if kind != 'ghmr' and reduction != 'none':
        # ... the others' are those of the masked run (same weights, same N).
        assert torch.equal(grad[~mask], masked_grad[~mask])

    # The bad elements counted nowhere: the EMA is the masked run's, exactly.
    assert torch.isfinite(module.acc_sum).all()
    assert module.acc_sum.sum() > 0
    assert torch.equal(module.acc_sum, masked_module.acc_sum)
    # The next finite batch gives the values it would have given after the masked batch.
    loss, grad = forward_backward(module, *nxt, reduction)
    masked_loss, masked_grad = forward_backward(masked_module, *nxt, reduction)
    assert torch.isfinite(loss).all()
    assert torch.equal(loss, masked_loss)
    assert torch.equal(grad, masked_grad)
    assert torch.equal(module.acc_sum, masked_module.acc_sum)

    if kernel_mode and kind != 'ghmc-softmax':  # the softmax variant has no fused kernel
        assert kernel.calls['compiled'] > compiled_before


@pytest.mark.parametrize('kind', KINDS)
def test_ghm_non_finite_in_an_ignored_element_still_gives_nan(eager_kernels, kind):
    """As in the reference (``0 * NaN``): the loss does not hide a broken input."""
    module, (pred, target, weight), _, mask, _ = ghm_case(kind, math.nan)
    loss = module(pred, target, weight * ~mask)
    assert torch.isnan(loss)
    assert torch.isfinite(module.acc_sum).all()


@pytest.mark.parametrize('bad', BAD, ids=BAD_IDS)
def test_ghmr_non_finite_target_is_nan_and_counts_nowhere(eager_kernels, bad):
    module, masked = GHMRLoss(momentum=0.7), GHMRLoss(momentum=0.7)
    pred, target = torch.randn(30, 4) * 0.1, torch.randn(30, 4) * 0.1
    weight = torch.ones(30, 4)
    bad_target = target.clone()
    bad_target[5, 2] = bad
    assert torch.isnan(module(pred, bad_target, weight))
    masked_weight = weight.clone()
    masked_weight[5, 2] = 0
    masked(pred, target, masked_weight)
    assert torch.equal(module.acc_sum, masked.acc_sum)


def test_ghmc_repro_of_the_issue_does_not_crash(kernel_mode):
    """Issue 9's repro: one NaN logit aborted the process (compiled) or raised IndexError."""
    x = torch.randn(6, 4)
    x[0, 0] = float('nan')
    labels = torch.tensor([0, 1, 2, 3, 4, 4])
    loss = GHMCLoss(bins=10, momentum=0.75)
    assert torch.isnan(loss(x, labels, torch.ones(6)))
    assert torch.isfinite(loss.acc_sum).all()


@pytest.mark.parametrize('name, make', [
    ('ghmc', lambda: GHMCLoss(bins=10, momentum=0.75)),
    ('ghmr', lambda: GHMRLoss(momentum=0.7)),
])
def test_ghm_whole_loss_compiled_with_non_finite_inputs(name, make):
    """The loss itself under torch.compile(fullgraph=True): scatter-add counts, no crash."""
    torch._dynamo.reset()
    module, masked = make(), make()
    step = torch.compile(lambda loss, *args: loss(*args), fullgraph=True, dynamic=True)
    if name == 'ghmc':
        pred, target = torch.randn(20, 3), torch.randint(0, 4, (20,))
        weight = torch.ones(20, 3)
    else:
        pred, target = torch.randn(20, 4) * 0.1, torch.randn(20, 4) * 0.1
        weight = torch.ones(20, 4)
    bad = pred.clone()
    bad[2, 1], bad[7, 0] = math.nan, math.inf
    masked_weight = weight.clone()
    masked_weight[2, 1] = masked_weight[7, 0] = 0
    assert torch.isnan(step(module, bad, target, weight))
    assert torch.isfinite(step(masked, pred, target, masked_weight))
    assert torch.equal(module.acc_sum, masked.acc_sum)


# ---------------------------------------------------------------------------
# The other losses of the package.
# ---------------------------------------------------------------------------
SIGMOID_LOSSES = {
    'alpha-ce': lambda: AlphaBalancedCELoss(),
    'cfl': lambda: ContinuousFocalLoss(),
    'ohem': lambda: OHEMLoss(min_neg=2),
    'ohem-topk': lambda: OHEMLoss(topk=3),
}


def sigmoid_batch(bad, at):
    pred = torch.randn(N, C)
    pred[at] = bad
    labels = torch.randint(0, C + 1, (N,))
    labels[3] = 1
    return pred, labels, torch.ones(N)


@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('at', [(3, 1), (10, 0)], ids=['positive', 'negative'])
@pytest.mark.parametrize('bad', BAD, ids=BAD_IDS)
@pytest.mark.parametrize('name', list(SIGMOID_LOSSES))
def test_sigmoid_baselines_give_a_non_finite_loss(name, bad, at, reduction):
    pred, labels, weight = sigmoid_batch(bad, at)
    pred.requires_grad_()
    loss = SIGMOID_LOSSES[name]()(pred, labels, weight, reduction_override=reduction)
    if reduction == 'none':
        assert not torch.isfinite(loss[at])
        finite = torch.ones_like(loss, dtype=torch.bool)
        finite[at] = False
        assert torch.isfinite(loss[finite]).all()
    else:
        assert not torch.isfinite(loss)
    loss.sum().backward()  # no error either


@pytest.mark.parametrize('bad', BAD, ids=BAD_IDS)
def test_ohem_keeps_a_non_finite_element_it_would_not_select(bad):
    """An ignored (weight 0) NaN element is never selected, yet the loss is not finite."""
    pred, labels, weight = sigmoid_batch(bad, (10, 0))
    weight[10] = 0
    assert not torch.isfinite(OHEMLoss(topk=3)(pred, labels, weight))
    assert not torch.isfinite(OHEMLoss(min_neg=2)(pred, labels, weight))


@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('bad', BAD, ids=BAD_IDS)
def test_authentic_smooth_l1_gives_a_non_finite_loss(bad, reduction):
    pred, target = torch.randn(N, 4), torch.randn(N, 4)
    pred[4, 2] = bad
    pred.requires_grad_()
    loss = AuthenticSmoothL1Loss()(pred, target, reduction_override=reduction)
    if reduction == 'none':
        assert torch.isnan(loss[4, 2])
        assert torch.isfinite(loss).sum() == loss.numel() - 1
    else:
        assert torch.isnan(loss)
    loss.sum().backward()


@pytest.mark.parametrize('name', list(SIGMOID_LOSSES) + ['asl1'])
def test_baselines_compiled_give_a_non_finite_loss(name):
    torch._dynamo.reset()
    module = AuthenticSmoothL1Loss() if name == 'asl1' else SIGMOID_LOSSES[name]()
    step = torch.compile(lambda *args: module(*args), fullgraph=True, dynamic=True)
    for bad in BAD:
        if name == 'asl1':
            pred, target, weight = torch.randn(N, 4), torch.randn(N, 4), torch.ones(N, 4)
            pred[4, 2] = bad
        else:
            pred, target, weight = sigmoid_batch(bad, (10, 0))
        assert not torch.isfinite(step(pred, target, weight)), bad


# ---------------------------------------------------------------------------
# Binary targets outside [0, 1]: a clear error naming the value.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('value', [1.5, -0.25, math.nan, math.inf])
def test_ghmc_binary_targets_outside_unit_range_raise_naming_the_value(eager_kernels, value):
    pred = torch.randn(4, 3)
    target = torch.zeros(4, 3)
    target[2, 1] = value
    with pytest.raises(ValueError, match=rf'target must lie in \[0, 1\], got value {value}'):
        GHMCLoss()(pred, target)


def test_ghmc_soft_binary_targets_inside_unit_range_are_accepted(eager_kernels):
    loss = GHMCLoss()(torch.randn(4, 3), torch.full((4, 3), 0.5))
    assert torch.isfinite(loss)


def test_ghmc_binary_targets_checked_by_device_assertion_off_the_cpu(eager_kernels,
                                                                     monkeypatch):
    """Where a host read would synchronise (accelerators, compile), an async assertion."""
    monkeypatch.setattr(checks_module, 'is_compiling', lambda: True)
    target = torch.zeros(4, 3)
    target[0, 0] = 2.0
    with pytest.raises(RuntimeError):
        GHMCLoss()(torch.randn(4, 3), target)
