"""GHM-C with the (labels, scores) targets of quality-aware heads (GFL, TOOD)."""
import pytest
import torch
from mmdet.models.losses import GHMC

from mmdet_ghm.losses import GHMCLoss

from ..conftest import kernels_compiled

N, C = 60, 4


def quality_target(seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, C + 1, (N,), generator=g)  # C = background
    scores = torch.rand(N, generator=g)
    scores[labels == C] = 0  # as GFL: 0 for negatives
    dense = torch.zeros(N, C)
    positive = labels < C
    dense[positive, labels[positive]] = scores[positive]
    return labels, scores, dense


def loss_grad(loss, logits, target, **kwargs):
    logits = logits.clone().requires_grad_()
    value = loss(logits, target, **kwargs)
    value.backward()
    return value.detach(), logits.grad


@pytest.mark.parametrize('compiled', [False, True])
def test_pair_equals_the_dense_soft_target(compiled):
    labels, scores, dense = quality_target()
    weight = (torch.rand(N, generator=torch.Generator().manual_seed(1)) > 0.1).float()
    pair_loss, dense_loss = GHMCLoss(bins=10, momentum=0.75), GHMCLoss(bins=10, momentum=0.75)
    with kernels_compiled(compiled):
        for step in range(2):  # the second step uses the EMA of the first
            logits = torch.randn(N, C, generator=torch.Generator().manual_seed(10 + step)) * 2
            a = loss_grad(pair_loss, logits, (labels, scores), weight=weight)
            b = loss_grad(dense_loss, logits, dense, label_weight=weight)
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
            assert torch.equal(pair_loss.acc_sum, dense_loss.acc_sum)
            none_a = pair_loss(logits, (labels, scores), weight, reduction_override='none')
            none_b = dense_loss(logits, dense, weight, reduction_override='none')
            assert torch.equal(none_a, none_b)


def test_pair_against_mmdetection_ghmc_on_the_dense_target():
    labels, scores, dense = quality_target(2)
    ours, reference = GHMCLoss(bins=10, momentum=0.75), GHMC(bins=10, momentum=0.75)
    for step in range(3):
        logits = torch.randn(N, C, generator=torch.Generator().manual_seed(step)) * 2
        a = loss_grad(ours, logits, (labels, scores), weight=torch.ones(N))
        b = loss_grad(reference, logits, dense, label_weight=torch.ones(N, C))
        torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours.acc_sum, reference.acc_sum)


def test_pair_by_hand():
    # Two rows, two classes, no EMA, 2 regions: g = |sigmoid(x) - t|.
    logits = torch.tensor([[0.0, 2.0], [-1.0, 1.0]], dtype=torch.float64)
    labels, scores = torch.tensor([1, 2]), torch.tensor([0.9, 0.0], dtype=torch.float64)
    t = torch.tensor([[0.0, 0.9], [0.0, 0.0]], dtype=torch.float64)
    p = logits.sigmoid()
    g = (p - t).abs()  # [[0.5, 0.0808], [0.2689, 0.7311]]
    region = (g >= 0.5).long()  # [[1, 0], [0, 1]]: 2 elements each, 2 non-empty regions
    beta = 4 / (2 * 2)  # N / (R_j * n) = 1 for every element
    assert region.tolist() == [[1, 0], [0, 1]]
    ce = -(t * p.log() + (1 - t) * (1 - p).log())
    expected = (beta * ce).sum() / 4
    logits.requires_grad_()
    loss = GHMCLoss(bins=2)(logits, (labels, scores))
    loss.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(logits.grad, beta * (p - t) / 4, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_pair_with_half_precision_logits(dtype):
    labels, scores, dense = quality_target(3)
    logits = torch.randn(N, C, generator=torch.Generator().manual_seed(4)).to(dtype)
    a = loss_grad(GHMCLoss(bins=10), logits, (labels, scores))
    b = loss_grad(GHMCLoss(bins=10), logits, dense)
    assert a[1].dtype == dtype
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_pair_and_weight_keyword_errors():
    labels, scores, _ = quality_target()
    logits = torch.randn(N, C)
    loss = GHMCLoss(bins=10)
    with pytest.raises(ValueError, match='not both'):
        loss(logits, labels, torch.ones(N), weight=torch.ones(N))
    with pytest.raises(ValueError, match=r'scores must lie in \[0, 1\]|scores'):
        loss(logits, (labels, scores + 1.5))
    with pytest.raises(ValueError, match="labels' shape"):
        loss(logits, (labels, scores[:5]))
    with pytest.raises(TypeError, match='scores'):
        loss(logits, (labels, (scores > 0.5)))
    with pytest.raises(TypeError, match='length 3'):
        loss(logits, (labels, scores, scores))
    with pytest.raises(ValueError, match='use_sigmoid=True'):
        GHMCLoss(bins=10, use_sigmoid=False)(torch.randn(N, C + 1), (labels, scores))


def test_weight_keyword_equals_label_weight():
    labels, _, _ = quality_target()
    logits = torch.randn(N, C)
    weight = (torch.rand(N) > 0.3).float()
    assert torch.equal(GHMCLoss(bins=10)(logits, labels, weight),
                       GHMCLoss(bins=10)(logits, labels, weight=weight))
