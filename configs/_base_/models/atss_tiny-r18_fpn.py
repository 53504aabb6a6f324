# The tiny RetinaNet's detector (retinanet_tiny-r18_fpn.py: same data
# preprocessor, narrow ResNet-18 from scratch, FPN P3-P5 with 32 channels)
# with MMDetection's ATSS head in place of the RetinaNet head: the settings of
# MMDetection's atss_r50_fpn_1x_coco (one square anchor per location, ATSS
# assigner with top-9 candidates per level, Focal Loss, GIoU loss (weight 2)
# on the decoded boxes, centerness CE, NMS at IoU 0.6), scaled down like the
# RetinaNet head: 2 stacked convs of 32 channels with GroupNorm (8 groups).
# Anchors: the published octave_base_scale=8 gives 64 px anchors on P3, larger
# than any object here (12-40 px); 2 gives 16, 32 and 64 px on P3-P5, the
# middle of the tiny RetinaNet's anchor sizes on each level.
_base_ = './retinanet_tiny-r18_fpn.py'
model = dict(
    type='ATSS',
    bbox_head=dict(
        _delete_=True,
        type='ATSSHead',
        num_classes=5,
        in_channels=32,
        stacked_convs=2,
        feat_channels=32,
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
        anchor_generator=dict(
            type='AnchorGenerator',
            ratios=[1.0],
            octave_base_scale=2,
            scales_per_octave=1,
            strides=[8, 16, 32]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_centerness=dict(
            type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(
        _delete_=True,
        assigner=dict(type='ATSSAssigner', topk=9),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(nms=dict(type='nms', iou_threshold=0.6)))
