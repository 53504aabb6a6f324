"""Every config under ``configs/`` loads and builds its model offline.

The COCO configs under ``configs/ghm/`` are further checked against the
published settings (losses, hyper-parameters, clipping, schedule, backbone),
and their metafile and README against MMDetection's own model zoo, so that no
result or checkpoint is attributed to a config it was not published for.
"""
import copy
import os.path as osp
import re
from pathlib import Path

import pytest
import torch
import yaml
from mmengine import Config

import mmdet
import mmdet_ghm
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

REPO = Path(__file__).resolve().parents[1]
CONFIG_ROOT = REPO / 'configs'
GHM_DIR = CONFIG_ROOT / 'ghm'
MMDET_CONFIGS = Path(osp.dirname(mmdet.__file__)) / '.mim' / 'configs'

CUSTOM_IMPORTS = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
CLIP = dict(max_norm=35, norm_type=2)

GHMC = dict(type='GHMCLoss', bins=30, momentum=0.75, use_sigmoid=True,
            loss_weight=1.0)
GHMR = dict(type='GHMRLoss', mu=0.02, bins=10, momentum=0.7, loss_weight=10.0)
SL1 = dict(type='SmoothL1Loss', beta=0.11, loss_weight=1.0)
FL = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
          loss_weight=1.0)
CE = dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)
L1 = dict(type='L1Loss', loss_weight=1.0)
ALPHA_CE = dict(type='AlphaBalancedCELoss', alpha=0.75, use_sigmoid=True,
                loss_weight=1.0)
OHEM = dict(type='OHEMLoss', neg_pos_ratio=3, min_neg=100, use_sigmoid=True,
            loss_weight=1.0)
ASL1 = dict(type='AuthenticSmoothL1Loss', mu=0.02, loss_weight=1.0)

R50 = dict(type='ResNet', depth=50, groups=None,
           checkpoint='torchvision://resnet50')
R101 = dict(type='ResNet', depth=101, groups=None,
            checkpoint='torchvision://resnet101')
X101_32 = dict(type='ResNeXt', depth=101, groups=32,
               checkpoint='open-mmlab://resnext101_32x4d')
X101_64 = dict(type='ResNeXt', depth=101, groups=64,
               checkpoint='open-mmlab://resnext101_64x4d')

# name -> (loss_cls, loss_bbox, clip_grad, backbone, MMDetection model-zoo
# entry whose published result and checkpoint apply, or None).
GHM_CONFIGS = {
    'retinanet_r50_fpn_ce-sl1_1x_coco': (CE, SL1, CLIP, R50, None),
    'retinanet_r50_fpn_alpha-ce-sl1_1x_coco': (ALPHA_CE, SL1, CLIP, R50, None),
    'retinanet_r50_fpn_ohem-sl1_1x_coco': (OHEM, SL1, CLIP, R50, None),
    'retinanet_r50_fpn_fl-sl1_1x_coco': (FL, SL1, CLIP, R50, None),
    'retinanet_r50_fpn_fl-l1_1x_coco':
    (FL, L1, None, R50, ('retinanet', 'retinanet_r50_fpn_1x_coco')),
    'retinanet_r50_fpn_ghmc-sl1_1x_coco': (GHMC, SL1, CLIP, R50, None),
    'retinanet_r50_fpn_ghmc-asl1_1x_coco': (GHMC, ASL1, CLIP, R50, None),
    'retinanet_r50_fpn_ghm-1x_coco':
    (GHMC, GHMR, CLIP, R50, ('ghm', 'retinanet_r50_fpn_ghm-1x_coco')),
    'retinanet_r101_fpn_ghm-1x_coco':
    (GHMC, GHMR, CLIP, R101, ('ghm', 'retinanet_r101_fpn_ghm-1x_coco')),
    'retinanet_x101-32x4d_fpn_ghm-1x_coco':
    (GHMC, GHMR, CLIP, X101_32, ('ghm',
                                 'retinanet_x101-32x4d_fpn_ghm-1x_coco')),
    'retinanet_x101-64x4d_fpn_ghm-1x_coco':
    (GHMC, GHMR, CLIP, X101_64, ('ghm',
                                 'retinanet_x101-64x4d_fpn_ghm-1x_coco')),
}

