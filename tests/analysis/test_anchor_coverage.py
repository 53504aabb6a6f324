"""Anchor coverage on boxes whose answers are known, and the tool end to end.

Most tests use one level of square 32 px anchors (``octave_base_scale`` 4,
one scale, ratio 1, stride 8: centres on multiples of 8) on a 64 px image,
where IoUs can be worked out by hand: a 32 px box moved by ``d`` px along one
axis has IoU ``(32 - d) / (32 + d)`` with the anchor, by ``d`` along both
``(32 - d)^2 / (2 * 32^2 - (32 - d)^2)``.
"""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch

from mmdet_ghm.analysis.anchor_coverage import (DEFAULT_CANDIDATES, anchor_coverage,
                                                build_anchor_generator, image_anchors,
                                                suggest_octave_base_scale)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'anchor_coverage.py')
SQUARE = dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=1, ratios=[1.0],
              strides=[8])
#: the tiny RetinaNet's generator (configs/_base_/models/retinanet_tiny-r18_fpn.py)
TINY = dict(type='AnchorGenerator', octave_base_scale=1.5, scales_per_octave=3,
            ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32])


def _coverage(boxes, generator=SQUARE, size=(64, 64), **kwargs):
    return anchor_coverage([np.array(boxes, np.float32)], [size], generator, **kwargs)


def test_a_box_equal_to_an_anchor_is_covered_with_iou_one():
    report = _coverage([[16, 16, 48, 48]])  # the anchor centred on (32, 32)
    overall = report['overall']
    assert overall['num_boxes'] == 1 and overall['uncovered_share'] == 0
    assert overall['best_iou']['min'] == overall['best_iou']['max'] == 1.0
    # positives: the anchor and its four 8 px neighbours along the axes (IoU 24/40 = 0.6);
    # the diagonal ones (24^2 / (2 * 32^2 - 24^2) = 0.39) and 16 px ones (1/3) are not
    assert overall['positives_per_box'] == dict(mean=5.0, median=5.0)
    assert overall['no_positive_share'] == overall['low_quality_only_share'] == 0
    assert overall['box_size']['median'] == 32


def test_a_box_moved_half_a_stride_has_the_hand_computed_iou():
    box = [[20, 16, 52, 48]]  # 32 px, centre (36, 32): 4 px from the anchors at x 32 and 40
    overall = _coverage(box)['overall']
    assert overall['best_iou']['max'] == pytest.approx(28 / 36, abs=1e-6)  # 896 / 1152
    assert overall['positives_per_box']['mean'] == 2  # x 24, 48: 20/44; y +-8: 0.488
    # with octave_base_scale 3 (24 px anchors) both anchors lie inside the box: 24^2 / 32^2
    overall = _coverage(box, dict(SQUARE, octave_base_scale=3))['overall']
    assert overall['best_iou']['max'] == pytest.approx(9 / 16, abs=1e-6)
    assert overall['uncovered_share'] == 0 and overall['positives_per_box']['mean'] == 2


def test_a_box_far_smaller_than_every_anchor_is_uncovered_at_the_analytic_iou():
    # a 4 px box inside the 3 x 3 anchors centred on x, y in {24, 32, 40}: IoU 16 / 1024 each
    box = [[30, 30, 34, 34]]
    overall = _coverage(box)['overall']
    assert overall['uncovered_share'] == 1
    assert overall['best_iou']['max'] == pytest.approx(16 / 1024, abs=1e-7)
    # min_pos_iou 0: low-quality matching gives it all nine anchors of that IoU
    assert overall['low_quality_only_share'] == 1 and overall['positives_per_box']['mean'] == 9
    overall = _coverage(box, min_pos_iou=0.1)['overall']
    assert overall['no_positive_share'] == 1 and overall['positives_per_box']['mean'] == 0
    assert overall['uncovered_share'] == 1 and overall['low_quality_only_share'] == 0
    overall = _coverage(box, assigner_options=dict(gt_max_assign_all=False))['overall']
    assert overall['positives_per_box']['mean'] == 1
    # the tiny RetinaNet: every anchor has the area (stride * scale)^2; the smallest, 12^2,
    # holds a 2 px box centred on its centre, so the best IoU is 4 / 144
    overall = _coverage([[31, 31, 33, 33]], TINY, size=(128, 128))['overall']
    assert overall['uncovered_share'] == 1
    assert overall['best_iou']['max'] == pytest.approx(4 / 144, rel=1e-5)


