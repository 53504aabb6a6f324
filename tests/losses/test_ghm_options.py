"""GHM options beyond the published method: EMA bias correction, weight cap, warm-up.

Every option is checked against hand-computed weights over a few calls, for
sigmoid GHM-C, softmax GHM-C and GHM-R (elements are placed in chosen
regions, so the counts are known), with gradients from autograd of the
reference formula ``sum(w_i * loss_i) / N``. Off (the default) must be the
published behaviour bit for bit, with MMDetection's state dict.
"""
import math
import re

import pytest
import torch
import torch.nn.functional as F

import mmdet_ghm.losses.checks as checks_module
import mmdet_ghm.losses.gradient_density as density_module
from mmdet_ghm.losses import GHMCLoss, GHMRLoss
from mmdet_ghm.losses.gradient_density import HarmonizeOptions, harmonize

from ..host_reads import HOST_READS, OpRecorder

MU = 0.02
KINDS = ('sigmoid', 'softmax', 'regression')
# g of an element of each region for bins=3: [0, 1/3), [1/3, 2/3), [2/3, 1]
G_OF_REGION = (0.1, 0.5, 0.9)


def make_loss(kind, **kwargs):
    kwargs.setdefault('bins', 3)
    if kind == 'sigmoid':
        return GHMCLoss(**kwargs)
    if kind == 'softmax':
        return GHMCLoss(use_sigmoid=False, **kwargs)
    return GHMRLoss(mu=MU, **kwargs)


def make_inputs(kind, regions, invalid=()):
    """Inputs whose valid elements have ``g`` in the given regions (bins=3).

    ``invalid`` adds elements with label weight 0 (in the given regions).
    Returns ``pred`` (float64), ``target``, ``label_weight`` and a function
    giving the per-element loss in float64 (the reference formula).
    """
    g = torch.tensor([G_OF_REGION[r] for r in tuple(regions) + tuple(invalid)],
                     dtype=torch.float64)
    weight = torch.cat([torch.ones(len(regions)), torch.zeros(len(invalid))]).double()
    n = g.numel()
    if kind == 'sigmoid':  # t = 0: g = sigmoid(x)
        pred = torch.logit(g)[:, None]
        target = torch.zeros(n, 1, dtype=torch.float64)

        def base(p):
            return F.binary_cross_entropy_with_logits(p, target, reduction='none')[:, 0]
        return pred, target, weight, base
    if kind == 'softmax':  # logits [0, z], label 0: g = 1 - p_0 = sigmoid(z)
        pred = torch.stack([torch.zeros(n, dtype=torch.float64), torch.logit(g)], dim=1)
        labels = torch.zeros(n, dtype=torch.int64)

        def base(p):
            return F.cross_entropy(p, labels, reduction='none')
        return pred, labels, weight, base
    # regression: g = |d| / sqrt(d^2 + mu^2)  <=>  d = g mu / sqrt(1 - g^2)
    pred = (g * MU / torch.sqrt(1 - g * g))[:, None]
    target = torch.zeros(n, 1, dtype=torch.float64)

    def base(p):
        d = (p - target)[:, 0]
        return torch.sqrt(d * d + MU * MU) - MU
    return pred, target, weight[:, None], base


def expected_loss_and_grad(kind, regions, invalid, region_w):
    """Reference: ``sum(w_{r(i)} * loss_i) / N`` in float64, and its autograd gradient."""
    pred, _, weight, base = make_inputs(kind, regions, invalid)
    pred = pred.clone().requires_grad_()
    w = torch.tensor([region_w[r] for r in regions] + [0.0] * len(invalid),
                     dtype=torch.float64)
    loss = (w * base(pred)).sum() / len(regions)
    loss.backward()
    return loss.detach(), pred.grad


def run(loss_module, kind, regions, invalid=()):
    pred, target, weight, _ = make_inputs(kind, regions, invalid)
    pred = pred.clone().requires_grad_()
    loss = loss_module(pred, target, weight)
    loss.backward()
    return loss.detach(), pred.grad


