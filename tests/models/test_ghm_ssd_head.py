"""GHMSSDHead: one classification-loss call per batch, SSD's box loss, sigmoid losses rejected."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from mmdet_ghm.losses import GHMCLoss
from mmdet_ghm.losses.ghm_c_softmax import softmax_gradient_norm
from mmdet_ghm.models import GHMSSDHead

NUM_CLASSES = 5
IMG = 128
FEATS = (16, 8, 4)  # strides 8, 16, 32
ANCHORS = dict(type='SSDAnchorGenerator', scale_major=False, input_size=IMG,
               strides=[8, 16, 32], ratios=([2], [2, 3], [2, 3]),
               min_sizes=[12, 24, 48], max_sizes=[24, 48, 96])
TRAIN_CFG = dict(
    assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.,
                  ignore_iof_thr=-1, gt_max_assign_all=False),
    sampler=dict(type='PseudoSampler'), smoothl1_beta=1., allowed_border=-1, pos_weight=-1,
    neg_pos_ratio=3, debug=False)
GHM = dict(type='GHMCLoss', use_sigmoid=False, bins=30, momentum=0.75)


def make_head(head_type=GHMSSDHead, loss_cls=GHM):
    return head_type(num_classes=NUM_CLASSES, in_channels=(8, 8, 8), anchor_generator=ANCHORS,
                     bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                                     target_stds=[0.1, 0.1, 0.2, 0.2]),
                     train_cfg=ConfigDict(TRAIN_CFG), loss_cls=loss_cls)


def make_batch(head):
    """Head outputs, ground truth and metas of 2 images with 2 and 1 objects."""
    boxes = [torch.tensor([[10., 10., 40., 42.], [60., 50., 110., 100.]]),
             torch.tensor([[30., 70., 62., 120.]])]
    labels = [torch.tensor([0, 3]), torch.tensor([4])]
    gts = [InstanceData(bboxes=b, labels=l) for b, l in zip(boxes, labels)]
    metas = [dict(img_shape=(IMG, IMG), pad_shape=(IMG, IMG), batch_input_shape=(IMG, IMG))
             for _ in boxes]
    priors = head.prior_generator.num_base_priors
    cls_scores = [torch.randn(2, a * (NUM_CLASSES + 1), s, s) * 2 for a, s in zip(priors, FEATS)]
    bbox_preds = [torch.randn(2, a * 4, s, s) * 0.5 for a, s in zip(priors, FEATS)]
    return cls_scores, bbox_preds, gts, metas


def twice(batch):
    """The same images twice: every anchor, target and score duplicated."""
    cls_scores, bbox_preds, gts, metas = batch
    return ([torch.cat([s, s]) for s in cls_scores], [torch.cat([b, b]) for b in bbox_preds],
            gts + gts, metas + metas)


def flat(outputs, width):
    """(B * A, width) in image-major order, levels concatenated inside each image."""
    b = outputs[0].shape[0]
    return torch.cat([o.permute(0, 2, 3, 1).reshape(b, -1, width) for o in outputs],
                     1).reshape(-1, width)


def batch_targets(head, batch):
    """Labels, label weights, box targets and weights (B * A, ...) and the normaliser."""
    cls_scores, _, gts, metas = batch
    anchors, valid = head.get_anchors([s.shape[-2:] for s in cls_scores], metas, device='cpu')
    labels, label_w, box_t, box_w, avg_factor = head.get_targets(anchors, valid, gts, metas)
    return (torch.cat(labels, 1).reshape(-1), torch.cat(label_w, 1).reshape(-1),
            torch.cat(box_t, 1).reshape(-1, 4), torch.cat(box_w, 1).reshape(-1, 4), avg_factor)


def test_batch_losses_equal_a_direct_computation(eager_kernels):
    head = make_head()
    batch = make_batch(head)
    calls = []
    head.loss_cls.register_forward_hook(lambda m, args, out: calls.append(args[0].shape))
    losses = head.loss_by_feat(*batch)
    assert [v.shape for v in losses.values()] == [(), ()]  # scalars, not per-image lists
    num_anchors = sum(a * s * s for a, s in zip(head.prior_generator.num_base_priors, FEATS))
    assert calls == [(2 * num_anchors, NUM_CLASSES + 1)]  # one call, both images' anchors
    labels, label_w, box_t, box_w, avg_factor = batch_targets(head, batch)
    num_pos = [int(((labels[i * num_anchors:(i + 1) * num_anchors]) < NUM_CLASSES).sum())
               for i in range(2)]
    assert min(num_pos) > 0 and avg_factor == sum(num_pos)  # SSD's normaliser
    scores = flat(batch[0], NUM_CLASSES + 1)
    expected_cls = GHMCLoss(bins=30, momentum=0.75, use_sigmoid=False)(scores, labels, label_w)
    torch.testing.assert_close(losses['loss_cls'], expected_cls, rtol=1e-6, atol=0)
    # smooth L1 (beta 1) summed over the batch, divided by the batch's positives
    d = (flat(batch[1], 4) - box_t).abs()
    sl1 = torch.where(d < 1, 0.5 * d * d, d - 0.5)
    torch.testing.assert_close(losses['loss_bbox'], (sl1 * box_w).sum() / sum(num_pos),
                               rtol=1e-6, atol=0)


def test_duplicated_batch_gives_the_same_losses(eager_kernels):
    head = make_head()
    batch = make_batch(head)
    once = head.loss_by_feat(*batch)
    head_twice = make_head()  # fresh EMA
    doubled = head_twice.loss_by_feat(*twice(batch))
    for key in ('loss_cls', 'loss_bbox'):
        got = torch.stack(list(doubled[key])).sum() if isinstance(doubled[key], (list, tuple)) \
            else doubled[key]
        want = torch.stack(list(once[key])).sum() if isinstance(once[key], (list, tuple)) \
            else once[key]
        torch.testing.assert_close(got, want, rtol=1e-6, atol=0, msg=key)
    # the EMA saw the same density, with twice the counts
    torch.testing.assert_close(head_twice.loss_cls.acc_sum, 2 * head.loss_cls.acc_sum,
                               rtol=1e-6, atol=0)


def test_ema_is_updated_once_per_batch_with_its_counts(eager_kernels):
    head = make_head()
    batch = make_batch(head)
    head.loss_by_feat(*batch)
    labels, label_w, *_ = batch_targets(head, batch)
    g = softmax_gradient_norm(flat(batch[0], NUM_CLASSES + 1), labels)[label_w > 0]
    edges = head.loss_cls.edges.numpy()
    region = np.searchsorted(edges, g.numpy(), side='right') - 1
    counts = np.bincount(region, minlength=30).astype(np.float32)
    assert counts.sum() == (label_w > 0).sum() > 1000
    np.testing.assert_allclose(head.loss_cls.acc_sum.numpy(), 0.25 * counts, rtol=1e-6)


@pytest.mark.parametrize('loss_cls', [
    dict(type='GHMCLoss'),  # sigmoid by default
    dict(type='GHMCLoss', use_sigmoid=True, bins=30),
    dict(type='CrossEntropyLoss', use_sigmoid=True),
    dict(type='FocalLoss'),
], ids=['ghmc-default', 'ghmc-sigmoid', 'ce-sigmoid', 'focal'])
def test_sigmoid_losses_are_rejected_naming_the_config(loss_cls):
    with pytest.raises(ValueError, match=rf"use_sigmoid=False.*'type': '{loss_cls['type']}'"):
        make_head(loss_cls=loss_cls)


@pytest.mark.parametrize('loss_cls', [GHM, dict(type='CrossEntropyLoss', use_sigmoid=False)],
                         ids=['ghmc-softmax', 'ce-softmax'])
def test_softmax_losses_are_accepted(loss_cls):
    assert getattr(make_head(loss_cls=loss_cls).loss_cls, 'use_sigmoid') is False


def test_softmax_cross_entropy_is_summed_over_the_batch_and_divided_by_the_positives():
    # a loss that uses avg_factor gets SSD's normaliser (no negative mining)
    head = make_head(loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False))
    batch = make_batch(head)
    losses = head.loss_by_feat(*batch)
    labels, label_w, *_, avg_factor = batch_targets(head, batch)
    ce = F.cross_entropy(flat(batch[0], NUM_CLASSES + 1), labels, reduction='none')
    torch.testing.assert_close(losses['loss_cls'], (ce * label_w).sum() / avg_factor,
                               rtol=1e-6, atol=0)
