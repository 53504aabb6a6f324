"""Per-level GHM-C for heads that flatten levels (GHMFCOSHead, PerLevelLoss).

The reference is what RetinaNet's head does: one ``loss_cls`` call per FPN
level on that level's ``B * H * W * A`` rows (images inside the level), the
levels sharing the loss module and its EMA, and the per-level losses summed
in level order (MMEngine's ``parse_losses``).
"""
import copy

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from mmdet.models.dense_heads import FCOSHead
from mmdet_ghm.losses import GHMCLoss
from mmdet_ghm.models import GHMFCOSHead, PerLevelLoss, level_sizes, per_level_cls_loss

NUM_CLASSES = 5
BATCH = 2
FEATS = (16, 8, 4)  # a 128 px image at strides 8, 16, 32
GHMC = dict(type='GHMCLoss', bins=30, momentum=0.75, use_sigmoid=True, loss_weight=1.0)


def level_data(seed=0, sizes=(BATCH * 16 * 16, BATCH * 8 * 8, BATCH * 4 * 4)):
    """Per-level logits, labels (mostly background) and 0/1 label weights."""
    g = torch.Generator().manual_seed(seed)
    preds, labels, weights = [], [], []
    for n in sizes:
        preds.append(torch.randn(n, NUM_CLASSES, generator=g) * 3 - 2)
        lab = torch.full((n,), NUM_CLASSES, dtype=torch.long)
        pos = torch.rand(n, generator=g) < 0.05
        lab[pos] = torch.randint(0, NUM_CLASSES, (int(pos.sum()),), generator=g)
        labels.append(lab)
        weights.append((torch.rand(n, generator=g) > 0.1).float())
    return preds, labels, weights


def per_level_reference(loss, preds, labels, weights, avg_factor=7.0):
    """RetinaNet's way: one call per level, losses summed in level order."""
    leaves = [p.clone().requires_grad_() for p in preds]
    per_level = [loss(p, t, w, avg_factor=avg_factor) for p, t, w in zip(leaves, labels, weights)]
    total = sum(per_level)
    total.backward()
    return total, torch.cat([p.grad for p in leaves])


def flattened(loss, preds, labels, weights, avg_factor=7.0):
    """The flattened call (FCOS's way) on the same rows, level-major."""
    leaf = torch.cat(preds).clone().requires_grad_()
    total = loss(leaf, torch.cat(labels), torch.cat(weights), avg_factor=avg_factor)
    total.backward()
    return total, leaf.grad


def test_per_level_loss_equals_retinanet_calls_over_iterations():
    ref, ours, flat = (GHMCLoss(bins=30, momentum=0.75) for _ in range(3))
    sizes = None
    for step in range(3):  # the shared EMA evolves over calls
        preds, labels, weights = level_data(seed=step)
        sizes = [p.shape[0] for p in preds]
        ref_loss, ref_grad = per_level_reference(ref, preds, labels, weights)
        our_loss, our_grad = flattened(PerLevelLoss(ours, sizes), preds, labels, weights)
        flat_loss, flat_grad = flattened(flat, preds, labels, weights)
        assert torch.equal(our_loss, ref_loss), step
        assert torch.equal(our_grad, ref_grad), step
        assert torch.equal(ours.acc_sum, ref.acc_sum), step
        # the flattened density is another loss
        assert not torch.allclose(flat_loss, ref_loss, rtol=1e-3), step
        assert not torch.allclose(flat_grad, ref_grad, rtol=1e-3), step
        assert not torch.allclose(flat.acc_sum, ref.acc_sum, rtol=1e-3), step
    assert ours.acc_sum.sum() > 0


def test_per_level_loss_reduction_none_is_concatenated():
    loss = GHMCLoss(bins=30, momentum=0.75)
    ref = copy.deepcopy(loss)
    preds, labels, weights = level_data()
    sizes = [p.shape[0] for p in preds]
    out = PerLevelLoss(loss, sizes)(torch.cat(preds), torch.cat(labels), torch.cat(weights),
                                    reduction_override='none')
    expected = torch.cat([ref(p, t, w, reduction_override='none')
                          for p, t, w in zip(preds, labels, weights)])
    assert out.shape == (sum(sizes), NUM_CLASSES)
    assert torch.equal(out, expected)