def test_boxes_go_to_the_level_of_their_best_anchor():
    two_levels = dict(SQUARE, strides=[8, 16])  # 32 px anchors on stride 8, 64 px on 16
    boxes = [[16, 16, 48, 48], [32, 32, 96, 96]]
    report = _coverage(boxes, two_levels, size=(128, 128))
    first, second = report['levels']
    assert (first['stride'], second['stride']) == ([8, 8], [16, 16])
    assert first['anchor_sizes'] == [32, 32] and second['anchor_sizes'] == [64, 64]
    assert first['num_boxes'] == second['num_boxes'] == 1
    assert first['positives_by_level'] == [5, 0] and second['positives_by_level'] == [0, 5]
    assert first['positives_share'] == second['positives_share'] == 0.5
    assert report['overall']['positives_by_level'] == [2.5, 2.5]
    assert report['overall']['num_boxes'] == 2


def test_ignored_boxes_are_left_out_and_counted():
    boxes = [np.array([[16, 16, 48, 48], [30, 30, 34, 34]], np.float32),
             np.array([[0, 0, 4, 4]], np.float32)]
    flags = [np.array([False, True]), np.array([True])]
    report = anchor_coverage(boxes, [(64, 64), (64, 64)], SQUARE, ignore_flags=flags)
    assert report['num_ignored'] == 2 and report['num_boxes'] == 1
    alone = _coverage([[16, 16, 48, 48]])
    assert report['overall'] == alone['overall'] and report['levels'] == alone['levels']
    assert report['num_images'] == 2


def test_ignore_iof_thr_takes_anchors_over_ignored_boxes_out_as_in_training():
    box = np.array([[16, 16, 48, 48]], np.float32)
    # the same box, ignored: the anchors covering it by more than half (iof 1, 0.75, 0.56)
    # leave the assignment; the best left are the 16 px neighbours, IoU 1/3, four of them
    report = anchor_coverage([np.r_[box, box]], [(64, 64)], SQUARE,
                             ignore_flags=[np.array([False, True])],
                             assigner_options=dict(ignore_iof_thr=0.5))
    overall = report['overall']
    assert overall['best_iou']['max'] == pytest.approx(1 / 3, abs=1e-6)
    assert overall['uncovered_share'] == 1 and overall['positives_per_box']['mean'] == 4


def test_the_anchor_layout_follows_padding_and_allowed_border():
    generator = build_anchor_generator(SQUARE)
    anchors, levels = image_anchors(generator, (50, 50))
    assert len(anchors) == 7 * 7 and levels.eq(0).all()  # ceil(50 / 8)
    anchors, _ = image_anchors(generator, (50, 50), pad_size_divisor=32)
    assert len(anchors) == 8 * 8  # padded to 64
    anchors, _ = image_anchors(generator, (50, 50), pad_size_divisor=32, allowed_border=0)
    assert len(anchors) == 3 * 3  # centres 16, 24, 32: inside the unpadded 50 px
    assert anchors.min() >= 0 and anchors.max() < 50
    three = build_anchor_generator(TINY)
    anchors, levels = image_anchors(three, (100, 128), pad_size_divisor=32)
    assert torch.bincount(levels).tolist() == [9 * 16 * 16, 9 * 8 * 8, 9 * 4 * 4]


def test_a_level_without_boxes_reports_none():
    report = _coverage([[16, 16, 48, 48]], dict(SQUARE, strides=[8, 16]), size=(128, 128))
    empty = report['levels'][1]
    assert empty['num_boxes'] == 0 and empty['best_iou'] is None
    assert empty['uncovered_share'] is None and empty['positives_share'] == 0
    json.dumps(report)


