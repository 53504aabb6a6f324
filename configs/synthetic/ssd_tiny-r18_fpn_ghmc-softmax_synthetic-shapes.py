# SSD-style single-stage detector with softmax GHM-C on the synthetic shapes
# set: GHMSSDHead (SSDHead whose hard negative mining is replaced by a
# configurable classification loss, here GHMCLoss(use_sigmoid=False)) on the
# tiny from-scratch backbone and a 3-level FPN (strides 8-32).
_base_ = [
    '../_base_/datasets/synthetic_shapes.py',
    '../_base_/schedules/synthetic_adamw_30e.py',
    '../_base_/losses/loss_settings.py',
]
custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
model = dict(
    type='SingleStageDetector',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='ResNet', depth=18, base_channels=16, num_stages=3, strides=(1, 2, 2),
        dilations=(1, 1, 1), out_indices=(1, 2), frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch',
        init_cfg=None),
    neck=dict(type='FPN', in_channels=[32, 64], out_channels=32, start_level=0,
              add_extra_convs='on_output', num_outs=3),
    bbox_head=dict(
        type='GHMSSDHead',
        num_classes=5,
        in_channels=(32, 32, 32),
        anchor_generator=dict(
            type='SSDAnchorGenerator', scale_major=False, input_size=128,
            strides=[8, 16, 32], ratios=([2], [2, 3], [2, 3]),
            min_sizes=[12, 24, 48], max_sizes=[24, 48, 96]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=_base_.ghmc_softmax),
    train_cfg=dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                      min_pos_iou=0., ignore_iof_thr=-1, gt_max_assign_all=False),
        sampler=dict(type='PseudoSampler'),
        smoothl1_beta=1., allowed_border=-1, pos_weight=-1, neg_pos_ratio=3, debug=False),
    test_cfg=dict(nms_pre=1000, nms=dict(type='nms', iou_threshold=0.45), min_bbox_size=0,
                  score_thr=0.02, max_per_img=100))

optim_wrapper = dict(clip_grad=_base_.ghm_clip_grad)
