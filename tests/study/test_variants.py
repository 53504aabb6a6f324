"""The pretrained regime's variants: names, configs, epochs and recipes (issue 22)."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmdet_ghm.study.variants import REGIMES, VARIANTS, grid_variant

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
        'tiny', 'lite0-pretrained', 'lite0-scratch'}
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
