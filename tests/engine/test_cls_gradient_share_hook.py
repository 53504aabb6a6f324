"""ClsGradientShareHook: the positives' share of the gradient each loss sends to the logits,
pooled over the logging window, against a direct computation; ignored rows, softmax losses
and bad inputs; no host copy between logging iterations."""
import re
import types

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.losses import CrossEntropyLoss, FocalLoss
from mmengine.hooks import LoggerHook
from mmengine.logging import MessageHub, MMLogger

from mmdet_ghm.engine.hooks import ClsGradientShareHook
from mmdet_ghm.engine.hooks.cls_gradient_share_hook import sigmoid_cls_loss
from mmdet_ghm.losses import GHMCLoss

from ..host_reads import OpRecorder, record_host_copies


class Head(torch.nn.Module):
    def __init__(self, loss_cls):
        super().__init__()
        self.bbox_head = torch.nn.Module()
        self.bbox_head.loss_cls = loss_cls


class FocalByHand(torch.nn.Module):
    """:func:`focal_by_hand` as a loss module (no host read on CPU, unlike mmdet's)."""

    def forward(self, pred, target, weight, avg_factor=None):
        return focal_by_hand(pred, target, weight)


def fake_runner(model, interval, iters, hub):
    return types.SimpleNamespace(
        model=model, hooks=[LoggerHook(interval=interval)], train_dataloader=[None] * iters,
        iter=0, max_iters=iters, message_hub=MessageHub.get_instance(hub),
        logger=MMLogger.get_instance('cls_gradient_share_hook_test'),
        log_processor=types.SimpleNamespace(mean_pattern=re.compile(r'.*(loss|time).*')))


def focal_by_hand(pred, labels, weights, gamma=2.0, alpha=0.25):
    """Sigmoid focal loss written out, summed (its scale cancels in the shares)."""
    t = (labels[:, None] == torch.arange(pred.shape[1])).float()
    p = pred.sigmoid()
    p_t = p * t + (1 - p) * (1 - t)
    alpha_t = alpha * t + (1 - alpha) * (1 - t)
    ce = F.binary_cross_entropy_with_logits(pred, t, reduction='none')
    return (alpha_t * (1 - p_t) ** gamma * ce * weights[:, None]).sum()