def check_call(loss_module, kind, regions, region_w, invalid=()):
    got, grad = run(loss_module, kind, regions, invalid)
    expected, expected_grad = expected_loss_and_grad(kind, regions, invalid, region_w)
    torch.testing.assert_close(got.double(), expected, rtol=2e-6, atol=0)
    torch.testing.assert_close(grad.double(), expected_grad, rtol=2e-6, atol=1e-12)


# --------------------------------------------------------------------------
# bias-corrected EMA
# --------------------------------------------------------------------------

# Three calls with m = 0.75 (regions: 0, 1, 2 of bins=3):
#   call 1: R = [4, 0, 2] (+1 invalid element in region 1), N = 6
#   call 2: R = [3, 1, 0], N = 4      (region 1 seen for the first time)
#   call 3: R = [2, 2, 2], N = 6
CALLS = (([0] * 4 + [2] * 2, [1]), ([0] * 3 + [1], []), ([0, 0, 1, 1, 2, 2], []))
M = 0.75
# Corrected density = average of the counts a region has seen, weighted by
# m^(age): S_hat = sum_k m^(t-k) R_k / sum_k m^(t-k).
S_HAT = ([4.0, 0.0, 2.0],
         [(M * 4 + 3) / (1 + M), 1.0, 2.0],
         [(M * M * 4 + M * 3 + 2) / (1 + M + M * M), (M * 1 + 2) / (1 + M), (M * 2 + 2) / (1 + M)])
# Plain EMA (the reference), zero start: S = m S + (1 - m) R on non-empty regions.
S_PLAIN = ([1.0, 0.0, 0.5], [1.5, 0.25, 0.5], [1.625, 0.6875, 0.875])
UPDATES = ([1, 0, 1], [2, 1, 1], [3, 2, 2])


def betas(density, regions):
    """``beta_j = N / (density_j * n)`` for the non-empty regions of one call."""
    present = sorted(set(regions))
    n, total = len(present), len(regions)
    return [total / (density[j] * n) if j in present else 0.0 for j in range(3)]


@pytest.mark.parametrize('kind', KINDS)
def test_bias_correction_matches_hand_computation(kernel_mode, kind):
    loss = make_loss(kind, momentum=M, ema_bias_correction=True)
    for (regions, invalid), s_hat, s_plain, updates in zip(CALLS, S_HAT, S_PLAIN, UPDATES):
        check_call(loss, kind, regions, betas(s_hat, regions), invalid)
        # the EMA itself evolves as in the reference; t_j counts non-empty calls
        torch.testing.assert_close(loss.acc_sum, torch.tensor(s_plain), rtol=1e-6, atol=0)
        assert loss.ema_updates.tolist() == updates
    # literal values of the last call: beta = 6 / (3 * S_hat)
    assert betas(S_HAT[2], CALLS[2][0]) == pytest.approx([0.7115385, 1.2727273, 1.0])


def test_without_correction_a_new_region_gets_one_over_one_minus_m_its_weight(eager_kernels):
    # The reference's behaviour that the option removes: on its first call a
    # region's weight is 1 / (1 - m) = 4 times the corrected one.
    plain = make_loss('sigmoid', momentum=M)
    for (regions, invalid), s_plain in zip(CALLS[:2], S_PLAIN):
        check_call(plain, 'sigmoid', regions, betas(s_plain, regions), invalid)
    assert betas(S_PLAIN[1], CALLS[1][0])[1] == 4 * betas(S_HAT[1], CALLS[1][0])[1] == 8.0


# --------------------------------------------------------------------------
# weight cap
# --------------------------------------------------------------------------

