"""The pretrained regime's variants: names, configs, epochs and recipes (issue 22), and the
corrected crowns cells and the factor ablation (issue 35)."""
import copy
import os.path as osp

import pytest
from mmengine.config import Config

from mmdet_ghm.study.variants import (ABLATION_FACTORS, CORRECTED_CROWNS, GHM_ABLATION_FACTORS,
                                      REGIMES, VARIANTS, grid_variant)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LOSS_KEYS = ('ce', 'fl', 'ghm', 'ghm-cap')
CAP_KEYS = ('ghm-cap10', 'ghm-cap30', 'ghm-cap300')


def _named(prefix):
    return sorted(n for n in VARIANTS if n.startswith(prefix))


def test_the_pretrained_grid_has_every_data_set_recipe_and_loss():
    want = sorted(f'lite0-pretrained-{d}{r}{k}' for d in ('', 'crowns-') for r in ('', 'sgd-')
                  for k in LOSS_KEYS + CAP_KEYS)
    assert _named('lite0-pretrained-') == want
    assert _named('lite0-scratch-') == sorted(
        f'lite0-scratch-crowns-{r}{k}' for r in ('', 'sgd-') for k in ('fl', 'ghm'))


@pytest.mark.parametrize('name', _named('lite0-pretrained-') + _named('lite0-scratch-'))
def test_a_lite0_variant_trains_its_config_with_its_recipe(name):
    v = VARIANTS[name]
    pretrained = name.startswith('lite0-pretrained-')
    cfg = Config.fromfile(osp.join(REPO, v.config))
    cfg.merge_from_dict(v.overrides)
    assert cfg.model.backbone.type == 'EfficientNetLite'
    init = cfg.model.backbone.init_cfg
    assert (isinstance(init, dict) and init.type == 'Pretrained') is pretrained
    assert cfg.model.backbone.norm_eval is pretrained
    key = name.split('-', 3 if v.dataset == 'crowns' else 2)[-1]
    if v.recipe == 'sgd':
        key = key[len('sgd-'):]
    if key in CAP_KEYS:
        # the cap sweep: GHM with the cap config's losses, the cap set on both
        cap = float(key[len('ghm-cap'):])
        assert (cfg.model.bbox_head.loss_cls.weight_cap,
                cfg.model.bbox_head.loss_bbox.weight_cap) == (cap, cap)
        key = 'ghm-cap'
    assert v.config.endswith(f'_fpn_{key}_' + ('tree-crowns.py' if v.dataset == 'crowns'
                                                 else 'synthetic-shapes.py'))
    assert cfg.optim_wrapper.optimizer.type == ('SGD' if v.recipe == 'sgd' else 'AdamW')
    if pretrained:
        # the fine-tuning length is the config's own
        assert v.epochs == cfg.train_cfg.max_epochs == dict(shapes=24, crowns=48)[v.dataset]
        assert v.group == f'lite0-pretrained-{v.dataset}-{v.recipe}'
    else:
        # the control trains as long as the from-scratch grid
        assert v.epochs == VARIANTS[f'crowns-{v.recipe}-fl'.replace('-adamw', '')].epochs
        assert v.group == 'lite0-scratch'
    if v.recipe == 'sgd':
        warmup, steps = cfg.param_scheduler
        assert steps.milestones == [round(v.epochs * 8 / 12), round(v.epochs * 11 / 12)]
        iters = v.epochs * (9 if v.dataset == 'crowns' else 50)
        assert warmup.end == min(500, iters // 6)
    assert 'EfficientNet-Lite0' in v.label


def test_regimes_leave_the_tiny_grid_as_it_was():
    assert VARIANTS['crowns-sgd-fl'] == grid_variant('crowns', 'sgd', 'fl', 'FL + L1', 'fl', {},
                                                     group='crowns-sgd')
    assert VARIANTS['crowns-sgd-fl'].config == \
        'configs/tree_crowns/retinanet_tiny-r18_fpn_fl_tree-crowns.py'
    assert VARIANTS['sgd-fl'].name == 'sgd-fl' and set(REGIMES) == {
        'tiny', 'lite0-pretrained', 'lite0-scratch', 'lite0-corrected'}
    with pytest.raises(ValueError, match="regime 'lite0-scratch' has no 'shapes' configs"):
        grid_variant('shapes', 'sgd', 'fl', 'FL + L1', 'fl', {}, group='x',
                     regime='lite0-scratch')


def test_the_unfrozen_tuning_run_differs_from_the_grid_only_in_frozen_stages():
    grid = VARIANTS['lite0-pretrained-crowns-fl']
    tuning = VARIANTS['lite0-tuning-crowns-fl-unfrozen']
    assert tuning.config == grid.config and tuning.epochs == grid.epochs == 48
    assert tuning.overrides == dict(grid.overrides, **{'model.backbone.frozen_stages': -1})
    cfg = Config.fromfile(osp.join(REPO, tuning.config))
    assert cfg.model.backbone.frozen_stages == 2  # what the override changes
    cfg.merge_from_dict(tuning.overrides)
    assert cfg.model.backbone.frozen_stages == -1 and cfg.model.backbone.norm_eval is True
    assert 'no stage frozen' in tuning.label and 'EfficientNet-Lite0 ImageNet' in tuning.label


def _plain(value):
    """``value`` without MMEngine's ``_delete_`` markers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != '_delete_'}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize('recipe', ['adamw', 'sgd'])
def test_the_corrected_crowns_cells_differ_from_the_pretrained_only_in_clipping_and_crowds(
        recipe):
    """Issue 35: every loss of a corrected cell clips alike and ignores the border-cut crowns."""
    cell = '' if recipe == 'adamw' else 'sgd-'
    for key in ('ce', 'fl', 'ghm', 'ghm-cap'):
        old = VARIANTS[f'lite0-pretrained-crowns-{cell}{key}']
        new = VARIANTS[f'lite0-corrected-crowns-{cell}{key}']
        assert new.config == old.config and new.epochs == old.epochs == 48
        # (another test's merge_from_dict pops the recipe's _delete_ in place: compare without)
        assert _plain(new.overrides) == _plain(dict(old.overrides, **CORRECTED_CROWNS[recipe]))
    clips, ignores = set(), set()
    for key in ('ce', 'fl', 'ghm', 'ghm-cap', 'ghmc-l1', 'fl-ghmr'):
        v = VARIANTS[f'lite0-corrected-crowns-{cell}{key}']
        cfg = Config.fromfile(osp.join(REPO, v.config))
        cfg.merge_from_dict(copy.deepcopy(v.overrides))
        clips.add(str(cfg.optim_wrapper.get('clip_grad')))
        ignores.add(cfg.model.train_cfg.assigner.ignore_iof_thr)
        assert v.group == f'lite0-corrected-crowns-{recipe}'
        if key == 'ghmc-l1':
            assert (cfg.model.bbox_head.loss_cls.type, cfg.model.bbox_head.loss_bbox.type) == (
                'GHMCLoss', 'L1Loss')
        if key == 'fl-ghmr':
            assert (cfg.model.bbox_head.loss_cls.type, cfg.model.bbox_head.loss_bbox.type) == (
                'FocalLoss', 'GHMRLoss')
            assert [h['type'] for h in cfg.custom_hooks] == ['GHMStatsHook', 'RNGStateHook']
    assert clips == {str(dict(max_norm=35, norm_type=2))} and ignores == {0.5}


def test_each_ablation_variant_changes_one_factor_of_the_corrected_adamw_cell():
    names = _named('lite0-ablation-crowns-')
    assert len(names) == 2 * len(ABLATION_FACTORS) + len(GHM_ABLATION_FACTORS) >= 12
    for name in names:
        v = VARIANTS[name]
        loss, factor = name[len('lite0-ablation-crowns-'):].split('-', 1)
        cell = VARIANTS[f'lite0-corrected-crowns-{loss}']
        what, overrides, epochs = {**ABLATION_FACTORS, **GHM_ABLATION_FACTORS}[factor]
        assert v.config == cell.config and v.group == 'lite0-ablation' and what in v.label
        assert _plain(v.overrides) == _plain(dict(cell.overrides, **overrides))
        assert v.epochs == (epochs or cell.epochs)
    cfg = Config.fromfile(osp.join(REPO, VARIANTS['lite0-ablation-crowns-ghm-no-jitter'].config))
    cfg.merge_from_dict(VARIANTS['lite0-ablation-crowns-ghm-no-jitter'].overrides)
    steps = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert 'RandomResize' not in steps and 'RandomCrop' not in steps and 'RandomFlip' in steps
    cfg = Config.fromfile(osp.join(REPO, VARIANTS['lite0-ablation-crowns-fl-p3-p7'].config))
    cfg.merge_from_dict(VARIANTS['lite0-ablation-crowns-fl-p3-p7'].overrides)
    assert cfg.model.neck.num_outs == len(cfg.model.bbox_head.anchor_generator.strides) == 5
    cfg = Config.fromfile(osp.join(REPO, VARIANTS['lite0-ablation-crowns-fl-no-clip'].config))
    cfg.merge_from_dict(VARIANTS['lite0-ablation-crowns-fl-no-clip'].overrides)
    assert cfg.optim_wrapper.clip_grad is None