def calls_of_step(step, n=60, classes=3):
    """Two calls (two FPN levels) per iteration, with ignored rows and background."""
    gen = torch.Generator().manual_seed(step)
    out = []
    for level in range(2):
        rows = n + 10 * level
        pred = torch.randn(rows, classes, generator=gen) * (1 + step) - 2
        labels = torch.randint(0, classes + 1, (rows,), generator=gen)
        labels[: rows // 2] = classes  # half background
        weights = (torch.rand(rows, generator=gen) > 0.2).float()
        out.append((pred, labels, weights))
    return out


def expected_shares(calls, by_hand, negative_g=0.3, hard_g=0.5):
    """The window's shares from each call's gradient, computed by ``by_hand`` and autograd."""
    grad_total = grad_pos = grad_neg_hi = valid_n = pos_n = neg_hi = pos_hard = 0.0
    for pred, labels, weights in calls:
        x = pred.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(by_hand(x, labels, weights), x)
        t = F.one_hot(labels, pred.shape[1] + 1)[:, :-1].bool()
        valid = (weights[:, None] > 0).expand_as(t)
        positive = t & valid
        negative = valid & ~t
        p = pred.sigmoid()
        grad_total += grad.abs()[valid].sum().item()
        grad_pos += grad.abs()[positive].sum().item()
        grad_neg_hi += grad.abs()[negative & (p >= negative_g)].sum().item()
        valid_n += valid.sum().item()
        pos_n += positive.sum().item()
        neg_hi += (negative & (p >= negative_g)).sum().item()
        pos_hard += (positive & (1 - p >= hard_g)).sum().item()
    return dict(pos_share=grad_pos / grad_total, pos_frac=pos_n / valid_n,
                neg_overlap=neg_hi / (valid_n - pos_n), pos_hard=pos_hard / pos_n,
                neg_overlap_share=grad_neg_hi / grad_total)


def drive(hook, runner, model, steps_per_epoch, epochs=1, start=0):
    """Train-loop calls of the hook around real loss calls and backward passes."""
    inputs = {}
    for epoch in range(epochs):
        hook.before_train_epoch(runner)
        for batch_idx in range(steps_per_epoch):
            step = start + epoch * steps_per_epoch + batch_idx + 1
            runner.iter = step - 1
            hook.before_train_iter(runner, batch_idx)
            calls = calls_of_step(step)
            inputs[step] = calls
            leaves = [pred.clone().requires_grad_(True) for pred, _, _ in calls]
            total = sum(model.bbox_head.loss_cls(x, labels, weights, avg_factor=7.0)
                        for x, (_, labels, weights) in zip(leaves, calls))
            total.backward()
            hook.after_train_iter(runner, batch_idx)
    return inputs


def logged(runner, key):
    return list(runner.message_hub.get_scalar(f'train/cls_grad/{key}').data[0])


def test_focal_loss_shares_pooled_over_each_window():
    """Two epochs of 5 iterations, interval 2: windows (1, 2), (3, 4), (5,), (6, 7), ...;
    mmdet's FocalLoss against the focal loss written out (autograd on both)."""
    model = Head(FocalLoss(use_sigmoid=True, gamma=2.0, alpha=0.25))
    runner = fake_runner(model, interval=2, iters=5, hub='cls_grad_focal')
    hook = ClsGradientShareHook()
    hook.before_train(runner)
    assert hook.interval == 2
    inputs = drive(hook, runner, model, steps_per_epoch=5, epochs=2)
    windows = [(1, 2), (3, 4), (5,), (6, 7), (8, 9), (10,)]
    for key in ('pos_share', 'pos_frac', 'neg_overlap', 'neg_overlap_share', 'pos_hard'):
        got = logged(runner, key)
        assert len(got) == len(windows), key
        for value, steps in zip(got, windows):
            calls = [c for s in steps for c in inputs[s]]
            assert value == pytest.approx(expected_shares(calls, focal_by_hand)[key],
                                          rel=1e-5), (key, steps)
    hook.after_train(runner)
    # unhooked: more loss calls change nothing
    before = hook.totals.clone()
    x = torch.zeros(4, 3, requires_grad=True)
    model.bbox_head.loss_cls(x, torch.zeros(4, dtype=torch.long), torch.ones(4)).backward()
    assert torch.equal(hook.totals, before)


def test_ghmc_share_is_its_region_weights_times_g():
    """GHM-C without momentum, one call: the gradient on an element is beta_j * g, with
    beta_j = valid / (R_j * non-empty regions); the hook reads the same split."""
    model = Head(GHMCLoss(bins=10, momentum=0.0))
    runner = fake_runner(model, interval=1, iters=1, hub='cls_grad_ghmc')
    hook = ClsGradientShareHook()
    hook.before_train(runner)
    pred, labels, weights = calls_of_step(3)[0]
    hook.before_train_epoch(runner)
    hook.before_train_iter(runner, 0)
    x = pred.clone().requires_grad_(True)
    model.bbox_head.loss_cls(x, labels, weights).backward()
    hook.after_train_iter(runner, 0)
    t = F.one_hot(labels, 4)[:, :-1].float()
    valid = (weights[:, None] > 0).expand_as(t)
    g = (pred.sigmoid() - t).abs()
    region = torch.clamp((g * 10).floor().long(), max=9)
    counts = torch.bincount(region[valid], minlength=10).double()
    beta = valid.sum() / counts[region] / (counts > 0).sum()
    contribution = (beta * g) * valid
    expected = (contribution * t).sum() / contribution.sum()
    assert logged(runner, 'pos_share')[-1] == pytest.approx(expected.item(), rel=1e-5)


def test_ignored_rows_are_left_out_and_an_all_ignored_window_logs_nothing():
    model = Head(FocalLoss(use_sigmoid=True))
    runner = fake_runner(model, interval=1, iters=2, hub='cls_grad_ignored')
    hook = ClsGradientShareHook()
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    pred = torch.tensor([[3.0, -3.0], [0.0, 0.0], [-1.0, 2.0]])
    labels = torch.tensor([0, 2, 1])
    for batch_idx, weights in enumerate((torch.tensor([1.0, 1.0, 0.0]), torch.zeros(3))):
        hook.before_train_iter(runner, batch_idx)
        x = pred.clone().requires_grad_(True)
        model.bbox_head.loss_cls(x, labels, weights, avg_factor=1.0).backward()
        hook.after_train_iter(runner, batch_idx)
    # first window: rows 0 and 1 (4 elements, 1 positive); second: nothing counted
    assert logged(runner, 'pos_frac') == [pytest.approx(0.25)]
    # row 1's two negatives score p = 0.5 >= 0.3; row 0's negative scores p = 0.05
    assert logged(runner, 'neg_overlap') == [pytest.approx(2 / 3)]
    assert logged(runner, 'pos_hard') == [pytest.approx(0.0)]  # the positive scores 0.95


def test_nonfinite_gradients_are_counted_and_left_out():
    from mmdet_ghm.analysis.gradient_share import (FIELDS, element_masks, gradient_sums,
                                                   overlapping_negatives)
    valid, positive = element_masks(torch.tensor([0, 1]), None, 2)
    overlapping = overlapping_negatives(torch.tensor([[0.0, 0.0], [5.0, 0.0]]), valid, positive)
    assert overlapping.tolist() == [[False, True], [True, False]]
    sums = gradient_sums(torch.tensor([[1.0, float('inf')], [float('nan'), 2.0]]), valid,
                         positive, overlapping)
    assert dict(zip(FIELDS[:4], sums.tolist())) == dict(grad_total=3.0, grad_pos=3.0,
                                                        grad_neg_overlap=0.0, nonfinite=2.0)


def test_element_masks_take_row_and_element_weights():
    from mmdet_ghm.analysis.gradient_share import element_masks
    labels = torch.tensor([0, 2, 1])
    valid, positive = element_masks(labels, torch.tensor([1.0, 1.0, 0.0]), 2)
    assert valid.tolist() == [[True, True], [True, True], [False, False]]
    assert positive.tolist() == [[True, False], [False, False], [False, False]]
    _, positive = element_masks(labels, torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0]]), 2)
    assert positive.tolist() == [[True, False], [False, False], [False, True]]