@pytest.mark.parametrize('kind', KINDS)
def test_weight_cap_binds_on_rare_regions(kernel_mode, kind):
    # No momentum, R = [8, 1, 1], N = 10, n = 3: beta = [10/24, 10/3, 10/3];
    # a cap of 2 binds on the two rare regions only.
    regions = [0] * 8 + [1, 2]
    loss = make_loss(kind, weight_cap=2.0)
    check_call(loss, kind, regions, [10 / 24, 2.0, 2.0])
    # a cap above every beta changes nothing
    check_call(make_loss(kind, weight_cap=3.34), kind, regions, [10 / 24, 10 / 3, 10 / 3])


def test_weight_cap_applies_to_the_bias_corrected_density(eager_kernels):
    # call 1 of CALLS with bias correction: beta = [0.75, 0, 1.5]; cap 1.0
    loss = make_loss('sigmoid', momentum=M, ema_bias_correction=True, weight_cap=1.0)
    check_call(loss, 'sigmoid', CALLS[0][0], [0.75, 0.0, 1.0], CALLS[0][1])


# --------------------------------------------------------------------------
# warm-up
# --------------------------------------------------------------------------

@pytest.mark.parametrize('kind', KINDS)
def test_warmup_blends_uniform_and_ghm_weights(kernel_mode, kind):
    # R = [8, 1, 1] at every call, no momentum: beta = [10/24, 10/3, 10/3].
    regions = [0] * 8 + [1, 2]
    beta = [10 / 24, 10 / 3, 10 / 3]
    loss = make_loss(kind, warmup=4)
    for it, lam in ((0, 0.0), (1, 0.25), (3, 0.75), (4, 1.0), (9, 1.0)):
        loss.set_warmup_iter(it)
        check_call(loss, kind, regions, [(1 - lam) + lam * b for b in beta], invalid=[1])


def test_warmup_at_zero_is_plain_mean_cross_entropy(eager_kernels):
    logits, labels = torch.randn(50, 4), torch.randint(0, 5, (50,))
    weight = (torch.rand(50) > 0.2).float()
    loss = GHMCLoss(bins=30, momentum=0.75, warmup=100)
    loss.set_warmup_iter(0)
    target = F.one_hot(labels, 5)[:, :4].float()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    expected = (ce * weight[:, None]).sum() / (weight.sum() * 4)
    torch.testing.assert_close(loss(logits, labels, weight), expected, rtol=1e-6, atol=0)
    # softmax heads: mean CE over the valid rows
    soft = GHMCLoss(bins=30, use_sigmoid=False, warmup=5)
    soft.set_warmup_iter(0)
    expected = (F.cross_entropy(logits, labels.clamp(max=3), reduction='none') * weight).sum() \
        / weight.sum()
    torch.testing.assert_close(soft(logits, labels.clamp(max=3), weight), expected, rtol=1e-6,
                               atol=0)


def test_warmup_combined_with_cap_and_bias_correction(eager_kernels):
    # call 1 of CALLS, corrected beta = [0.75, 0, 1.5], cap 1.2, lam = 1/2
    loss = make_loss('regression', momentum=M, ema_bias_correction=True, weight_cap=1.2,
                     warmup=2)
    loss.set_warmup_iter(1)
    check_call(loss, 'regression', CALLS[0][0], [0.5 + 0.5 * 0.75, 0.0, 0.5 + 0.5 * 1.2],
               CALLS[0][1])


def test_warmup_without_an_iteration_raises_in_training_only(eager_kernels):
    loss = make_loss('sigmoid', warmup=10)
    pred, target, weight, _ = make_inputs('sigmoid', [0, 1])
    with pytest.raises(RuntimeError, match="GHMWarmupHook.*set_warmup_iter"):
        loss(pred, target, weight)
    loss.eval()  # evaluation uses the stored iteration (0 here: uniform weights)
    expected, _ = expected_loss_and_grad('sigmoid', [0, 1], [], [1.0, 1.0, 1.0])
    torch.testing.assert_close(loss(pred, target, weight).double(), expected, rtol=1e-6, atol=0)