class Recorder(torch.nn.Module):
    """A loss that records what each call received."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.custom_accuracy = 'seen through the wrapper'

    def forward(self, pred, target, *args, **kwargs):
        self.calls.append((pred, target, args, kwargs))
        return pred.sum()


def test_per_level_loss_splits_every_flattened_argument_and_passes_the_rest():
    sizes = [6, 3, 1]
    rec = Recorder()
    wrapper = PerLevelLoss(rec, sizes)
    pred = torch.arange(10.).reshape(10, 1)
    labels = torch.arange(10)
    scores = torch.arange(10.) / 10
    weight = torch.ones(10, 4)
    factor = torch.tensor(3.)
    out = wrapper(pred, (labels, scores), weight=weight, avg_factor=factor,
                  reduction_override='sum')
    assert torch.equal(out, pred.sum())
    assert wrapper.custom_accuracy == 'seen through the wrapper'
    assert len(rec.calls) == 3
    begin = 0
    for (p, target, args, kwargs), n in zip(rec.calls, sizes):
        assert torch.equal(p, pred[begin:begin + n])
        assert isinstance(target, tuple)
        assert torch.equal(target[0], labels[begin:begin + n])
        assert torch.equal(target[1], scores[begin:begin + n])
        assert torch.equal(kwargs['weight'], weight[begin:begin + n])
        assert kwargs['avg_factor'] is factor  # same avg_factor for every level
        assert kwargs['reduction_override'] == 'sum'
        assert args == ()
        begin += n


def test_per_level_loss_rejects_other_row_counts():
    wrapper = PerLevelLoss(Recorder(), [4, 2], owner='GHMFCOSHead')
    with pytest.raises(ValueError, match=r'6 rows \(levels: \[4, 2\]\); got pred \(5, 3\)'):
        wrapper(torch.zeros(5, 3), torch.zeros(5))


def test_level_sizes_checks_shapes():
    scores = [torch.zeros(2, 3 * 5, 4, 4), torch.zeros(2, 3 * 5, 2, 2)]
    assert level_sizes(scores, 5) == [2 * 3 * 16, 2 * 3 * 4]
    with pytest.raises(ValueError, match=r'cls_scores\[0\] must have shape \(B, A \* 4, H, W\)'):
        level_sizes(scores, 4)


# ---------------------------------------------------------------- the head

def make_head(head_type=GHMFCOSHead, loss_cls=GHMC, **kwargs):
    return head_type(num_classes=NUM_CLASSES, in_channels=8, feat_channels=8, stacked_convs=1,
                     strides=[8, 16, 32], regress_ranges=((-1, 16), (16, 32), (32, 1e8)),
                     norm_cfg=dict(type='GN', num_groups=4, requires_grad=True),
                     loss_cls=loss_cls, **kwargs)


def make_batch(seed=0):
    """Head outputs, ground truth and metas of 2 images of 128 px."""
    g = torch.Generator().manual_seed(seed)
    boxes = [torch.tensor([[10., 10., 30., 34.], [60., 50., 110., 100.]]),
             torch.tensor([[30., 70., 62., 120.], [90., 8., 104., 20.]])]
    labels = [torch.tensor([0, 3]), torch.tensor([4, 1])]
    gts = [InstanceData(bboxes=b, labels=l) for b, l in zip(boxes, labels)]
    metas = [dict(img_shape=(128, 128), pad_shape=(128, 128), batch_input_shape=(128, 128))
             for _ in boxes]
    cls_scores = [(torch.randn(BATCH, NUM_CLASSES, s, s, generator=g) * 2 - 3).requires_grad_()
                  for s in FEATS]
    bbox_preds = [torch.rand(BATCH, 4, s, s, generator=g) + 0.5 for s in FEATS]
    centerness = [torch.randn(BATCH, 1, s, s, generator=g) for s in FEATS]
    return cls_scores, bbox_preds, centerness, gts, metas


def test_head_per_level_matches_retinanet_style_calls_and_keeps_the_module_tree():
    head = make_head()
    keys = list(head.state_dict())
    modules = [name for name, _ in head.named_modules()]
    reference = GHMCLoss(bins=30, momentum=0.75)
    for step in range(2):
        cls_scores, bbox_preds, centerness, gts, metas = make_batch(step)
        losses = head.loss_by_feat(cls_scores, bbox_preds, centerness, gts, metas)
        losses['loss_cls'].backward()
        # reference: FCOS's targets, then one call per level as RetinaNet does
        points = head.prior_generator.grid_priors([s.shape[-2:] for s in cls_scores],
                                                  device='cpu')
        labels, _ = head.get_targets(points, gts)
        leaves = [s.detach().clone().requires_grad_() for s in cls_scores]
        expected = sum(reference(s.permute(0, 2, 3, 1).reshape(-1, NUM_CLASSES), t,
                                 avg_factor=1.0) for s, t in zip(leaves, labels))
        expected.backward()
        assert torch.equal(losses['loss_cls'], expected), step
        assert torch.equal(head.loss_cls.acc_sum, reference.acc_sum), step
        for ours, ref in zip(cls_scores, leaves):
            assert torch.equal(ours.grad, ref.grad), step
    assert isinstance(head.loss_cls, GHMCLoss)
    assert 'loss_cls' not in head.__dict__
    assert list(head.state_dict()) == keys
    assert 'loss_cls.acc_sum' in keys
    assert [name for name, _ in head.named_modules()] == modules


def test_head_flattened_mode_is_fcos_head():
    flat = make_head(cls_loss_per_level=False)
    fcos = make_head(FCOSHead)
    per_level = make_head()
    fcos.load_state_dict(flat.state_dict())
    per_level.load_state_dict(flat.state_dict())
    batch = make_batch()
    a = flat.loss_by_feat(*batch)
    b = fcos.loss_by_feat(*batch)
    c = per_level.loss_by_feat(*batch)
    for key in ('loss_cls', 'loss_bbox', 'loss_centerness'):
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(flat.loss_cls.acc_sum, fcos.loss_cls.acc_sum)
    # only the classification loss depends on the mode
    assert not torch.allclose(c['loss_cls'], a['loss_cls'], rtol=1e-3)
    assert not torch.allclose(per_level.loss_cls.acc_sum, flat.loss_cls.acc_sum, rtol=1e-3)
    for key in ('loss_bbox', 'loss_centerness'):
        assert torch.equal(c[key], a[key]), key


def test_head_focal_loss_is_the_same_in_both_modes():
    fl = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0)
    per_level = make_head(loss_cls=fl)
    flat = make_head(loss_cls=fl, cls_loss_per_level=False)
    flat.load_state_dict(per_level.state_dict())
    batch = make_batch()
    torch.testing.assert_close(per_level.loss_by_feat(*batch)['loss_cls'],
                               flat.loss_by_feat(*batch)['loss_cls'], rtol=1e-6, atol=0)


def test_head_restores_loss_cls_when_the_loss_raises():
    head = make_head()
    cls_scores, bbox_preds, centerness, gts, metas = make_batch()
    gts[0].labels = torch.tensor([0, NUM_CLASSES + 3])  # a label outside [0, C]
    with pytest.raises(Exception):
        head.loss_by_feat(cls_scores, bbox_preds, centerness, gts, metas)
    assert 'loss_cls' not in head.__dict__
    assert isinstance(head.loss_cls, GHMCLoss)


def test_nested_shadowing_is_refused():
    head = make_head()
    with per_level_cls_loss(head, [1]):
        with pytest.raises(RuntimeError, match='already shadowed'):
            with per_level_cls_loss(head, [1]):
                pass


@pytest.mark.parametrize('value', ['yes', 1, None])
def test_cls_loss_per_level_must_be_bool(value):
    with pytest.raises(TypeError, match=f'cls_loss_per_level must be True or False, '
                                        f'got {value!r}'):
        make_head(cls_loss_per_level=value)


def test_registered_and_built_from_config():
    from mmdet.registry import MODELS
    cfg = ConfigDict(type='GHMFCOSHead', num_classes=NUM_CLASSES, in_channels=8,
                     feat_channels=8, stacked_convs=1, strides=[8, 16, 32],
                     norm_cfg=dict(type='GN', num_groups=4, requires_grad=True),
                     loss_cls=GHMC, cls_loss_per_level=False)
    head = MODELS.build(cfg)
    assert type(head) is GHMFCOSHead and head.cls_loss_per_level is False
