"""The GHM modules' positional arguments are the reference's (GHMC, GHMR).

MMDetection 3.3: ``GHMC.forward(pred, target, label_weight, reduction_override=None,
**kwargs)`` and ``GHMR.forward(pred, target, label_weight, avg_factor=None,
reduction_override=None)``; heads pass ``avg_factor`` by keyword.
"""
import inspect

import pytest
import torch
from mmdet.models.losses import GHMC, GHMR

from mmdet_ghm.losses import GHMCLoss, GHMRLoss


def positional_names(function):
    return [p.name for p in inspect.signature(function).parameters.values()
            if p.kind == p.POSITIONAL_OR_KEYWORD]


def test_positional_parameters_are_the_references():
    assert positional_names(GHMCLoss.forward) == positional_names(GHMC.forward)
    assert positional_names(GHMRLoss.forward) == positional_names(GHMR.forward)
    avg_factor = inspect.signature(GHMCLoss.forward).parameters['avg_factor']
    assert avg_factor.kind == avg_factor.KEYWORD_ONLY


def classification_batch():
    logits = torch.randn(30, 4) * 3
    labels = torch.randint(0, 5, (30,))
    return logits, labels, (torch.rand(30) > 0.2).float()


def test_ghmc_positional_reduction_override_matches_the_reference(eager_kernels):
    logits, labels, weight = classification_batch()
    ours = GHMCLoss(bins=10, momentum=0.75)(logits, labels, weight, 'none')
    ref = GHMC(bins=10, momentum=0.75)(logits, labels, weight, 'none')
    assert ours.shape == (30, 4)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-7)


def test_ghmc_positional_reduction_override_equals_the_keyword(eager_kernels):
    logits, labels, weight = classification_batch()
    positional = GHMCLoss(bins=10)(logits, labels, weight, 'sum')
    keyword = GHMCLoss(bins=10)(logits, labels, weight, reduction_override='sum')
    mean = GHMCLoss(bins=10)(logits, labels, weight)
    assert torch.equal(positional, keyword)
    assert torch.allclose(positional / mean, (weight.sum() * 4).float())


def test_ghmc_avg_factor_is_keyword_only_and_ignored(eager_kernels):
    logits, labels, weight = classification_batch()
    loss = GHMCLoss(bins=10)
    assert torch.equal(loss(logits, labels, weight, avg_factor=7.0),
                       loss(logits, labels, weight))
    # The old positional order (avg_factor 4th) now names the bad value.
    with pytest.raises(ValueError, match="reduction_override must be one of .*got 7.0"):
        loss(logits, labels, weight, 7.0)
    with pytest.raises(TypeError):
        loss(logits, labels, weight, None, 'sum')


def test_ghmr_positional_order_matches_the_reference(eager_kernels):
    pred, target = torch.randn(20, 4) * 0.1, torch.randn(20, 4) * 0.1
    weight = (torch.rand(20, 4) > 0.3).float()
    ours = GHMRLoss(momentum=0.7)(pred, target, weight, 3.0, 'none')
    ref = GHMR(momentum=0.7)(pred, target, weight, 3.0, 'none')
    assert ours.shape == (20, 4)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-7)
    assert torch.equal(GHMRLoss()(pred, target, weight, None, 'sum'),
                       GHMRLoss()(pred, target, weight, reduction_override='sum'))