def test_warmup_does_not_change_the_density_estimate(eager_kernels):
    a = make_loss('sigmoid', momentum=M, ema_bias_correction=True, warmup=3)
    b = make_loss('sigmoid', momentum=M, ema_bias_correction=True)
    for it, (regions, invalid) in enumerate(CALLS):
        a.set_warmup_iter(it)
        run(a, 'sigmoid', regions, invalid)
        run(b, 'sigmoid', regions, invalid)
    assert torch.equal(a.acc_sum, b.acc_sum) and torch.equal(a.ema_updates, b.ema_updates)


# --------------------------------------------------------------------------
# off by default: the published behaviour exactly
# --------------------------------------------------------------------------

@pytest.mark.parametrize('kind', KINDS)
def test_defaults_and_neutral_settings_are_bit_exact(eager_kernels, kind):
    published = make_loss(kind, bins=30, momentum=0.7)
    explicit = make_loss(kind, bins=30, momentum=0.7, ema_bias_correction=False,
                         weight_cap=None, warmup=0)
    warm = make_loss(kind, bins=30, momentum=0.7, warmup=3)   # lam = 1 from iteration 3
    huge_cap = make_loss(kind, bins=30, momentum=0.7, weight_cap=1e30)
    assert explicit.harmonize_options() is None
    for step in range(3):
        g = torch.rand(200, dtype=torch.float64) * 0.98 + 0.01
        regions = (g * 3).long().clamp(max=2).tolist()
        pred, target, weight, _ = make_inputs(kind, regions)
        warm.set_warmup_iter(3 + step)
        losses, grads = [], []
        for module in (published, explicit, warm, huge_cap):
            p = (pred * (1 + 0.1 * step)).float().requires_grad_()
            out = module(p, target.float() if target.is_floating_point() else target,
                         weight.float())
            out.backward()
            losses.append(out)
            grads.append(p.grad)
        for out, grad in zip(losses[1:], grads[1:]):
            assert torch.equal(out, losses[0]) and torch.equal(grad, grads[0]), step
    for module in (explicit, warm, huge_cap):
        assert torch.equal(module.acc_sum, published.acc_sum)


def test_default_state_dict_is_mmdetections():
    from mmdet.models.losses import GHMC, GHMR
    assert set(GHMCLoss(bins=30, momentum=0.75).state_dict()) == \
        set(GHMC(bins=30, momentum=0.75).state_dict()) == {'edges', 'acc_sum'}
    assert set(GHMRLoss(momentum=0.7, weight_cap=None).state_dict()) == \
        set(GHMR(momentum=0.7).state_dict())
    assert set(GHMCLoss(bins=30, momentum=0.75, weight_cap=10.0).state_dict()) == \
        {'edges', 'acc_sum'}  # a cap has no state


# --------------------------------------------------------------------------
# state dict: resume gives the same next loss
# --------------------------------------------------------------------------

@pytest.mark.parametrize('kind', KINDS)
def test_state_dict_round_trip_gives_the_same_next_loss(eager_kernels, kind):
    options = dict(momentum=M, ema_bias_correction=True, weight_cap=5.0, warmup=4)
    first = make_loss(kind, **options)
    for it, (regions, invalid) in enumerate(CALLS[:2]):
        first.set_warmup_iter(it)
        run(first, kind, regions, invalid)
    state = first.state_dict()
    assert set(state) == {'edges', 'acc_sum', 'ema_updates', 'warmup_iter'}
    assert state['ema_updates'].tolist() == UPDATES[1] and state['warmup_iter'].item() == 1

    resumed = make_loss(kind, **options)
    resumed.load_state_dict(state)
    # evaluation: the loaded iteration is used as is
    for module in (first, resumed):
        module.eval()
    pred, target, weight, _ = make_inputs(kind, *CALLS[2])
    frozen = [copy_state(m) for m in (first, resumed)]
    assert torch.equal(first(pred, target, weight), resumed(pred, target, weight))
    for module, saved in zip((first, resumed), frozen):
        module.load_state_dict(saved)
        module.train()
        module.set_warmup_iter(2)
    got = [run(m, kind, *CALLS[2]) for m in (first, resumed)]
    assert torch.equal(got[0][0], got[1][0]) and torch.equal(got[0][1], got[1][1])
    # and both equal the hand computation: lam = 2/4, corrected beta, cap 5
    beta = [min(b, 5.0) for b in betas(S_HAT[2], CALLS[2][0])]
    expected, _ = expected_loss_and_grad(kind, CALLS[2][0], CALLS[2][1],
                                         [0.5 + 0.5 * b for b in beta])
    torch.testing.assert_close(got[0][0].double(), expected, rtol=2e-6, atol=0)
    assert resumed.ema_updates.tolist() == UPDATES[2]