@pytest.mark.parametrize('kwargs, match', [
    (dict(gt_bboxes=[np.zeros((1, 4))], image_sizes=[]), '1 box sets for 0 image sizes'),
    (dict(gt_bboxes=[np.zeros((1, 4))], image_sizes=[(8, 8)], ignore_flags=[[0, 1]]),
     '2 ignore flags for 1 boxes'),
    (dict(gt_bboxes=[np.zeros((2, 5))], image_sizes=[(8, 8)]), r'\(n, 4\) xyxy, got shape'),
])
def test_mismatched_inputs_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        anchor_coverage(anchor_generator=SQUARE, **kwargs)


def _anchors_of_scale(scale, size=(128, 128)):
    """Boxes equal to anchors of the tiny generator at ``octave_base_scale=scale``.

    The anchors at odd multiples of each level's stride, inside the image,
    all ratios and scales.
    """
    generator = build_anchor_generator(dict(TINY, octave_base_scale=scale))
    anchors, levels = image_anchors(generator, size)
    strides = torch.tensor([s[0] for s in generator.strides], dtype=torch.float32)[levels]
    centre = (anchors[:, :2] + anchors[:, 2:]) / 2
    odd = ((centre / strides[:, None]) % 2 == 1).all(dim=1)
    inside = (anchors[:, :2] >= 0).all(dim=1) & (anchors[:, 2:] <= size[0]).all(dim=1)
    return anchors[odd & inside].numpy()


def test_the_suggestion_recovers_the_scale_the_boxes_were_made_with():
    boxes = _anchors_of_scale(2.5)
    assert len(boxes) > 50
    suggestion = suggest_octave_base_scale([boxes], [(128, 128)], TINY)
    assert suggestion['current'] == 1.5 and suggestion['suggested'] == 2.5
    assert suggestion['uncovered_share'] == 0 and suggestion['mean_best_iou'] == 1.0
    assert suggestion['current_uncovered_share'] > 0
    values = [c['octave_base_scale'] for c in suggestion['candidates']]
    assert values == sorted(set(DEFAULT_CANDIDATES) | {1.5})
    # scale 5 puts the boxes of stride 16 and 32 on the finer level below; those of
    # stride 8 (20-32 px) then have no anchor of 40 px or more at IoU 0.5
    five = next(c for c in suggestion['candidates'] if c['octave_base_scale'] == 5)
    assert 0 < five['uncovered_share'] < 1
    assert suggestion['rule'].startswith('the candidate with the smallest share')


@pytest.mark.parametrize('current, suggested', [(3, 4), (2.5, 2)])
def test_equal_candidates_go_to_the_one_closest_to_the_config(current, suggested):
    # strides 8 and 16, one 32 px box on both grids: scale 2 (16, 32 px anchors) and scale 4
    # (32, 64 px) both hold it at IoU 1; the config's value fits it worse
    generator = dict(SQUARE, strides=[8, 16], octave_base_scale=current)
    suggestion = suggest_octave_base_scale([np.array([[16, 16, 48, 48]])], [(64, 64)],
                                           generator, candidates=[2, 4])
    assert suggestion['suggested'] == suggested and suggestion['mean_best_iou'] == 1


def test_the_suggestion_needs_an_octave_base_scale():
    explicit = dict(type='AnchorGenerator', scales=[4], ratios=[1.0], strides=[8])
    with pytest.raises(ValueError, match='octave_base_scale and scales_per_octave'):
        suggest_octave_base_scale([np.zeros((1, 4))], [(64, 64)], explicit)
    with pytest.raises(ValueError, match='no boxes'):
        suggest_octave_base_scale([np.zeros((0, 4))], [(64, 64)], SQUARE)


