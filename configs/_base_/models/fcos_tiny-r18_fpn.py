# The tiny RetinaNet's detector (retinanet_tiny-r18_fpn.py: same data
# preprocessor, narrow ResNet-18 from scratch, FPN P3-P5 with 32 channels)
# with MMDetection's FCOS head in place of the RetinaNet head: the settings of
# MMDetection's fcos_r50-caffe_fpn_gn-head_1x_coco (Focal Loss, IoU loss on
# the decoded boxes, centerness CE, no center sampling, exp() box scale),
# scaled down like the RetinaNet head: 2 stacked convs of 32 channels with
# GroupNorm (8 groups).
# Regression ranges: the objects are 12-40 px, so FCOS's published ranges
# (max distance to the box sides <= 64 on P3, ...) would put nearly all of
# them on P3. These ranges spread them over the levels roughly as the tiny
# RetinaNet's anchors do (12-19 px on P3, 24-38 px on P4): a point whose
# largest distance to the sides is up to 16 px goes to P3, 16-32 px to P4,
# more to P5.
_base_ = './retinanet_tiny-r18_fpn.py'
model = dict(
    type='FCOS',
    bbox_head=dict(
        _delete_=True,
        type='FCOSHead',
        num_classes=5,
        in_channels=32,
        stacked_convs=2,
        feat_channels=32,
        strides=[8, 16, 32],
        regress_ranges=((-1, 16), (16, 32), (32, 1e8)),
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
        loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(
            type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    # FCOS assigns by location and regression range: no assigner, no sampler
    train_cfg=None)
