"""The loss settings: defined once, swapped in as the package's configs do, per head."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmdet_ghm.comparison import loss_settings as ls

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SYN = osp.join(REPO, 'configs', 'synthetic', '{}_synthetic-shapes.py')


def _cfg(name):
    return Config.fromfile(SYN.format(name))


def _swapped(name, setting, clip=None):
    cfg = _cfg(name)
    overrides, notes = ls.swap(cfg, setting)
    clip_overrides, _ = ls.clip_overrides(cfg, clip)
    cfg.merge_from_dict(dict(clip_overrides, **overrides))
    return cfg, notes


def _strip(d):
    return {k: v for k, v in dict(d).items() if k != '_delete_'}


@pytest.mark.parametrize('config, setting', [
    ('retinanet_tiny-r18_fpn_ghm', 'ghm'), ('retinanet_tiny-r18_fpn_ghm-cap', 'ghm-cap'),
    ('retinanet_tiny-r18_fpn_ce', 'ce'), ('retinanet_tiny-r18_fpn_alpha-ce', 'alpha-ce'),
    ('retinanet_tiny-r18_fpn_cfl', 'cfl'), ('retinanet_tiny-r18_fpn_ohem', 'ohem'),
    ('atss_tiny-r18_fpn_ghm', 'ghm'), ('atss_tiny-r18_fpn_ghm-cap', 'ghm-cap'),
    ('gfl_tiny-r18_fpn_ghm', 'ghm'), ('fcos_tiny-r18_fpn_ghm', 'ghm'),
    ('fcos_tiny-r18_fpn_ghm-cap', 'ghm-cap'),
    ('faster-rcnn_tiny-r18_fpn_ghmc-softmax', 'ghm'),
])
def test_swapping_into_the_fl_config_gives_the_packages_own_config(config, setting):
    """The command's swap and the package's configs share one definition: same model."""
    own = _cfg(config)
    base = {'retinanet': 'retinanet_tiny-r18_fpn_fl', 'atss': 'atss_tiny-r18_fpn_fl',
            'gfl': 'gfl_tiny-r18_fpn_qfl', 'fcos': 'fcos_tiny-r18_fpn_fl',
            'faster-rcnn': None}[config.split('_')[0]]
    if base is None:  # the softmax R-CNN config is its own base: swap CE in, then GHM back
        cfg = _cfg(config)
        cfg.merge_from_dict(ls.swap(cfg, 'ce')[0])
        assert cfg.model.roi_head.bbox_head.loss_cls.type == 'CrossEntropyLoss'
        cfg.merge_from_dict(ls.swap(cfg, setting)[0])
        assert cfg.model.roi_head.bbox_head.loss_cls == own.model.roi_head.bbox_head.loss_cls
        return
    cfg, _ = _swapped(base, setting)
    assert cfg.model == own.model
    if 'ghm' in setting:
        assert cfg.optim_wrapper.clip_grad == own.optim_wrapper.clip_grad == dict(
            max_norm=35, norm_type=2)
        assert [h['type'] for h in cfg.custom_hooks] == ['RNGStateHook', 'GHMStatsHook']


def test_the_definitions_are_the_published_settings():
    d = ls.load_definitions()
    assert _strip(d['ghmc']) == dict(type='GHMCLoss', bins=30, momentum=0.75, use_sigmoid=True,
                                     loss_weight=1.0)
    assert _strip(d['ghmr']) == dict(type='GHMRLoss', mu=0.02, bins=10, momentum=0.7,
                                     loss_weight=10.0)
    assert d['ghm_weight_cap'] == 100.0 and d['ghm_clip_grad'] == dict(max_norm=35, norm_type=2)
    # the model bases keep RetinaNet's FL inline: it must be the FL setting
    base = Config.fromfile(osp.join(REPO, 'configs/_base_/models/retinanet_tiny-r18_fpn.py'))
    assert base.model.bbox_head.loss_cls == d['focal']


def test_ghm_r_only_replaces_a_delta_coded_l1_type_box_loss():
    cfg, notes = _swapped('retinanet_tiny-r18_fpn_fl', 'ghm')
    assert cfg.model.bbox_head.loss_bbox.type == 'GHMRLoss' and 'replaces' in notes[0]
    cfg, notes = _swapped('atss_tiny-r18_fpn_fl', 'ghm')
    assert cfg.model.bbox_head.loss_bbox.type == 'GIoULoss'
    assert 'stays GIoULoss' in notes[0]
    decoded = _cfg('retinanet_tiny-r18_fpn_fl')
    decoded.merge_from_dict({'model.bbox_head.reg_decoded_bbox': True,
                             'model.bbox_head.loss_bbox': dict(_delete_=True, type='GIoULoss')})
    overrides, notes = ls.swap(decoded, 'ghm')
    assert 'model.bbox_head.loss_bbox' not in overrides and 'delta-coded' in notes[0]


def test_fcos_gets_one_density_per_level_and_fl_runs_drop_the_stats_hook():
    cfg, notes = _swapped('fcos_tiny-r18_fpn_fl', 'ghm')
    assert cfg.model.bbox_head.type == 'GHMFCOSHead' and cfg.model.bbox_head.cls_loss_per_level
    assert any('per FPN level' in n for n in notes)
    cfg, _ = _swapped('retinanet_tiny-r18_fpn_ghm', 'fl')
    assert cfg.model.bbox_head.loss_cls.type == 'FocalLoss'
    assert [h['type'] for h in cfg.custom_hooks] == ['RNGStateHook']
    # the box loss is the config's: FL on a GHM config keeps GHM-R (only the loss swapped)
    assert cfg.model.bbox_head.loss_bbox.type == 'GHMRLoss'


def test_every_setting_gets_the_same_clipping():
    cfg = _cfg('retinanet_tiny-r18_fpn_fl')
    assert ls.clip_overrides(cfg, None)[0] == {
        'optim_wrapper.clip_grad': dict(max_norm=35, norm_type=2)}
    assert ls.clip_overrides(cfg, 'none')[0] == {'optim_wrapper.clip_grad': None}
    assert ls.clip_overrides(cfg, '10')[0]['optim_wrapper.clip_grad']['max_norm'] == 10.0
    ghm = _cfg('retinanet_tiny-r18_fpn_ghm')
    ghm.merge_from_dict({'optim_wrapper.clip_grad.max_norm': 20})
    assert ls.clip_overrides(ghm, None)[0]['optim_wrapper.clip_grad']['max_norm'] == 20
    for bad in ('-1', 'soft', '0'):
        with pytest.raises(ValueError, match=repr(bad)):
            ls.clip_overrides(cfg, bad)


def test_settings_that_do_not_apply_are_named_with_the_reason():
    gfl = ls.head_kind(_cfg('gfl_tiny-r18_fpn_qfl'))
    with pytest.raises(ls.UnsupportedConfig, match=r"\['fl'\] do not apply to GFLHead.*soft"):
        ls.check_settings(gfl, ['own', 'fl'])
    rcnn = ls.head_kind(_cfg('faster-rcnn_tiny-r18_fpn_ghmc-softmax'))
    assert rcnn.head_key == 'model.roi_head.bbox_head' and not rcnn.sigmoid
    with pytest.raises(ls.UnsupportedConfig, match='sigmoid classifier'):
        ls.check_settings(rcnn, ['fl'])
    with pytest.raises(ls.UnsupportedConfig, match=r"unknown loss setting\(s\) \['focal'\]"):
        ls.check_settings(rcnn, ['focal'])
    atss = ls.head_kind(_cfg('atss_tiny-r18_fpn_fl'))
    with pytest.raises(ls.UnsupportedConfig, match='RetinaNet only'):
        ls.check_settings(atss, ['ohem'])


def test_heads_that_cannot_be_swapped_are_named():
    cfg = _cfg('retinanet_tiny-r18_fpn_fl')
    cfg.model.bbox_head.type = 'YOLOV3Head'
    with pytest.raises(ls.UnsupportedConfig, match="'YOLOV3Head' head; supported heads:.*ATSSHead"):
        ls.head_kind(cfg)
    cfg.model.bbox_head.type = 'SSDHead'
    with pytest.raises(ls.UnsupportedConfig, match='GHMSSDHead'):
        ls.head_kind(cfg)
    ssd = ls.head_kind(_cfg('ssd_tiny-r18_fpn_ghmc-softmax'))
    assert ssd.name == 'GHMSSDHead' and 'ce' in ssd.settings and 'fl' not in ssd.settings


HEAD_CONFIGS = {
    'RetinaHead': ('retinanet_tiny-r18_fpn_fl', ('own', 'ce', 'fl', 'ghm', 'ghm-cap', 'alpha-ce',
                                                 'cfl', 'ohem')),
    'FCOSHead': ('fcos_tiny-r18_fpn_fl', ('own', 'ce', 'fl', 'ghm', 'ghm-cap')),
    'ATSSHead': ('atss_tiny-r18_fpn_fl', ('own', 'ce', 'fl', 'ghm', 'ghm-cap')),
    'GFLHead': ('gfl_tiny-r18_fpn_qfl', ('own', 'ghm', 'ghm-cap')),
    'Shared2FCBBoxHead': ('faster-rcnn_tiny-r18_fpn_ghmc-softmax', ('own', 'ce', 'ghm', 'ghm-cap')),
    'GHMSSDHead': ('ssd_tiny-r18_fpn_ghmc-softmax', ('own', 'ce', 'ghm', 'ghm-cap')),
}


@pytest.mark.parametrize('head', sorted(HEAD_CONFIGS))
def test_every_supported_head_builds_with_every_setting_that_applies(head, tmp_path):
    """The comparison of each head plans every setting; each swapped config builds its model
    with the setting's classification loss."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import mmdet_ghm  # noqa: F401
    from mmdet_ghm.comparison.engine import CompareOptions, prepare
    register_all_modules()
    name, settings = HEAD_CONFIGS[head]
    comparison = prepare(CompareOptions(config=SYN.format(name), losses=list(settings),
                                        seeds=[0], work_dir=str(tmp_path / 'w')),
                         cwd=str(tmp_path))
    assert comparison.kind.name == head and comparison.settings == list(settings)
    defs = ls.load_definitions()
    want = {'ce': 'CrossEntropyLoss', 'fl': 'FocalLoss', 'ghm': 'GHMCLoss', 'ghm-cap': 'GHMCLoss',
            'alpha-ce': 'AlphaBalancedCELoss', 'cfl': 'ContinuousFocalLoss', 'ohem': 'OHEMLoss'}
    for variant in comparison.variants:
        cfg = Config.fromfile(SYN.format(name))
        cfg.merge_from_dict(variant.overrides)
        model = MODELS.build(cfg.model)
        head_module = model.roi_head.bbox_head if hasattr(model, 'roi_head') else model.bbox_head
        loss = type(head_module.loss_cls).__name__
        if variant.name != 'own':
            assert loss == want[variant.name], (head, variant.name)
        if variant.name == 'ghm-cap':
            assert head_module.loss_cls.weight_cap == defs['ghm_weight_cap']
        assert cfg.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)
