"""Gradient-norm analysis: core functions against autograd and direct
computations, head targets against the head's own loss, a smoke run of the tool."""
import importlib.util
import json
import math
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmdet_ghm.analysis.gradient_stats import (GradientStats, classification_gradient_norms,
                                               focal_element_gradient_norm,
                                               focal_gradient_norm, head_targets,
                                               regression_gradient_norms,
                                               smooth_l1_gradient_norm)
from mmdet_ghm.losses import GHMCLoss, GHMRLoss

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODEL_CFG = osp.join(REPO, 'configs/_base_/models/retinanet_tiny-r18_fpn.py')
BASE = osp.join(REPO, 'configs/synthetic/retinanet_tiny-r18_fpn_fl_synthetic-shapes.py')


def _load_tool():
    path = osp.join(REPO, 'tools/analysis_tools/analyze_gradient_density.py')
    spec = importlib.util.spec_from_file_location('analyze_gradient_density', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_classification_norms_match_a_loop():
    logits, labels = torch.randn(6, 3), torch.tensor([0, 3, 2, 3, 1, 0])
    weights = torch.tensor([1., 1., 0., 1., 1., 0.])
    g, pos = classification_gradient_norms(logits, labels, weights)
    expected_g, expected_pos = [], []
    for i in range(6):
        if weights[i] > 0:
            for c in range(3):
                t = float(labels[i] == c)
                expected_g.append(abs(torch.sigmoid(logits[i, c]).item() - t))
                expected_pos.append(bool(t))
    np.testing.assert_allclose(g.numpy(), expected_g, rtol=1e-6)
    assert pos.tolist() == expected_pos
    with pytest.raises(ValueError, match=r'got \(6, 3\), \(5,\)'):
        classification_gradient_norms(logits, labels[:5], weights[:5])


@pytest.mark.parametrize('target', [0.0, 1.0])
def test_focal_gradient_norm_is_autograds(target):
    x = torch.linspace(-6, 6, 101, dtype=torch.float64, requires_grad=True)
    t = torch.full_like(x, target)
    p = x.sigmoid()
    pt = torch.where(t > 0, p, 1 - p)
    fl = -((1 - pt) ** 2) * torch.log(pt)
    (grad,) = torch.autograd.grad(fl.sum(), x)
    g = (p - t).abs().detach()
    torch.testing.assert_close(focal_gradient_norm(g, 2.0), grad.abs(), rtol=1e-6, atol=1e-12)


def test_smooth_l1_and_asl1_norms_are_autograds():
    d = torch.linspace(-0.5, 0.5, 201, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(F.smooth_l1_loss(d, torch.zeros_like(d), beta=0.11,
                                                   reduction='sum'), d)
    torch.testing.assert_close(smooth_l1_gradient_norm(d.detach().abs(), 0.11), grad.abs())
    asl1 = torch.sqrt(d * d + 0.02 ** 2) - 0.02
    (grad,) = torch.autograd.grad(asl1.sum(), d)
    g_r, d_abs = regression_gradient_norms(d.detach().float()[:, None].expand(-1, 4),
                                           torch.zeros(201, 4), torch.ones(201, 4))
    torch.testing.assert_close(g_r.reshape(201, 4)[:, 0].double(), grad.abs(), rtol=1e-5,
                               atol=1e-7)
    with pytest.raises(ValueError, match='mu must be > 0, got 0'):
        regression_gradient_norms(d.detach(), d.detach(), d.detach(), mu=0)


def test_ghm_totals_equal_the_ghm_losses_gradients(eager_kernels):
    """Per-region totals of beta_j * g equal |grad| of GHMCLoss / GHMRLoss (momentum 0)."""
    logits = torch.randn(400, 5) * 3
    labels = torch.randint(0, 6, (400,))
    weights = (torch.rand(400) > 0.2).float()
    stats = GradientStats(cls_bins=30, reg_bins=10)
    g, pos = classification_gradient_norms(logits, labels, weights)
    stats.update_cls(g, pos)
    pred = logits.clone().requires_grad_()
    GHMCLoss(bins=30, reduction='sum')(pred, labels, weights).backward()
    valid = weights > 0
    grad = pred.grad[valid].abs().reshape(-1).double()
    region = torch.clamp((g * 30).floor().long(), max=29)
    expected = torch.zeros(30, dtype=torch.float64).index_add_(0, region, grad)

    deltas, targets = torch.randn(300, 4) * 0.1, torch.randn(300, 4) * 0.1
    box_w = (torch.rand(300, 1) > 0.5).float().expand(300, 4).contiguous()
    g_r, d_abs = regression_gradient_norms(deltas, targets, box_w)
    stats.update_reg(g_r, d_abs)
    pred = deltas.clone().requires_grad_()
    GHMRLoss(bins=10, reduction='sum')(pred, targets, box_w).backward()
    grad_r = pred.grad[box_w > 0].abs().double()
    region_r = torch.clamp((g_r * 10).floor().long(), max=9)
    expected_r = torch.zeros(10, dtype=torch.float64).index_add_(0, region_r, grad_r)

    res = stats.result()
    cls, reg = res['classification'], res['regression']
    np.testing.assert_allclose(cls['total_gradient']['ghmc'], expected.numpy(), rtol=1e-5)
    np.testing.assert_allclose(reg['total_gradient']['ghmr'], expected_r.numpy(), rtol=1e-5)
    # CE totals are plain sums of g; FL totals carry alpha_t
    np.testing.assert_allclose(cls['total_gradient']['ce'],
                               torch.zeros(30, dtype=torch.float64).index_add_(
                                   0, region, g.double()).numpy(), rtol=1e-6)
    alpha_t = torch.where(pos, 0.25, 0.75).double()
    fl = torch.zeros(30, dtype=torch.float64).index_add_(
        0, region, alpha_t * focal_gradient_norm(g, 2.0))
    np.testing.assert_allclose(cls['total_gradient']['fl'], fl.numpy(), rtol=1e-6)
    assert cls['num_elements'] == int(valid.sum()) * 5
    assert cls['num_positive'] == int(((labels < 5) & valid).sum())
    assert sum(res['histogram']['cls_positive']) + sum(res['histogram']['cls_negative']) \
        == cls['num_elements']
    for part in (cls, reg):
        for share in part['share'].values():
            assert sum(share) == pytest.approx(1.0)
    with pytest.raises(ValueError, match='cls_bins must be an int in \\[1, 254\\], got 0'):
        GradientStats(cls_bins=0)


def _fl(g):
    """|dFL/dx| without alpha, gamma 2, written out for the hand-made example."""
    return g * g * (g - 2 * (1 - g) * math.log(1 - g))


def test_positive_shares_of_a_hand_made_set():
    """Nine one-class anchors in 4 regions; every share below is worked out by hand.

    g (target): 0.1 (t=0) x4, 0.1 (t=1), 0.3 (t=0), 0.6 (t=1), 0.6 (t=0), 0.9 (t=1).
    Regions [0, .25) [.25, .5) [.5, .75) [.75, 1]: counts 5, 1, 2, 1; N = 9, n = 4,
    beta = 9 / (4 R_j) = 0.45, 2.25, 1.125, 2.25.
    """
    g = torch.tensor([.1, .1, .1, .1, .1, .3, .6, .6, .9], dtype=torch.float64)
    t = torch.tensor([0, 0, 0, 0, 1, 0, 1, 0, 1])
    p = torch.where(t == 1, 1 - g, g)
    logits = torch.log(p / (1 - p)).float()[:, None]
    labels = torch.where(t == 1, 0, 1)  # class 0, or background (= 1 class)
    stats = GradientStats(cls_bins=4)
    stats.update_cls(*classification_gradient_norms(logits, labels, torch.ones(9)))
    cls = stats.result()['classification']
    assert cls['counts_positive'] == [1, 0, 1, 1] and cls['counts_negative'] == [4, 1, 1, 0]
    assert (cls['num_positive'], cls['num_negative']) == (3, 6)
    np.testing.assert_allclose(cls['ghm_weights'], [0.45, 2.25, 1.125, 2.25], rtol=1e-6)
    # CE: positives 0.1 + 0.6 + 0.9 = 1.6, negatives 0.4 + 0.3 + 0.6 = 1.3
    # GHM-C: positives 0.045 + 0.675 + 2.025 = 2.745, negatives 0.18 + 0.675 + 0.675 = 1.53
    fl_pos = 0.25 * (_fl(.1) + _fl(.6) + _fl(.9))
    fl_neg = 0.75 * (4 * _fl(.1) + _fl(.3) + _fl(.6))
    expected = dict(
        ce=dict(all=1.6 / 2.9, easiest_region=0.1 / 0.5, hard=1.5 / 2.1),
        # within one region beta is common: GHM-C's split there is CE's
        ghmc=dict(all=2.745 / 4.275, easiest_region=0.2, hard=2.7 / 3.375),
        fl=dict(all=fl_pos / (fl_pos + fl_neg), easiest_region=0.25 / (0.25 + 4 * 0.75),
                hard=0.25 * (_fl(.6) + _fl(.9)) / (0.25 * (_fl(.6) + _fl(.9)) + 0.75 * _fl(.6))))
    for key, parts in expected.items():
        for part, value in parts.items():
            assert cls['gradient_on_positives'][key][part] == pytest.approx(value, rel=1e-5), \
                (key, part)
    assert cls['hard_from'] == 0.5
    np.testing.assert_allclose(cls['share_positive']['ghmc'],
                               np.array([0.045, 0, 0.675, 2.025]) / 4.275, rtol=1e-5)
    np.testing.assert_allclose(cls['share_negative']['ce'], np.array([0.4, 0.3, 0.6, 0]) / 2.9,
                               rtol=1e-5)
    assert cls['positive_fraction_in_region']['ce'][1] == 0
    assert cls['positive_fraction_in_region']['fl'][3] == pytest.approx(1.0)
    # normalised as the losses normalise: CE, FL by the 3 positives, GHM-C by the 9 elements
    assert cls['normalised_total_gradient']['ce']['positive'] == pytest.approx(1.6 / 3, rel=1e-5)
    assert cls['normalised_total_gradient']['ghmc']['negative'] == pytest.approx(1.53 / 9,
                                                                                 rel=1e-5)
    assert cls['normalisers'] == dict(ce=3.0, fl=3.0, ghmc=9.0)
    for key in ('ce', 'fl', 'ghmc'):  # the split adds up to the existing totals and shares
        np.testing.assert_allclose(np.add(cls['total_gradient_positive'][key],
                                          cls['total_gradient_negative'][key]),
                                   cls['total_gradient'][key], rtol=1e-12)
        np.testing.assert_allclose(np.add(cls['share_positive'][key],
                                          cls['share_negative'][key]), cls['share'][key])
    json.dumps(cls, allow_nan=False)
    lines = _load_tool().positive_split_lines(stats.result())
    assert 'GHM-C 64.2 %' in lines[-4] and 'CE 20 %,' in lines[-3]


def test_region_without_gradient_has_no_fraction():
    """A region whose total is 0 (here: no hard elements) gives None, not NaN."""
    stats = GradientStats(cls_bins=2)
    stats.update_cls(torch.tensor([0.1, 0.2]), torch.tensor([True, False]))
    cls = stats.result()['classification']
    assert cls['gradient_on_positives']['ce']['hard'] is None
    assert cls['positive_fraction_in_region']['ce'] == [pytest.approx(0.1 / 0.3), None]
    json.dumps(cls, allow_nan=False)


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (0.0, 0.5), (1.5, 0.75)])
def test_focal_element_gradient_is_autograds_of_sigmoid_focal_loss(gamma, alpha):
    """Analytic |dFL/dx| (alpha included) against autograd of MMDetection's
    py_sigmoid_focal_loss and of torchvision's formula, per element."""
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss
    x = (torch.randn(64, 3, dtype=torch.float64) * 4).requires_grad_()
    t = (torch.rand(64, 3) < 0.3).double()
    (grad,) = torch.autograd.grad(
        py_sigmoid_focal_loss(x, t, gamma=gamma, alpha=alpha, reduction='sum'), x)
    p = x.sigmoid()
    ce = F.binary_cross_entropy_with_logits(x, t, reduction='none')
    p_t = p * t + (1 - p) * (1 - t)
    tv = (alpha * t + (1 - alpha) * (1 - t)) * ce * (1 - p_t) ** gamma  # torchvision
    (grad_tv,) = torch.autograd.grad(tv.sum(), x)
    g = (p - t).abs().detach()
    analytic = focal_element_gradient_norm(g, t > 0, gamma, alpha)
    torch.testing.assert_close(analytic, grad.abs(), rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(analytic, grad_tv.abs(), rtol=1e-9, atol=1e-15)
    if gamma == 0:  # alpha-balanced CE
        torch.testing.assert_close(analytic, (torch.where(t > 0, alpha, 1 - alpha) * g))


def test_positive_split_equals_the_losses_autograd(eager_kernels):
    """Random inputs in two batches: per-region positive / negative totals of GHM-C equal
    |grad| of GHMCLoss (momentum 0, weights from both batches as one call), FL's and CE's
    equal MMDetection's FocalLoss / CrossEntropyLoss (avg_factor = positives)."""
    from mmdet.models.losses import CrossEntropyLoss, FocalLoss
    logits = torch.randn(600, 4) * 3
    labels = torch.randint(0, 5, (600,))
    weights = (torch.rand(600) > 0.2).float()
    stats = GradientStats(cls_bins=30)
    for part in (slice(0, 250), slice(250, 600)):
        stats.update_cls(*classification_gradient_norms(logits[part], labels[part],
                                                        weights[part]))
    cls = stats.result()['classification']
    g, pos = classification_gradient_norms(logits, labels, weights)
    valid = weights > 0
    num_pos = int(pos.sum())
    region = torch.clamp((g * 30).floor().long(), max=29)

    def by_target(pred_grad):
        grad = pred_grad[valid].abs().reshape(-1).double()
        return [torch.zeros(30, dtype=torch.float64).index_add_(0, region[m], grad[m]).numpy()
                for m in (pos, ~pos)]

    losses = dict(
        ghmc=lambda x: GHMCLoss(bins=30, momentum=0, reduction='mean')(x, labels, weights),
        fl=lambda x: FocalLoss()(x, labels, weights, avg_factor=num_pos),
        ce=lambda x: CrossEntropyLoss(use_sigmoid=True)(x, labels, weights,
                                                        avg_factor=num_pos))
    for key, loss in losses.items():
        pred = logits.clone().requires_grad_()
        loss(pred).backward()
        grad_pos, grad_neg = by_target(pred.grad)
        norm = cls['normalisers'][key]
        np.testing.assert_allclose(np.asarray(cls['total_gradient_positive'][key]) / norm,
                                   grad_pos, rtol=1e-4, atol=1e-12, err_msg=key)
        np.testing.assert_allclose(np.asarray(cls['total_gradient_negative'][key]) / norm,
                                   grad_neg, rtol=1e-4, atol=1e-12, err_msg=key)
        assert cls['normalised_total_gradient'][key]['positive'] == pytest.approx(
            grad_pos.sum(), rel=1e-4)
        assert cls['gradient_on_positives'][key]['all'] == pytest.approx(
            grad_pos.sum() / (grad_pos.sum() + grad_neg.sum()), rel=1e-4)
        hard = slice(15, 30)
        assert cls['gradient_on_positives'][key]['hard'] == pytest.approx(
            grad_pos[hard].sum() / (grad_pos[hard].sum() + grad_neg[hard].sum()), rel=1e-4)
    assert cls['counts_positive'] == np.bincount(region[pos], minlength=30).tolist()
    assert cls['num_negative'] == int(valid.sum()) * 4 - num_pos


@pytest.fixture(scope='module')
def tiny_model():
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(MODEL_CFG).model)
    return model.eval()


