# Faster R-CNN with softmax GHM-C in its R-CNN box head, on the synthetic
# shapes set: the tiny from-scratch backbone of the RetinaNet configs, a
# 3-level FPN (strides 8-32) and small anchors for 10-40 px objects. The
# (C + 1)-way softmax head uses GHMCLoss(use_sigmoid=False): g = 1 - p_y.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    '../_base_/datasets/synthetic_shapes.py',
    '../_base_/schedules/synthetic_adamw_30e.py',
    '../_base_/losses/loss_settings.py',
]
custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        depth=18, base_channels=16, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1),
        out_indices=(1, 2), frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[32, 64], out_channels=32, num_outs=3),
    rpn_head=dict(
        in_channels=32, feat_channels=32,
        anchor_generator=dict(scales=[2, 4], ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32, featmap_strides=[8, 16, 32]),
        bbox_head=dict(
            in_channels=32, fc_out_channels=128, num_classes=5,
            loss_cls=dict(_delete_=True, **_base_.ghmc_softmax))),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300),
                   rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))

optim_wrapper = dict(clip_grad=_base_.ghm_clip_grad)