def copy_state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_checkpoint_without_the_option_buffers_is_refused_strictly():
    published = GHMCLoss(bins=30, momentum=0.75).state_dict()
    with pytest.raises(RuntimeError, match='ema_updates'):
        GHMCLoss(bins=30, momentum=0.75, ema_bias_correction=True).load_state_dict(published)
    with pytest.raises(RuntimeError, match='warmup_iter'):
        GHMCLoss(bins=30, momentum=0.75, warmup=5).load_state_dict(published)


# --------------------------------------------------------------------------
# errors, functional core, no host reads, compile
# --------------------------------------------------------------------------

@pytest.mark.parametrize('kwargs, error, match', [
    (dict(momentum=0.75, ema_bias_correction=1), TypeError, 'ema_bias_correction.*1'),
    (dict(momentum=0.75, ema_bias_correction='yes'), TypeError, "ema_bias_correction.*'yes'"),
    (dict(momentum=0, ema_bias_correction=True), ValueError, 'momentum > 0.*momentum=0'),
    (dict(weight_cap=0), ValueError, 'weight_cap.*got 0'),
    (dict(weight_cap=-1.5), ValueError, r'weight_cap.*got -1\.5'),
    (dict(weight_cap=float('nan')), ValueError, 'weight_cap.*got nan'),
    (dict(weight_cap=float('inf')), ValueError, 'weight_cap.*got inf'),
    (dict(weight_cap='10'), TypeError, "weight_cap.*'10'"),
    (dict(weight_cap=True), TypeError, 'weight_cap.*True'),
    (dict(warmup=-1), ValueError, 'warmup.*got -1'),
    (dict(warmup=2.5), TypeError, 'warmup.*2.5.*float'),
    (dict(warmup=True), TypeError, 'warmup.*True'),
])
@pytest.mark.parametrize('cls', [GHMCLoss, GHMRLoss])
def test_bad_option_values_raise_naming_the_value(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(**kwargs)


@pytest.mark.parametrize('bad, error', [(-1, ValueError), (1.0, TypeError), (True, TypeError),
                                        (torch.tensor(3), TypeError)])
def test_bad_warmup_iteration_raises_naming_it(bad, error):
    with pytest.raises(error, match=re.escape(str(bad) if error is ValueError else repr(bad))):
        GHMCLoss(warmup=3).set_warmup_iter(bad)


def test_functional_core_checks_option_consistency():
    index = torch.tensor([0, 1, 1], dtype=torch.uint8)
    with pytest.raises(ValueError, match='momentum > 0'):
        harmonize(index, 2, None, None, 0.0,
                  options=HarmonizeOptions(ema_updates=torch.zeros(2, dtype=torch.int64)))
    with pytest.raises(ValueError, match='warmup=3 needs warmup_iter'):
        harmonize(index, 2, None, None, 0.0, options=HarmonizeOptions(warmup=3))




@pytest.mark.parametrize('kind', KINDS)
def test_options_add_no_host_reads(eager_kernels, monkeypatch, kind):
    # the code paths taken on accelerators (see test_sync_free); on CPU, value
    # checks of labels and targets read memory by design
    monkeypatch.setattr(checks_module, 'check_values', lambda *args, **kwargs: None)
    monkeypatch.setattr(density_module, 'counts_by_bincount', lambda index: False)
    loss = make_loss(kind, bins=30, momentum=0.7, ema_bias_correction=True, weight_cap=10.0,
                     warmup=50)
    g = torch.rand(300, dtype=torch.float64) * 0.98 + 0.01
    pred, target, weight, _ = make_inputs(kind, (g * 3).long().clamp(max=2).tolist())
    pred = pred.float().requires_grad_()
    with OpRecorder() as recorder:
        loss.set_warmup_iter(7)
        loss(pred, target.float() if target.is_floating_point() else target,
             weight.float()).backward()
        loss.region_summary()
    assert not HOST_READS.intersection(recorder.ops), HOST_READS.intersection(recorder.ops)


def test_options_compile_with_fullgraph(eager_kernels):
    torch._dynamo.reset()
    step = torch.compile(lambda loss, *args: loss(*args), fullgraph=True, dynamic=True)
    options = dict(bins=30, momentum=0.75, ema_bias_correction=True, weight_cap=20.0, warmup=3)
    eager, compiled = GHMCLoss(**options), GHMCLoss(**options)
    for it in range(4):  # lam = 0, 1/3, 2/3, 1: no recompilation needed for new values
        logits = torch.randn(400, 9) * 3
        labels = torch.randint(0, 10, (400,))
        weight = (torch.rand(400) > 0.1).float()
        a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        for module in (eager, compiled):
            module.set_warmup_iter(it)
        expected = eager(a, labels, weight)
        got = step(compiled, b, labels, weight)
        expected.backward()
        got.backward()
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-9)
    assert torch.equal(compiled.ema_updates, eager.ema_updates)
    torch.testing.assert_close(compiled.acc_sum, eager.acc_sum, rtol=1e-6, atol=0)