def _batch():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    samples = []
    for boxes, labels in (([[10., 12., 40., 44.], [60., 60., 90., 100.]], [0, 3]),
                          ([[5., 70., 30., 95.]], [4])):
        sample = DetDataSample(metainfo=dict(img_shape=(128, 128), ori_shape=(128, 128),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes),
                                           labels=torch.tensor(labels))
        samples.append(sample)
    inputs = [torch.randint(0, 255, (3, 128, 128), dtype=torch.uint8) for _ in samples]
    return dict(inputs=inputs, data_samples=samples)


def test_head_targets_are_what_the_head_loss_sees(tiny_model):
    from mmdet.models.losses import FocalLoss, L1Loss
    batch = _batch()
    with torch.no_grad():
        out = head_targets(tiny_model, batch)
        data = tiny_model.data_preprocessor(_batch() | dict(inputs=batch['inputs']), True)
        losses = tiny_model.loss(data['inputs'], data['data_samples'])
    num_pos = int(((out['labels'] >= 0) & (out['labels'] < 5)).sum())
    assert num_pos > 0
    cls = FocalLoss()(out['cls_score'], out['labels'], out['label_weights'], avg_factor=num_pos)
    box = L1Loss()(out['bbox_pred'], out['bbox_targets'], out['bbox_weights'], avg_factor=num_pos)
    torch.testing.assert_close(sum(losses['loss_cls']), cls, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(sum(losses['loss_bbox']), box, rtol=1e-5, atol=1e-7)


def test_tool_smoke_run_writes_four_figures_and_json(tmp_path, tiny_model):
    from mmengine.runner import save_checkpoint
    from mmdet_ghm.datasets.synthetic_shapes import ensure_synthetic_shapes
    data_root = str(tmp_path / 'data') + '/'
    ensure_synthetic_shapes(data_root, seed=0, num_train=2, num_val=3)
    config = tmp_path / 'tiny.py'
    config.write_text(
        f'_base_ = {BASE!r}\n'
        f'data_root = {data_root!r}\n'
        'generator_cfg = dict(seed=0, num_train=2, num_val=3)\n'
        'val_dataloader = dict(dataset=dict(data_root=data_root, '
        'generator_cfg=generator_cfg))\n')
    ckpt = tmp_path / 'tiny.pth'
    save_checkpoint({'state_dict': tiny_model.state_dict()}, str(ckpt))
    tool = _load_tool()
    out = tmp_path / 'out'
    args = [str(config), str(ckpt), '--num-images', '2', '--out-dir', str(out)]
    assert tool.main(args) == 0
    for name in tool.OUTPUTS:
        assert (out / name).stat().st_size > 1000, name
    res = json.loads((out / 'gradient_density.json').read_text())
    assert res['num_images'] == 2 and res['split'] == 'val'
    cls = res['classification']
    assert cls['num_elements'] == sum(cls['counts']) and cls['num_elements'] % 5 == 0
    assert cls['num_positive'] + cls['num_negative'] == cls['num_elements']
    assert np.add(cls['counts_positive'], cls['counts_negative']).tolist() == cls['counts']
    assert set(cls['gradient_on_positives']) == {'ce', 'fl', 'ghmc'}
    assert res['regression']['num_elements'] == sum(res['regression']['counts']) > 0
    # no silent overwrite
    before = (out / 'gradient_density.json').read_bytes()
    with pytest.raises(FileExistsError, match='--overwrite'):
        tool.main(args)
    assert (out / 'gradient_density.json').read_bytes() == before
    with pytest.raises(SystemExit):
        tool.main([str(config), str(ckpt), '--num-images', '0'])
