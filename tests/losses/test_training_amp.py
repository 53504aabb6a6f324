"""Training through an AMP grad scaler: a NaN batch is skipped, GHM state stays clean.

A tiny RetinaNet head with GHM-C + GHM-R trains with ``torch.amp.GradScaler``
(CPU mode) and bfloat16 autocast. One step gets a NaN in one feature element,
which the convolutions spread to many logits and box deltas: that step must be
skipped by the scaler (parameters unchanged, scale halved), the GHM EMA buffers
must hold exactly what the finite elements put there, and the next step must
train normally, with the values of a run that never saw the bad elements.
"""
import copy

import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import mmdet_ghm  # noqa: F401  (registers the losses)

pytestmark = pytest.mark.skipif(
    not hasattr(torch.amp, 'GradScaler'),
    reason="torch.amp.GradScaler('cpu') needs torch >= 2.3")

IMAGE = 64
STRIDES = (8, 16)


def tiny_retina_head():
    return MODELS.build(dict(
        type='RetinaHead', num_classes=3, in_channels=8, feat_channels=8, stacked_convs=1,
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                              scales_per_octave=1, ratios=[0.5, 1.0], strides=list(STRIDES)),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                        target_stds=[1.0] * 4),
        loss_cls=dict(type='GHMCLoss', bins=30, momentum=0.75, use_sigmoid=True,
                      loss_weight=1.0),
        loss_bbox=dict(type='GHMRLoss', mu=0.02, bins=10, momentum=0.7, loss_weight=10.0),
        train_cfg=ConfigDict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                          min_pos_iou=0, ignore_iof_thr=-1),
            sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1,
            debug=False)))


def data_samples(num_images=2):
    samples = []
    for i in range(num_images):
        sample = DetDataSample(metainfo=dict(img_shape=(IMAGE, IMAGE), pad_shape=(IMAGE, IMAGE),
                                             batch_input_shape=(IMAGE, IMAGE), scale_factor=(1, 1)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[8.0, 8.0, 40.0, 36.0], [30.0 + i, 20.0, 60.0, 56.0]]),
            labels=torch.tensor([0, 2]))
        samples.append(sample)
    return samples


def features(seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 8, IMAGE // s, IMAGE // s, generator=generator) for s in STRIDES]


class MaskNonFinite(nn.Module):
    """Reference: give a GHM loss only the finite elements (others: weight 0, value 0)."""

    def __init__(self, loss):
        super().__init__()
        self.loss = loss

    def forward(self, pred, target, weight, **kwargs):
        finite = pred.isfinite()
        if weight.dim() < pred.dim():
            weight = weight.unsqueeze(-1).expand_as(pred)
        weight = weight * finite
        return self.loss(torch.where(finite, pred, torch.zeros_like(pred)), target, weight,
                         **kwargs)


def total_loss(head, feats, samples):
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = head.loss(feats, samples)
    return sum(sum(values) for values in losses.values())


def train_step(head, optimizer, scaler, feats, samples):
    optimizer.zero_grad()
    loss = total_loss(head, feats, samples)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def parameters(head):
    return [p.detach().clone() for p in head.parameters()]


def test_nan_step_is_skipped_and_ghm_state_holds_only_finite_elements(eager_kernels):
    torch.manual_seed(0)
    head = tiny_retina_head()
    samples = data_samples()
    optimizer = torch.optim.SGD(head.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler('cpu', init_scale=1024.0, growth_interval=1000)

    loss = train_step(head, optimizer, scaler, features(1), samples)  # a normal step first
    assert torch.isfinite(loss)
    assert scaler.get_scale() == 1024.0

    bad = features(2)
    bad[0][1, 3, 4, 4] = float('nan')  # one element of one feature map
    reference = copy.deepcopy(head)  # same parameters and GHM state as before the bad step
    reference.loss_cls = MaskNonFinite(reference.loss_cls)
    reference.loss_bbox = MaskNonFinite(reference.loss_bbox)
    before = parameters(head)

    loss = train_step(head, optimizer, scaler, bad, samples)
    assert torch.isnan(loss)
    assert scaler.get_scale() == 512.0  # the scaler found NaN gradients ...
    assert all(torch.equal(a, b) for a, b in zip(before, parameters(head)))  # ... and skipped
    with torch.no_grad():
        assert torch.isfinite(total_loss(reference, bad, samples))
    # The bad elements counted nowhere: each EMA holds what the finite elements put there.
    for ours, ref in ((head.loss_cls, reference.loss_cls.loss),
                      (head.loss_bbox, reference.loss_bbox.loss)):
        assert torch.isfinite(ours.acc_sum).all()
        assert torch.equal(ours.acc_sum, ref.acc_sum)
    # Many elements were bad, so masking them mattered (else the test would prove nothing).
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        cls_scores, _ = head(bad)
    assert (~cls_scores[0].isfinite()).sum() >= 9 * 2 * 3

    good = features(3)
    loss = train_step(head, optimizer, scaler, good, samples)
    with torch.no_grad():
        expected = total_loss(reference, good, samples)
    assert torch.isfinite(loss)
    assert torch.equal(loss, expected)  # as if the bad elements had never been there
    assert scaler.get_scale() == 512.0
    assert any(not torch.equal(a, b) for a, b in zip(before, parameters(head)))  # it trained
    for ours, ref in ((head.loss_cls, reference.loss_cls.loss),
                      (head.loss_bbox, reference.loss_bbox.loss)):
        assert torch.equal(ours.acc_sum, ref.acc_sum)