# -- the tool --------------------------------------------------------------------------------
def _load_tool():
    spec = importlib.util.spec_from_file_location('anchor_coverage_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: (file, raw 64 px box, iscrowd): resized to 128 px, the first two are the 12 px anchor
#: centred on (16, 16) (stride 8) and the 24 px one centred on (48, 48) (stride 16); flipped,
#: they stay anchors (centres 112 and 80 are on the grids).
IMAGES = (('a.png', [[5, 5, 6, 6, 0]]), ('b.png', [[18, 18, 12, 12, 0], [40, 40, 20, 20, 1]]))

CONFIG = '''
_base_ = [{model!r}, {data!r}]
custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
data_root = {root!r}
metainfo = dict(classes=('thing',))
model = dict(bbox_head=dict(num_classes=1))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(
    data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_{split}.json',
    data_prefix=dict(img='images/'), filter_cfg=dict(filter_empty_gt=False),
    pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_{split}.json',
    data_prefix=dict(img='images/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
'''


def _coco_fixture(root, images=IMAGES, split='train'):
    """A COCO-format set of 64 px images with the given ``[x, y, w, h, iscrowd]`` boxes."""
    import mmcv
    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'annotations').mkdir(exist_ok=True)
    coco = dict(images=[], annotations=[], categories=[dict(id=1, name='thing')])
    for image_id, (name, boxes) in enumerate(images, 1):
        mmcv.imwrite(np.full((64, 64, 3), 127, np.uint8), str(root / 'images' / name))
        coco['images'].append(dict(id=image_id, file_name=name, width=64, height=64))
        for x, y, w, h, crowd in boxes:
            coco['annotations'].append(dict(
                id=len(coco['annotations']) + 1, image_id=image_id, category_id=1,
                bbox=[x, y, w, h], area=w * h, iscrowd=crowd))
    (root / 'annotations' / f'instances_{split}.json').write_text(json.dumps(coco))
    config = root / 'coverage.py'
    config.write_text(CONFIG.format(
        model=osp.join(REPO, 'configs', '_base_', 'models', 'retinanet_tiny-r18_fpn.py'),
        data=osp.join(REPO, 'configs', '_base_', 'datasets', 'coco_format.py'),
        root=str(root) + '/', split=split))
    return str(config)


@pytest.mark.parametrize('extra', [[], ['--no-augment']], ids=['pipeline', 'annotations'])
def test_tool_end_to_end_on_a_coco_fixture(tmp_path, capsys, extra):
    config = _coco_fixture(tmp_path)
    out = tmp_path / 'report.json'
    assert _load_tool().main([config, '--out', str(out)] + extra) == 0
    report = json.loads(out.read_text())
    assert report['num_images'] == 2 and report['num_boxes'] == 2
    assert report['num_ignored'] == 1
    overall = report['overall']
    assert overall['uncovered_share'] == 0 and overall['best_iou']['min'] == 1.0
    assert [lvl['num_boxes'] for lvl in report['levels']] == [1, 1, 0]
    assert report['settings']['pad_size_divisor'] == 32
    assert report['settings']['pos_iou_thr'] == 0.5
    assert report['data']['source'] == ('annotations' if extra else 'pipeline')
    suggestion = report['suggestion']
    assert suggestion['current'] == 1.5 and suggestion['suggested'] == 1.5
    printed = capsys.readouterr().out
    assert 'suggested octave_base_scale: 1.5' in printed and 'uncovered' in printed


def test_tool_with_cfg_options_and_samples(tmp_path):
    config = _coco_fixture(tmp_path)
    out = tmp_path / 'report.json'
    _load_tool().main([config, '--no-augment', '--samples', '1', '--out', str(out),
                       '--cfg-options', 'model.bbox_head.anchor_generator.octave_base_scale=3'])
    report = json.loads(out.read_text())
    assert report['num_images'] == 1 and report['suggestion']['current'] == 3
    assert report['settings']['anchor_generator']['octave_base_scale'] == 3


@pytest.mark.parametrize('config, match', [
    ('fcos_tiny-r18_fpn_fl_synthetic-shapes.py', 'FCOSHead.*anchor-free heads'),
    ('atss_tiny-r18_fpn_fl_synthetic-shapes.py', 'ATSSAssigner: only MaxIoUAssigner'),
])
def test_tool_refuses_heads_it_does_not_cover(config, match):
    with pytest.raises(SystemExit, match=match):
        _load_tool().main([osp.join(REPO, 'configs', 'synthetic', config)])


def test_tool_refuses_an_empty_split(tmp_path):
    config = _coco_fixture(tmp_path, images=())
    with pytest.raises(SystemExit, match='the train split .* has no images'):
        _load_tool().main([config])
