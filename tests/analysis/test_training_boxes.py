"""A config's anchor-head settings, and its boxes scaled as the test pipeline scales them."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmdet_ghm.analysis.training_boxes import (deterministic_resize, head_settings,
                                               resized_shape, type_name)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _config(name):
    return Config.fromfile(osp.join(REPO, 'configs', 'synthetic', name))


def test_head_settings_of_the_tiny_retinanet():
    settings = head_settings(_config('retinanet_tiny-r18_fpn_fl_synthetic-shapes.py'))
    assert settings['anchor_generator'] == dict(
        type='AnchorGenerator', octave_base_scale=1.5, scales_per_octave=3,
        ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32])
    assert (settings['pos_iou_thr'], settings['neg_iou_thr'], settings['min_pos_iou']) == \
        (0.5, 0.4, 0)
    assert settings['assigner_options'] == dict(ignore_iof_thr=-1)
    assert settings['pad_size_divisor'] == 32 and settings['allowed_border'] == -1


@pytest.mark.parametrize('name, match', [
    ('fcos_tiny-r18_fpn_fl_synthetic-shapes.py',
     r'model.bbox_head \(FCOSHead\) has no anchor_generator: anchor-free heads'),
    ('atss_tiny-r18_fpn_fl_synthetic-shapes.py',
     'model.train_cfg.assigner is ATSSAssigner: only MaxIoUAssigner is supported'),
    ('faster-rcnn_tiny-r18_fpn_ghmc-softmax_synthetic-shapes.py',
     r'the model \(FasterRCNN\) has no bbox_head'),
])
def test_heads_that_are_not_covered_are_refused_by_name(name, match):
    with pytest.raises(ValueError, match=match):
        head_settings(_config(name))


def test_type_names_drop_the_scope_and_name_classes():
    assert type_name(dict(type='mmdet.Resize')) == 'Resize'
    assert type_name(dict(type=Config)) == 'Config'


@pytest.mark.parametrize('size, resize, expected', [
    ((64, 64), dict(scale=(128, 128), keep_ratio=True), (128, 128)),
    ((100, 50), dict(scale=(128, 128), keep_ratio=True), (128, 64)),
    ((100, 50), dict(scale=(128, 96), keep_ratio=False), (128, 96)),
    ((100, 50), dict(scale=128, keep_ratio=False), (128, 128)),
    ((333, 101), dict(scale_factor=1.0, keep_ratio=True), (333, 101)),
    ((100, 50), dict(scale_factor=0.5, keep_ratio=True), (50, 25)),
    ((1333, 600), dict(scale=(1333, 800), keep_ratio=True), (1333, 600)),
    ((500, 375), dict(scale=(1333, 800), keep_ratio=True), (1067, 800)),
])
def test_resized_shape_is_mmdetections_resize(size, resize, expected):
    import numpy as np
    from mmdet.datasets.transforms import Resize
    assert resized_shape(*size, resize) == expected
    out = Resize(**resize)(dict(img=np.zeros(size[::-1] + (3,), np.uint8)))
    assert out['img_shape'][::-1] == expected


def test_deterministic_resize_of_the_test_pipeline():
    cfg = _config('retinanet_tiny-r18_fpn_fl_synthetic-shapes.py')
    assert deterministic_resize(cfg) == dict(type='Resize', scale=(128, 128), keep_ratio=True)
    cfg.test_dataloader.dataset.pipeline = [dict(type='LoadImageFromFile')]
    assert deterministic_resize(cfg) is None
    cfg.test_dataloader.dataset.pipeline = [dict(type='RandomResize', scale=(128, 128))]
    with pytest.raises(ValueError, match='resizes with RandomResize'):
        deterministic_resize(cfg)


def test_a_sample_of_the_split_says_how_many_images_the_split_has(tmp_path):
    from mmengine.config import Config

    from mmdet_ghm.analysis.training_boxes import collect_boxes
    from mmdet_ghm.study.data_sets import QUICK_GENERATOR, run_overrides
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'synthetic',
                                   'retinanet_tiny-r18_fpn_fl_synthetic-shapes.py'))
    cfg.merge_from_dict(run_overrides('shapes', str(tmp_path / 'tiny') + '/',
                                      dict(QUICK_GENERATOR), quick=True))
    data = collect_boxes(cfg, 'train', augment=False, samples=3, seed=0)
    assert data['num_images'] == 3 and len(data['gt_bboxes']) == 3
    assert data['split_images'] == QUICK_GENERATOR['num_train']
