# The tiny ATSS detector (atss_tiny-r18_fpn.py: narrow ResNet-18 from scratch,
# FPN P3-P5, ATSS assigner, 16/32/64 px anchors) with MMDetection's GFL head:
# the settings of gfl_r50_fpn_1x_coco (Quality Focal Loss beta=2, distribution
# focal loss 0.25 with reg_max=16, GIoU loss weight 2), scaled down like the
# ATSS head (2 stacked convs of 32 channels, GroupNorm of 8 groups).
_base_ = './atss_tiny-r18_fpn.py'
model = dict(
    type='GFL',
    bbox_head=dict(
        _delete_=True,
        type='GFLHead',
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
        loss_cls=dict(
            type='QualityFocalLoss',
            use_sigmoid=True,
            beta=2.0,
            loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        reg_max=16,
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)))
