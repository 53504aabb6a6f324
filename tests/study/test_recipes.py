"""The study's recipes: MMDetection's SGD step schedule stretched, applied to a config."""
import pytest
from mmengine.config import Config

from mmdet_ghm.study.recipes import recipe_overrides, sgd_step_milestones, sgd_warmup_iters
from mmdet_ghm.study.variants import VARIANTS


def test_the_1x_steps_stay_at_8_and_11_twelfths():
    assert sgd_step_milestones(12) == [8, 11]
    assert sgd_step_milestones(60) == [40, 55]
    assert sgd_step_milestones(30) == [20, 28]
    with pytest.raises(ValueError, match='at least 3 epochs, got 2'):
        sgd_step_milestones(2)


def test_warm_up_is_500_iterations_at_most_a_sixth_of_training():
    assert sgd_warmup_iters(3000) == 500   # synthetic set, 60 epochs of 50 iterations
    assert sgd_warmup_iters(540) == 90     # tree crowns, 60 epochs of 9
    assert sgd_warmup_iters(3) == 1


def test_sgd_overrides_replace_adamw_in_a_study_config():
    cfg = Config.fromfile('configs/synthetic/retinanet_tiny-r18_fpn_ghm_synthetic-shapes.py')
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    cfg.merge_from_dict(recipe_overrides('sgd', 60, warmup_iters=90))
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.01, momentum=0.9,
                                               weight_decay=0.0001)
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.end, warmup.start_factor) == ('LinearLR', 90, 0.001)
    assert (steps.type, steps.milestones, steps.end) == ('MultiStepLR', [40, 55], 60)
    assert recipe_overrides('adamw', 30) == {}
    with pytest.raises(ValueError, match="unknown recipe 'adam'"):
        recipe_overrides('adam', 30)


def test_grid_variants_carry_their_recipe_and_data_set():
    sgd = VARIANTS['crowns-sgd-ghm-cap30']
    assert (sgd.dataset, sgd.recipe, sgd.epochs, sgd.group) == ('crowns', 'sgd', 120, 'caps')
    assert sgd.config == 'configs/tree_crowns/retinanet_tiny-r18_fpn_ghm-cap_tree-crowns.py'
    assert sgd.overrides['model.bbox_head.loss_cls.weight_cap'] == 30.0
    assert sgd.overrides['param_scheduler'][0]['end'] == 180  # 1/6 of 120 x 9 iterations
    assert sgd.overrides['param_scheduler'][1]['milestones'] == [80, 110]
    assert VARIANTS['sgd-fl'].overrides['param_scheduler'][0]['end'] == 500
    # the synthetic set with AdamW keeps the original names and settings
    assert VARIANTS['ghm-cap10'].overrides == {'model.bbox_head.loss_cls.weight_cap': 10.0,
                                               'model.bbox_head.loss_bbox.weight_cap': 10.0}
    assert VARIANTS['fl'].epochs is None and VARIANTS['fl'].recipe == 'adamw'
    with pytest.raises(ValueError, match="noise is a setting of the synthetic set only"):
        type(sgd)('x', 'x', sgd.config, noise=0.1, dataset='crowns')


def test_iterations_per_epoch_match_the_synthetic_set():
    import math

    from mmdet_ghm.datasets.synthetic_shapes import default_params
    from mmdet_ghm.study.variants import ITERS_PER_EPOCH
    cfg = Config.fromfile('configs/synthetic/retinanet_tiny-r18_fpn_fl_synthetic-shapes.py')
    assert ITERS_PER_EPOCH['shapes'] == math.ceil(
        default_params()['num_train'] / cfg.train_dataloader.batch_size)