# GHM-C in other heads: name -> (MMDetection config it inherits, head type,
# box loss it keeps, gradient clipping the base config lacks). GHM-C replaces
# the classification loss only; nothing is trained on COCO yet.
HEAD_CONFIGS = {
    'fcos_r50-caffe_fpn_gn-head_ghmc-1x_coco':
    ('fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', 'GHMFCOSHead', 'IoULoss', None),
    'atss_r50_fpn_ghmc-1x_coco': ('atss/atss_r50_fpn_1x_coco.py', 'ATSSHead', 'GIoULoss', CLIP),
    'gfl_r50_fpn_ghmc-1x_coco': ('gfl/gfl_r50_fpn_1x_coco.py', 'GFLHead', 'GIoULoss', CLIP),
}


def _all_configs():
    """All config files under ``configs/``, ``_base_`` folders excluded."""
    return sorted(
        p for p in CONFIG_ROOT.rglob('*.py')
        if '_base_' not in p.relative_to(CONFIG_ROOT).parts)


def _config_id(path):
    return str(path.relative_to(CONFIG_ROOT))


def _disable_pretrained(node):
    """Drops every pretrained-weight reference in a model config, in place."""
    if isinstance(node, dict):
        if 'init_cfg' in node:
            node['init_cfg'] = None
        if 'pretrained' in node:
            node['pretrained'] = None
        for value in node.values():
            _disable_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _disable_pretrained(value)


def _build(cfg):
    """Builds ``cfg.model`` with all pretrained downloads switched off."""
    model_cfg = copy.deepcopy(cfg.model)
    _disable_pretrained(model_cfg)
    return MODELS.build(model_cfg)


def _load_ghm(name):
    return Config.fromfile(str(GHM_DIR / f'{name}.py'))


def _metafile_models(path):
    with open(path, encoding='utf-8') as f:
        return {m['Name']: m for m in yaml.safe_load(f)['Models']}


@pytest.fixture(scope='module', autouse=True)
def _registries():
    register_all_modules(init_default_scope=True)


def test_every_ghm_config_is_described_here():
    found = {p.stem for p in GHM_DIR.glob('*.py')}
    assert found == set(GHM_CONFIGS) | set(HEAD_CONFIGS)


@pytest.mark.parametrize('path', _all_configs(), ids=_config_id)
def test_config_loads_and_builds(path):
    cfg = Config.fromfile(str(path))
    assert cfg.get('custom_imports') == CUSTOM_IMPORTS
    # every config resumes exactly (its checkpoints carry the generator states)
    assert [h['type'] for h in cfg.get('custom_hooks', [])].count('RNGStateHook') == 1
    model = _build(cfg)
    assert isinstance(model, MODELS.get(cfg.model.type))
    head_cfg = cfg.model.get('bbox_head')
    if head_cfg is not None:
        for key in ('loss_cls', 'loss_bbox'):
            if key in head_cfg:
                loss = getattr(model.bbox_head, key)
                assert type(loss) is MODELS.get(head_cfg[key]['type']), key


@pytest.mark.parametrize('name', sorted(GHM_CONFIGS))
def test_ghm_config_settings(name):
    loss_cls, loss_bbox, clip, backbone, _ = GHM_CONFIGS[name]
    cfg = _load_ghm(name)
    head = cfg.model.bbox_head
    assert head.loss_cls == loss_cls
    assert head.loss_bbox == loss_bbox
    assert cfg.optim_wrapper.get('clip_grad') == clip
    # MMDetection's RetinaNet 1x schedule on COCO, 80 sigmoid classes.
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.train_cfg.max_epochs == 12
    steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR']
    assert [s.milestones for s in steps] == [[8, 11]]
    assert head.type == 'RetinaHead' and head.num_classes == 80
    assert cfg.train_dataloader.dataset.type == 'CocoDataset'
    # Real users keep the ImageNet-pretrained backbone.
    assert cfg.model.backbone.type == backbone['type']
    assert cfg.model.backbone.depth == backbone['depth']
    assert cfg.model.backbone.get('groups') == backbone['groups']
    assert cfg.model.backbone.init_cfg == dict(
        type='Pretrained', checkpoint=backbone['checkpoint'])


