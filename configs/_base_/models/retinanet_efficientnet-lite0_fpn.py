# The tiny RetinaNet (anchors, head, losses, assigner: retinanet_tiny-r18_fpn.py)
# on an ImageNet-pretrained EfficientNet-Lite0 (mmdet_ghm.models.backbones):
# its stride-8/16/32 outputs (40, 112, 320 channels) feed a 64-channel FPN
# (P3-P5) and a 64-channel 2-conv GN head. Needs the converted weights:
#     python tools/model_converters/efficientnet_lite2mmdet.py
# (writes checkpoints/efficientnet-lite0_imagenet.pth, relative to the working
# directory as data/ is). As MMDetection's R-50 configs freeze the stem and
# stage 1 and every BN statistic, this freezes the stem and the first three
# blocks (frozen_stages=2, strides 2-4) and keeps BN in eval mode
# (norm_eval=True); BN's affine parameters still train.
_base_ = './retinanet_tiny-r18_fpn.py'
lite0_checkpoint = 'checkpoints/efficientnet-lite0_imagenet.pth'
model = dict(
    # what the TensorFlow Lite weights were trained with: RGB, (x - 127) / 128
    data_preprocessor=dict(mean=[127.0, 127.0, 127.0], std=[128.0, 128.0, 128.0],
                           bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='EfficientNetLite',
        arch='lite0',
        out_indices=(3, 4, 5),
        frozen_stages=2,
        norm_cfg=dict(type='BN', eps=1e-3, requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=lite0_checkpoint)),
    neck=dict(in_channels=[40, 112, 320], out_channels=64, add_extra_convs=False),
    bbox_head=dict(in_channels=64, feat_channels=64))