# --------------------------------------------------------------------------
# statistics: what each option changes
# --------------------------------------------------------------------------

@pytest.mark.parametrize('options, hard_half, beta_max', [
    # bins=4, R = [8, 1, 0, 1], N = 10, n = 3: beta = [5/12, 10/3, 0, 10/3],
    # every non-empty region totals N / n = 10/3; regions 2, 3 have g >= 0.5.
    (dict(), 1 / 3, 10 / 3),
    (dict(weight_cap=2.0), 2 / (10 / 3 + 2 + 2), 2.0),
    (dict(warmup=4), 1 / 10, 1.0),  # iteration 0: uniform weights
])
def test_region_summary_reports_hard_half_share_and_largest_weight(eager_kernels, options,
                                                                   hard_half, beta_max):
    loss = GHMCLoss(bins=4, **options)
    loss.set_warmup_iter(0)
    g = torch.tensor([0.1] * 8 + [0.3, 0.9], dtype=torch.float64)
    loss(torch.logit(g)[:, None], torch.zeros(10, 1, dtype=torch.float64), torch.ones(10))
    summary = loss.region_summary()
    assert summary['non_empty'].item() == 3
    assert summary['hard_half_share'].item() == pytest.approx(hard_half, rel=1e-6)
    assert summary['beta_max'].item() == pytest.approx(beta_max, rel=1e-6)
    loss.reset_region_stats()
    assert loss.region_summary()['beta_max'].item() == 0


def test_region_summary_density_is_bias_corrected():
    loss = make_loss('sigmoid', momentum=M, ema_bias_correction=True)
    run(loss, 'sigmoid', *CALLS[0])
    run(loss, 'sigmoid', *CALLS[1])
    torch.testing.assert_close(loss.region_summary()['density'], torch.tensor(S_HAT[1]),
                               rtol=1e-6, atol=0)
    assert math.isclose(S_HAT[1][0], 6 / 1.75)