@pytest.mark.parametrize('name', sorted(GHM_CONFIGS))
def test_ghm_config_built_losses(name):
    loss_cls, loss_bbox, _, backbone, _ = GHM_CONFIGS[name]
    model = _build(_load_ghm(name))
    head = model.bbox_head
    # Sigmoid classifier without background channel, for every loss here.
    assert head.use_sigmoid_cls
    assert head.cls_out_channels == 80
    assert type(model.backbone).__name__ == backbone['type']
    assert model.backbone.depth == backbone['depth']
    if backbone['groups'] is not None:
        assert model.backbone.groups == backbone['groups']
    for built, expected in ((head.loss_cls, loss_cls),
                            (head.loss_bbox, loss_bbox)):
        assert type(built) is MODELS.get(expected['type'])
        for key, value in expected.items():
            if key != 'type':
                assert getattr(built, key) == value, (expected['type'], key)
    if loss_cls['type'] == 'GHMCLoss':
        assert isinstance(head.loss_cls, mmdet_ghm.GHMCLoss)
    if loss_bbox['type'] == 'GHMRLoss':
        assert isinstance(head.loss_bbox, mmdet_ghm.GHMRLoss)


def _tiny_batch(model):
    """One 96x128 image with two boxes, through the model's preprocessor."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    torch.manual_seed(0)
    sample = DetDataSample()
    sample.set_metainfo(
        dict(img_shape=(96, 128), ori_shape=(96, 128), scale_factor=(1., 1.),
             pad_shape=(96, 128), batch_input_shape=(96, 128)))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[10., 12., 60., 70.], [70., 20., 120., 90.]]),
        labels=torch.tensor([3, 41]))
    data = dict(inputs=[torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8)],
                data_samples=[sample])
    return model.data_preprocessor(data, training=True)


@pytest.mark.parametrize(
    'name', sorted(n for n in GHM_CONFIGS if n.startswith('retinanet_r50')))
def test_r50_config_computes_its_losses(name):
    """Each loss pairing of the comparison runs inside RetinaNet's head."""
    torch.manual_seed(0)
    model = _build(_load_ghm(name))
    model.train()
    data = _tiny_batch(model)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert sorted(losses) == ['loss_bbox', 'loss_cls']
    for key, per_level in losses.items():
        assert len(per_level) == 5, key  # one term per FPN level
        total = sum(per_level)
        assert torch.isfinite(total) and total > 0, (key, total)
        assert total.requires_grad, key
        loss_module = getattr(model.bbox_head, key)
        if isinstance(loss_module, (mmdet_ghm.GHMCLoss, mmdet_ghm.GHMRLoss)):
            # momentum > 0: the head's calls updated the density EMA.
            assert loss_module.acc_sum.sum() > 0, key


def test_metafile_matches_configs_and_mmdet_model_zoo():
    models = _metafile_models(GHM_DIR / 'metafile.yml')
    assert set(models) == set(GHM_CONFIGS) | set(HEAD_CONFIGS)
    for name, model in models.items():
        assert model['Config'] == f'configs/ghm/{name}.py'
        assert (REPO / model['Config']).is_file()
        assert model['Metadata']['Epochs'] == 12
        if name in HEAD_CONFIGS:
            # not trained on COCO: no result, no checkpoint, and it says so
            assert 'Results' not in model and 'Weights' not in model, name
            assert model['Metadata']['Trained on COCO'] is False, name
            continue
        source = GHM_CONFIGS[name][4]
        if source is None:
            # No MMDetection model-zoo entry for this setting.
            assert 'Results' not in model and 'Weights' not in model, name
            continue
        folder, zoo_name = source
        zoo = _metafile_models(MMDET_CONFIGS / folder / 'metafile.yml')
        assert model['Results'] == zoo[zoo_name]['Results'], name
        assert model['Weights'] == zoo[zoo_name]['Weights'], name


def _readme_rows():
    """Maps config name to its README results-table cells."""
    rows = {}
    header = None
    for line in (GHM_DIR / 'README.md').read_text(encoding='utf-8').splitlines():
        if not line.startswith('|'):
            continue
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if cells[0] == 'Config':
            header = cells
            continue
        match = re.fullmatch(r'\[([^\]]+)\]\(\./([^)]+)\.py\)', cells[0])
        if header is not None and match:
            assert match.group(1) == match.group(2)
            rows[match.group(1)] = dict(zip(header, cells))
    return rows


