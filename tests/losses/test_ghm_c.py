"""GHM-C: parity with MMDetection's GHMC, hand values, gradients and the contract."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.losses import GHMC, GHMR

from mmdet_ghm.losses import GHMCLoss, GHMRLoss


def rel_diff(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()


def make_batch(n=600, c=12, with_edges=True):
    """Logits with saturated and on-edge examples, labels in [0, C], 0/1 weights."""
    logits = torch.randn(n, c) * 4
    if with_edges:
        logits[:20] = 100.0    # sigmoid == 1 exactly: g = 0 or 1
        logits[20:40] = -100.0  # sigmoid == 0 exactly
        logits[40:60] = 0.0    # sigmoid == 0.5: g on the edge 0.5
    labels = torch.randint(0, c + 1, (n,))
    label_weight = (torch.rand(n) > 0.15).float()
    return logits, labels, label_weight


def run_pair(ref, ours, logits, target, label_weight, **kwargs):
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    loss_ref = ref(a, target, label_weight, **kwargs)
    loss_ours = ours(b, target, label_weight, **kwargs)
    loss_ref.sum().backward()
    loss_ours.sum().backward()
    return loss_ref, loss_ours, a.grad, b.grad


@pytest.mark.parametrize('momentum', [0.0, 0.75])
@pytest.mark.parametrize('binary', [False, True], ids=['labels', 'binary'])
def test_matches_reference_over_a_sequence_of_calls(kernel_mode, momentum, binary):
    ref = GHMC(bins=30, momentum=momentum)
    ours = GHMCLoss(bins=30, momentum=momentum)
    for step in range(4):
        logits, labels, label_weight = make_batch()
        if binary:
            target = F.one_hot(labels, 13)[:, :12].float()
            label_weight = label_weight[:, None].expand(-1, 12).contiguous()
        else:
            target = labels
        loss_ref, loss_ours, grad_ref, grad_ours = run_pair(ref, ours, logits, target,
                                                            label_weight)
        assert rel_diff(loss_ours, loss_ref) < 1e-5, step
        assert rel_diff(grad_ours, grad_ref) < 1e-5, step
        if momentum:
            assert torch.allclose(ours.acc_sum, ref.acc_sum, rtol=1e-6), step
    if momentum:
        assert (ours.acc_sum > 0).sum() > 10  # the EMA really evolved


def test_hand_computed_example(eager_kernels):
    # bins=2: regions [0, .5) and [.5, 1]. Logits 0 give p = 0.5.
    logits = torch.tensor([[0.0, -100.0], [100.0, 0.0], [0.0, 3.0]], requires_grad=True)
    labels = torch.tensor([1, 0, 2])           # row 2 is background
    label_weight = torch.tensor([1.0, 1.0, 0.0])  # row 2 ignored
    loss = GHMCLoss(bins=2)(logits, labels, label_weight)
    # valid elements: t = [[0,1],[1,0]]; p = [[.5, 0],[1, .5]]; g = [[.5,1],[0,.5]]
    # region 0: one element (g=0), region 1: three elements. N = 4, n = 2.
    # beta = N / (R_j * n): region 0 -> 4 / 2 = 2, region 1 -> 4 / 6.
    ce = torch.tensor([[math.log(2), 100.0], [0.0, math.log(2)]])
    beta = torch.tensor([[4 / 6, 4 / 6], [2.0, 4 / 6]])
    expected = (beta * ce).sum() / 4
    assert torch.allclose(loss, expected, rtol=1e-6)
    none = GHMCLoss(bins=2, reduction='none')(logits.detach(), labels, label_weight)
    assert torch.allclose(none, torch.cat([beta * ce, torch.zeros(1, 2)]), rtol=1e-6, atol=1e-7)
    loss.backward()
    p = torch.tensor([[0.5, 0.0], [1.0, 0.5]])
    t = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    expected_grad = torch.cat([beta * (p - t) / 4, torch.zeros(1, 2)])
    assert torch.allclose(logits.grad, expected_grad, atol=1e-7)


def test_gradcheck_float64(eager_kernels):
    logits = (torch.randn(30, 5, dtype=torch.float64) * 2).requires_grad_()
    labels = torch.randint(0, 6, (30,))
    label_weight = (torch.rand(30) > 0.2).double()
    loss = GHMCLoss(bins=10)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels, label_weight), (logits,))
    assert torch.autograd.gradcheck(
        lambda x: loss(x, labels, label_weight, reduction_override='none'), (logits,))


def test_reductions_and_loss_weight(eager_kernels):
    logits, labels, label_weight = make_batch(200, 6, with_edges=False)
    loss = GHMCLoss(bins=10, loss_weight=2.5)
    none = loss(logits, labels, label_weight, reduction_override='none')
    total = loss(logits, labels, label_weight, reduction_override='sum')
    mean = loss(logits, labels, label_weight)
    num_valid = label_weight.sum() * 6
    assert none.shape == logits.shape
    assert torch.allclose(none.sum(), total, rtol=1e-5)
    assert torch.allclose(mean, total / num_valid, rtol=1e-5)
    assert torch.allclose(mean, 2.5 * GHMCLoss(bins=10)(logits, labels, label_weight), rtol=1e-6)
    assert (none[label_weight == 0] == 0).all()


def test_without_momentum_mean_is_mean_of_region_means(eager_kernels):
    logits, labels, _ = make_batch(300, 4, with_edges=False)
    loss = GHMCLoss(bins=5)(logits, labels, None)
    target = F.one_hot(labels, 5)[:, :4].float()
    g = (logits.sigmoid() - target).abs()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    region = (g * 5).floor().clamp(max=4)
    means = [ce[region == j].mean() for j in range(5) if (region == j).any()]
    assert torch.allclose(loss, torch.stack(means).mean(), rtol=1e-5)


def test_avg_factor_is_ignored_like_the_reference(eager_kernels):
    logits, labels, label_weight = make_batch(100, 3)
    loss = GHMCLoss()
    assert torch.equal(loss(logits, labels, label_weight),
                       loss(logits, labels, label_weight, avg_factor=123.0))


def test_empty_input_is_zero_and_connected(kernel_mode):
    logits = torch.zeros(0, 8, requires_grad=True)
    loss = GHMCLoss(bins=30, momentum=0.75)(logits, torch.zeros(0, dtype=torch.long),
                                              torch.zeros(0))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and logits.grad.shape == (0, 8)


def test_all_weights_zero_gives_zero_not_nan(eager_kernels):
    logits = torch.randn(10, 3, requires_grad=True)
    ghm = GHMCLoss(bins=10, momentum=0.5)
    loss = ghm(logits, torch.randint(0, 4, (10,)), torch.zeros(10))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(10, 3))
    assert torch.equal(ghm.acc_sum, torch.zeros(10))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_logits_match_float32(eager_kernels, dtype):
    # The loss computes in float32 from the half logits, so it must equal the
    # float32 loss of the same rounded logits. Measured on this machine: bit-identical
    # losses and gradients over 20 seeds; computing in the logits' dtype instead is
    # off by 7e-4 (fp16) and 3e-3 (bf16) here. The tolerance leaves room for float32
    # reassociation only.
    logits, labels, label_weight = make_batch(400, 10, with_edges=False)
    rounded = logits.to(dtype).float().requires_grad_()
    expected = GHMCLoss(bins=30)(rounded, labels, label_weight)
    expected.backward()
    half = logits.to(dtype).requires_grad_()
    got = GHMCLoss(bins=30)(half, labels, label_weight)
    assert got.dtype == torch.float32
    assert abs(got.item() - expected.item()) / expected.item() < 1e-6
    got.backward()
    assert half.grad.dtype == dtype
    # the float32 gradient rounded once to the logits' dtype (at most one ulp off)
    torch.testing.assert_close(half.grad.float(), rounded.grad.to(dtype).float(),
                               rtol=torch.finfo(dtype).eps, atol=0)


def test_weights_do_not_overflow_in_float16(eager_kernels):
    # 70000 easy examples in region 0 and one hard one alone in region 9: its
    # weight is N / R_9 / n = 70001 / 1 / 2. The reference stores N / R_9 =
    # 70001 in a float16 tensor first, which overflows to inf (torch 2.1 raises
    # "value cannot be converted to type at::Half without overflow" instead).
    n = 70001
    logits = torch.full((n, 1), -20.0, dtype=torch.float16)
    logits[0] = 20.0
    labels = torch.ones(n, dtype=torch.long)  # background for C = 1
    try:
        reference = GHMC(bins=10)(logits, labels, torch.ones(n))
    except RuntimeError as error:
        assert 'without overflow' in str(error), error
    else:
        assert torch.isinf(reference)
    loss = GHMCLoss(bins=10, reduction='sum')(logits, labels, torch.ones(n))
    assert torch.isfinite(loss)
    # CE(20, t=0) = CE(-20, t=1) = 20 + log1p(exp(-20)); float32 math: 2e-10 off here
    ce = math.log1p(math.exp(-20))
    expected = 70000 * (n / (70000 * 2)) * ce + n / 2 * (20 + ce)
    assert abs(loss.item() - expected) / expected < 1e-6


def test_runs_under_autocast(eager_kernels):
    # Under autocast the classifier's logits are bfloat16; the loss must give the
    # float32 loss of those very logits, and their float32 gradient rounded to bfloat16.
    _, labels, label_weight = make_batch(100, 4)
    features = torch.randn(100, 16)
    classifier = torch.nn.Linear(16, 4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = classifier(features)
        logits.retain_grad()
        loss = GHMCLoss(bins=10)(logits, labels, label_weight)
    assert logits.dtype == torch.bfloat16  # the loss really saw autocast's logits
    assert loss.dtype == torch.float32
    loss.backward()
    as_float = logits.detach().float().requires_grad_()
    expected = GHMCLoss(bins=10)(as_float, labels, label_weight)
    expected.backward()
    assert abs(loss.item() - expected.item()) / expected.item() < 1e-6
    torch.testing.assert_close(logits.grad.float(), as_float.grad.to(torch.bfloat16).float(),
                               rtol=torch.finfo(torch.bfloat16).eps, atol=0)
    assert classifier.weight.grad.dtype == torch.float32
    assert torch.isfinite(classifier.weight.grad).all() and classifier.weight.grad.abs().sum() > 0


def test_state_dict_is_compatible_with_reference(eager_kernels):
    ref = GHMC(bins=30, momentum=0.75)
    ref.acc_sum.uniform_(1.0, 100.0)  # an EMA that has seen a few batches
    ours = GHMCLoss(bins=30, momentum=0.75)
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert torch.equal(ours.acc_sum, ref.acc_sum)
    assert torch.equal(ours.edges, ref.edges)
    assert set(GHMCLoss(bins=5).state_dict()) == set(GHMC(bins=5).state_dict())
    # the loaded EMA drives the next call exactly as the reference's does
    logits, labels, label_weight = make_batch(200, 6, with_edges=False)
    loss_ref, loss_ours, grad_ref, grad_ours = run_pair(ref, ours, logits, labels, label_weight)
    fresh = GHMCLoss(bins=30, momentum=0.75)(logits, labels, label_weight)
    assert rel_diff(loss_ours, loss_ref) < 1e-5 and rel_diff(grad_ours, grad_ref) < 1e-5
    assert torch.allclose(ours.acc_sum, ref.acc_sum, rtol=1e-6)
    assert abs(fresh.item() - loss_ours.item()) > 0.1 * loss_ours.item()  # the state matters


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(bins=0), ValueError, 'bins.*0'),
    (dict(bins=2.5), TypeError, 'bins.*2.5'),
    (dict(bins=True), TypeError, 'bins.*True'),
    (dict(bins=300), ValueError, 'bins.*300'),
    (dict(momentum=1.0), ValueError, r'momentum.*1\.0'),
    (dict(momentum=-0.1), ValueError, r'momentum.*-0\.1'),
    (dict(momentum='0.5'), TypeError, "momentum.*'0.5'"),
    (dict(use_sigmoid='no'), TypeError, "use_sigmoid.*'no'"),
    (dict(reduction='avg'), ValueError, "reduction.*'avg'"),
    (dict(loss_weight=None), TypeError, 'loss_weight.*None'),
])
def test_bad_config_raises_naming_the_value(kwargs, error, match):
    with pytest.raises(error, match=match):
        GHMCLoss(**kwargs)


def test_bad_inputs_raise_naming_the_value(eager_kernels):
    loss = GHMCLoss()
    logits = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r'labels.*\[0, 3\].*got label 4'):
        loss(logits, torch.tensor([0, 1, 4, 3]), torch.ones(4))
    with pytest.raises(ValueError, match=r'got label -1'):
        loss(logits, torch.tensor([0, -1, 2, 3]), torch.ones(4))
    with pytest.raises(ValueError, match=r'labels must have shape \(4,\).*\(5,\)'):
        loss(logits, torch.zeros(5, dtype=torch.long), torch.ones(4))
    with pytest.raises(TypeError, match='integer.*float32'):
        loss(logits, torch.zeros(4), torch.ones(4))
    with pytest.raises(ValueError, match=r'label_weight.*\(4, 3\) or \(4,\).*\(3,\)'):
        loss(logits, torch.zeros(4, dtype=torch.long), torch.ones(3))
    with pytest.raises(ValueError, match=r'target.*\(4, 2\)'):
        loss(logits, torch.zeros(4, 2), torch.ones(4))
    with pytest.raises(ValueError, match=r'pred.*\(N, C\).*\(4,\)'):
        loss(torch.randn(4), torch.zeros(4, dtype=torch.long), torch.ones(4))
    with pytest.raises(TypeError, match='pred.*int64'):
        loss(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="reduction_override.*'avg'"):
        loss(logits, torch.zeros(4, dtype=torch.long), reduction_override='avg')


def test_region_stats_accumulate_over_calls_on_the_device(eager_kernels):
    loss = GHMCLoss(bins=2, momentum=0.5)
    logits = torch.tensor([[0.0, -100.0], [100.0, 0.0], [0.0, 3.0]])
    labels, weight = torch.tensor([1, 0, 2]), torch.tensor([1.0, 1.0, 0.0])
    loss(logits, labels, weight)
    loss(logits, labels, weight)
    summary = loss.region_summary()
    # per call: region 0 holds 1 element, region 1 holds 3 (see the hand example)
    assert summary['counts'].tolist() == [2.0, 6.0]
    # first call: S = [0.5, 1.5], beta = 4 / (S * 2) -> [4, 4/3]; totals 4 and 4
    # second call: S = [0.75, 2.25], beta -> [8/3, 8/9]; totals 8/3 and 8/3
    assert torch.allclose(summary['weight_share'], torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert summary['non_empty'].item() == 2
    assert torch.allclose(summary['density'], torch.tensor([0.75, 2.25]))
    loss.reset_region_stats()
    assert loss.region_summary()['counts'].tolist() == [0.0, 0.0]
    assert 'region_stats' not in loss.state_dict()


def test_region_stats_count_the_positives_apart(eager_kernels):
    # bins 4: [0, .25), [.25, .5), [.5, .75), [.75, 1]. Row 0 (class 0) is easy,
    # row 1 (class 1) sits at p = 0.5, row 2 is background, row 3 is ignored, and
    # row 4 (class 0) has a NaN logit in its labelled class: it counts nowhere.
    loss = GHMCLoss(bins=4)
    logits = torch.tensor([[3.0, -3.0], [0.0, 0.0], [-3.0, -3.0], [0.0, 0.0],
                           [float('nan'), 0.0]])
    labels = torch.tensor([0, 1, 2, 0, 0])
    weight = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0])
    loss(logits, labels, weight)
    summary = loss.region_summary()
    # rows 0 and 2 in region 0; row 1 and row 4's class 1 (valid, p = 0.5) in region 2
    assert summary['counts'].tolist() == [4.0, 0.0, 3.0, 0.0]
    assert summary['positive_counts'].tolist() == [1.0, 0.0, 1.0, 0.0]
    # N = 7 valid, 2 regions: beta = 7 / (4 * 2) and 7 / (3 * 2); total weight 7
    beta = torch.tensor([7 / 8, 0.0, 7 / 6, 0.0], dtype=torch.float64)
    torch.testing.assert_close(summary['positive_weight_share'],
                               summary['positive_counts'] * beta / 7)
    assert summary['positive_share'].item() == pytest.approx((7 / 8 + 7 / 6) / 7)
    assert summary['positive_fraction'].item() == pytest.approx(2 / 7)
    # binary targets of the logits' shape: the elements with a target > 0
    loss.reset_region_stats()
    targets = F.one_hot(labels, 3)[:, :2].float()
    loss(logits, targets, weight)
    torch.testing.assert_close(loss.region_summary()['positive_counts'],
                               summary['positive_counts'])
    # GHM-R has no negatives: it reports none of this
    reg = GHMRLoss()
    reg(torch.zeros(2, 4), torch.ones(2, 4))
    assert 'positive_share' not in reg.region_summary()
    assert reg.region_stats[2:].sum().item() == 0


def test_softmax_region_stats_count_the_foreground_rows(eager_kernels):
    loss = GHMCLoss(bins=2, use_sigmoid=False)
    # rows: class 0 confident (g ~ 0), background confident, class 1 wrong (g ~ 1)
    logits = torch.tensor([[9.0, 0.0, 0.0], [0.0, 0.0, 9.0], [9.0, 0.0, 0.0]])
    loss(logits, torch.tensor([0, 2, 1]))
    summary = loss.region_summary()
    assert summary['counts'].tolist() == [2.0, 1.0]
    assert summary['positive_counts'].tolist() == [1.0, 1.0]
    # beta = 3 / (2 * 2) and 3 / (1 * 2): the positives hold 0.75 + 1.5 of 3
    assert summary['positive_share'].item() == pytest.approx(0.75)


@pytest.mark.parametrize('bins', [1, 7, 10, 30, 254])
def test_state_dict_with_other_edges_is_refused(bins):
    # The reference's edges (GHM-C's and GHM-R's last edge) load for every bins ...
    GHMCLoss(bins=bins).load_state_dict(GHMC(bins=bins).state_dict())
    GHMRLoss(bins=bins).load_state_dict(GHMR(bins=bins).state_dict())
    # ... edges of another construction would put elements in other regions.
    state = GHMC(bins=bins).state_dict()
    state['edges'][bins // 2] = torch.nextafter(state['edges'][bins // 2], torch.tensor(2.0))
    with pytest.raises(ValueError, match=rf'edges .* bins={bins}: edge {bins // 2} is'):
        GHMCLoss(bins=bins).load_state_dict(state)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_backward_again_through_a_retained_graph_gives_the_same_gradient(kernel_mode, dtype):
    """The first backward scales the forward's gradient buffer in place; a second one
    (retain_graph) must not see that scaled buffer but compute the same values again."""
    logits, labels, label_weight = make_batch(300, 6)
    logits = logits.to(dtype).requires_grad_()
    loss = GHMCLoss(bins=30)
    out = loss(logits, labels, label_weight) * 3.0
    first, = torch.autograd.grad(out, logits, retain_graph=True)
    second, = torch.autograd.grad(out, logits, retain_graph=True)
    third, = torch.autograd.grad(out * 2.0, logits)
    assert first.dtype == dtype
    assert torch.equal(first, second)
    if dtype == torch.float32:  # x2 is exact in float32 (not in fp16's subnormals)
        assert torch.equal(third, first * 2.0)
    else:
        assert torch.allclose(third.float(), first.float() * 2.0, rtol=1e-3, atol=1e-7)
    # the values: 3 * w * (sigmoid - t) / N, from autograd through the elementwise loss
    none = loss(logits, labels, label_weight, reduction_override='none')
    expected, = torch.autograd.grad(none.float().sum() * 3.0 / (label_weight.sum() * 6), logits)
    tol = dict(rtol=1e-5, atol=1e-9) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-6)
    assert torch.allclose(first.float(), expected.float(), **tol)