def test_no_host_copy_between_logging_iterations(monkeypatch):
    model = Head(FocalByHand())
    runner = fake_runner(model, interval=3, iters=6, hub='cls_grad_sync')
    hook = ClsGradientShareHook()
    hook.before_train(runner)
    copies = record_host_copies(monkeypatch)
    hook.before_train_epoch(runner)
    for batch_idx in range(6):
        runner.iter = batch_idx
        pred, labels, weights = calls_of_step(batch_idx)[0]
        x = pred.clone().requires_grad_(True)
        copies.clear()
        with OpRecorder() as mode:
            hook.before_train_iter(runner, batch_idx)
            model.bbox_head.loss_cls(x, labels, weights, avg_factor=3.0).backward()
            hook.after_train_iter(runner, batch_idx)
        if batch_idx in (2, 5):
            assert copies == ['cpu', 'tolist'] and mode.host_reads == [], copies
        else:
            assert copies == [] and mode.host_reads == [], (batch_idx, copies, mode.host_reads)
    monkeypatch.undo()
    assert len(logged(runner, 'pos_share')) == 2


def test_keyword_calls_and_quality_targets_are_read():
    model = Head(GHMCLoss(bins=10))
    runner = fake_runner(model, interval=1, iters=1, hub='cls_grad_kwargs')
    hook = ClsGradientShareHook()
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    hook.before_train_iter(runner, 0)
    x = torch.tensor([[4.0], [-4.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    model.bbox_head.loss_cls(x, target=(labels, torch.tensor([1.0, 0.0])),
                             label_weight=torch.ones(2)).backward()
    hook.after_train_iter(runner, 0)
    assert logged(runner, 'pos_frac') == [pytest.approx(0.5)]


def test_softmax_missing_and_bad_inputs_are_refused():
    runner = fake_runner(Head(CrossEntropyLoss(use_sigmoid=False)), 1, 1, 'cls_grad_bad')
    with pytest.raises(ValueError, match='softmax'):
        ClsGradientShareHook().before_train(runner)
    assert sigmoid_cls_loss(runner.model, 'bbox_head.loss_cls') is None
    with pytest.raises(ValueError, match="no module 'head.loss'"):
        ClsGradientShareHook(loss='head.loss').before_train(runner)
    model = Head(FocalLoss(use_sigmoid=True))
    assert sigmoid_cls_loss(model, 'bbox_head.loss_cls') is model.bbox_head.loss_cls
    runner = fake_runner(model, 1, 1, 'cls_grad_bad2')
    ClsGradientShareHook().before_train(runner)
    x = torch.zeros(4, 3, requires_grad=True)
    with pytest.raises(ValueError, match=r'labels must be integers of shape \(4,\).*\(3,\)'):
        model.bbox_head.loss_cls(x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r'label weights must have shape.*got \(4, 2\)'):
        model.bbox_head.loss_cls(x, torch.zeros(4, dtype=torch.long), torch.ones(4, 2))


@pytest.mark.parametrize('kwargs, match', [
    (dict(interval=0), 'interval'), (dict(negative_g=1.0), 'negative_g'),
    (dict(hard_g=True), 'hard_g'), (dict(loss=''), 'loss')])
def test_bad_settings_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClsGradientShareHook(**kwargs)