def test_readme_lists_every_config_with_published_numbers_only():
    rows = _readme_rows()
    assert set(rows) == set(GHM_CONFIGS) | set(HEAD_CONFIGS)
    models = _metafile_models(GHM_DIR / 'metafile.yml')
    # Numbers published by the authors (libuyu/GHM_Detection README) for
    # settings MMDetection's model zoo does not cover.
    authors = {'retinanet_r50_fpn_fl-sl1_1x_coco': '35.6',
               'retinanet_r50_fpn_ghmc-sl1_1x_coco': '35.8'}
    for name, row in rows.items():
        assert row['Ours box AP'] == '', name  # never a made-up number
        published = row['Published box AP']
        if 'Results' in models[name]:
            ap = models[name]['Results'][0]['Metrics']['box AP']
            assert published == f'{ap:.1f}', name
            assert models[name]['Weights'] in row['Download'], name
        elif name in authors:
            assert published == authors[name], name
            assert row['Source'] == '[3]', name
        else:
            assert published == '-', name
        if name in HEAD_CONFIGS:
            assert row['Grad clip'] == '35', name  # FCOS's base config clips already
            continue
        clip = GHM_CONFIGS[name][2]
        assert row['Grad clip'] == ('-' if clip is None else '35'), name


SYNTHETIC_DIR = CONFIG_ROOT / 'synthetic'
# Synthetic-set GHM option configs: option name -> (loss argument, value),
# set on both GHM losses of the published synthetic GHM config.
GHM_OPTION_CONFIGS = {
    'ghm-debias': ('ema_bias_correction', True),
    'ghm-cap': ('weight_cap', 100.0),
    'ghm-warmup': ('warmup', 500),
}


@pytest.mark.parametrize('option', sorted(GHM_OPTION_CONFIGS))
def test_synthetic_ghm_option_config_changes_one_option(option):
    attr, value = GHM_OPTION_CONFIGS[option]
    base = Config.fromfile(str(SYNTHETIC_DIR / 'retinanet_tiny-r18_fpn_ghm_synthetic-shapes.py'))
    cfg = Config.fromfile(
        str(SYNTHETIC_DIR / f'retinanet_tiny-r18_fpn_{option}_synthetic-shapes.py'))
    expected = copy.deepcopy(base.to_dict())
    for key in ('loss_cls', 'loss_bbox'):
        expected['model']['bbox_head'][key][attr] = value
    if attr == 'warmup':  # the loss is told the training iteration by this hook
        expected['custom_hooks'] = [dict(type='GHMStatsHook'), dict(type='GHMWarmupHook'),
                                    dict(type='RNGStateHook')]
    assert cfg.to_dict() == expected
    model = _build(cfg)
    for key in ('loss_cls', 'loss_bbox'):
        assert getattr(getattr(model.bbox_head, key), attr) == value


def _without_scope(node):
    """``node`` without the ``_scope_`` keys that an ``mmdet::`` base adds."""
    if isinstance(node, dict):
        return {k: _without_scope(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return type(node)(_without_scope(v) for v in node)
    return node


@pytest.mark.parametrize('name', sorted(HEAD_CONFIGS))
def test_head_config_is_mmdet_config_with_ghmc(name):
    """Each other-head config is MMDetection's published config, GHM-C in place of its loss."""
    base_path, head_type, box_loss, clip = HEAD_CONFIGS[name]
    cfg = _load_ghm(name)
    expected = Config.fromfile(str(MMDET_CONFIGS / base_path)).to_dict()
    head = expected['model']['bbox_head']
    head['type'] = head_type
    head['loss_cls'] = dict(GHMC)
    if head_type == 'GHMFCOSHead':
        head['cls_loss_per_level'] = True
    if clip is not None:
        expected['optim_wrapper']['clip_grad'] = clip
    expected['custom_imports'] = CUSTOM_IMPORTS
    expected['custom_hooks'] = [dict(type='RNGStateHook')]
    # the loss settings the config takes its GHM-C from (defined once, inherited)
    from mmdet_ghm.comparison.loss_settings import load_definitions
    expected.update(load_definitions())
    assert head['loss_bbox']['type'] == box_loss
    assert _without_scope(cfg.to_dict()) == _without_scope(expected)
    assert cfg.optim_wrapper.clip_grad == CLIP
    assert cfg.train_cfg.max_epochs == 12 and head['num_classes'] == 80


@pytest.mark.parametrize('name', sorted(HEAD_CONFIGS))
def test_head_config_builds_with_ghmc(name):
    _, head_type, box_loss, _ = HEAD_CONFIGS[name]
    model = _build(_load_ghm(name))
    head = model.bbox_head
    assert type(head) is MODELS.get(head_type)
    assert isinstance(head.loss_cls, mmdet_ghm.GHMCLoss)
    assert (head.loss_cls.bins, head.loss_cls.momentum) == (30, 0.75)
    assert type(head.loss_bbox).__name__ == box_loss
    assert head.cls_out_channels == 80
    if head_type == 'GHMFCOSHead':
        assert head.cls_loss_per_level is True


HEAD_LOSSES = {
    'fcos_r50-caffe_fpn_gn-head_ghmc-1x_coco': ['loss_bbox', 'loss_centerness', 'loss_cls'],
    'atss_r50_fpn_ghmc-1x_coco': ['loss_bbox', 'loss_centerness', 'loss_cls'],
    'gfl_r50_fpn_ghmc-1x_coco': ['loss_bbox', 'loss_cls', 'loss_dfl'],
}


@pytest.mark.parametrize('name', sorted(HEAD_LOSSES))
def test_head_config_computes_its_losses(name):
    """FCOS (per-level calls through GHMFCOSHead), ATSS (per level natively)
    and GFL (per level, (labels, IoU scores) targets with weight=) compute
    GHM-C with their own box losses."""
    torch.manual_seed(0)
    model = _build(_load_ghm(name))
    model.train()
    data = _tiny_batch(model)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert sorted(losses) == HEAD_LOSSES[name]
    total = 0
    for key, value in losses.items():
        value = sum(value) if isinstance(value, (list, tuple)) else value
        assert torch.isfinite(value) and value.requires_grad, key
        total = total + value
    total.backward()
    acc_sum = model.bbox_head.loss_cls.acc_sum
    # one EMA, updated by the five per-level calls
    assert acc_sum.sum() > 0


# The pretrained regime (issue 22): RetinaNet on the ImageNet-pretrained
# EfficientNet-Lite0, and its from-scratch control. name -> (tiny config whose
# losses, clipping and hooks it shares, pretrained?).
LITE0_CONFIGS = {
    f'{folder}/retinanet_efficientnet-lite0{scratch}_fpn_{loss}_{suffix}':
    (f'{folder}/retinanet_tiny-r18_fpn_{loss}_{suffix}', not scratch)
    for folder, suffix, losses, scratch in (
        ('tree_crowns', 'tree-crowns', ('ce', 'fl', 'ghm', 'ghm-cap'), ''),
        ('synthetic', 'synthetic-shapes', ('ce', 'fl', 'ghm', 'ghm-cap'), ''),
        ('tree_crowns', 'tree-crowns', ('fl', 'ghm'), '-scratch'))
    for loss in losses
}


def _cfg(name):
    return Config.fromfile(str(CONFIG_ROOT / f'{name}.py'))


def test_every_lite0_config_is_described_here():
    found = {_config_id(p)[:-3] for p in _all_configs() if 'efficientnet-lite0' in p.name}
    assert found == set(LITE0_CONFIGS) | {f'own_data/{n}' for n in OWN_DATA_CONFIGS}


@pytest.mark.parametrize('name', sorted(LITE0_CONFIGS))
def test_lite0_config_is_its_tiny_config_on_another_backbone(name):
    """Same losses, clipping, hooks and data as the tiny config; the weights' input normalisation."""
    tiny_name, pretrained = LITE0_CONFIGS[name]
    cfg, tiny = _cfg(name), _cfg(tiny_name)
    for key in ('loss_cls', 'loss_bbox', 'anchor_generator', 'num_classes', 'stacked_convs',
                'norm_cfg'):
        assert cfg.model.bbox_head[key] == tiny.model.bbox_head[key], key
    assert cfg.model.test_cfg == tiny.model.test_cfg
    assert cfg.model.train_cfg == tiny.model.train_cfg
    assert cfg.optim_wrapper == tiny.optim_wrapper
    assert cfg.get('custom_hooks') == tiny.get('custom_hooks')
    assert cfg.train_dataloader == tiny.train_dataloader
    assert cfg.val_evaluator == tiny.val_evaluator
    pre = cfg.model.data_preprocessor
    assert (pre.mean, pre.std, pre.bgr_to_rgb) == ([127.0] * 3, [128.0] * 3, True)
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.arch, backbone.out_indices) == (
        'EfficientNetLite', 'lite0', (3, 4, 5))
    assert cfg.model.neck.in_channels == [40, 112, 320]
    assert cfg.model.neck.out_channels == cfg.model.bbox_head.in_channels == 64
    if pretrained:
        # frozen stem + blocks 0-2 and BN statistics, as the R-50 configs freeze
        assert (backbone.frozen_stages, backbone.norm_eval) == (2, True)
        assert backbone.init_cfg == dict(type='Pretrained',
                                         checkpoint='checkpoints/efficientnet-lite0_imagenet.pth')
    else:
        assert (backbone.frozen_stages, backbone.norm_eval) == (-1, False)
        assert [c['type'] for c in backbone.init_cfg] == ['Kaiming', 'Constant']
        # trained as long as the from-scratch crowns configs
        assert cfg.train_cfg.max_epochs == tiny.train_cfg.max_epochs == 60
    scheduler = [s for s in cfg.param_scheduler if s.type == 'CosineAnnealingLR']
    assert [(s.T_max, s.end) for s in scheduler] == [(cfg.train_cfg.max_epochs, ) * 2]


def test_lite0_config_loads_the_converted_weights_and_freezes(lite0_checkpoint):
    cfg = _cfg('tree_crowns/retinanet_efficientnet-lite0_fpn_fl_tree-crowns')
    cfg.model.backbone.init_cfg.checkpoint = lite0_checkpoint
    model = MODELS.build(cfg.model)
    model.init_weights()
    weights = torch.load(lite0_checkpoint, weights_only=True)['state_dict']
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, weights[key]), key
    model.train()
    backbone = model.backbone
    assert not any(p.requires_grad for layer in backbone.layers[:3] for p in layer.parameters())
    assert all(p.requires_grad for layer in backbone.layers[3:] for p in layer.parameters())
    assert not any(m.training for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    data = _tiny_batch(model)
    for sample in data['data_samples']:
        sample.gt_instances.labels = torch.zeros_like(sample.gt_instances.labels)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(sum(v) for v in losses.values())
    total.backward()
    assert torch.isfinite(total)
    assert backbone.layers[3][0].expand_conv.conv.weight.grad.abs().sum() > 0
    assert backbone.layers[2][0].expand_conv.conv.weight.grad is None


def test_lite0_config_without_converted_weights_names_the_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = MODELS.build(_cfg('synthetic/retinanet_efficientnet-lite0_fpn_ghm_synthetic-shapes')
                         .model)
    with pytest.raises(FileNotFoundError, match=re.escape(
            'python tools/model_converters/efficientnet_lite2mmdet.py '
            '--out checkpoints/efficientnet-lite0_imagenet.pth')):
        model.init_weights()


# docs/fine_tune_own_data.md: the pretrained crowns configs on a COCO-format set.
OWN_DATA_CONFIGS = {f'retinanet_efficientnet-lite0_fpn_{loss}_coco-format':
                    f'tree_crowns/retinanet_efficientnet-lite0_fpn_{loss}_tree-crowns'
                    for loss in ('fl', 'ghm')}


@pytest.mark.parametrize('name', sorted(OWN_DATA_CONFIGS))
def test_own_data_config_is_the_pretrained_crowns_config_on_coco_data(name):
    cfg, crowns = _cfg(f'own_data/{name}'), _cfg(OWN_DATA_CONFIGS[name])
    model, want = cfg.model.to_dict(), crowns.model.to_dict()
    # the crowns set's one class and dense val regions are its own
    for m in (model, want):
        del m['bbox_head']['num_classes'], m['test_cfg']
    assert model == want
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'custom_hooks'):
        assert cfg.get(key) == crowns.get(key), key
    # RetinaNet's usual test settings (the crowns raise them for ~200 crowns per image)
    assert (cfg.model.test_cfg.nms_pre, cfg.model.test_cfg.max_per_img) == (1000, 100)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        assert loader.dataset.type == 'CocoDataset'
        assert loader.dataset.data_root == 'data/my_set/'
