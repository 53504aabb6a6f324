# RetinaNet R-101-FPN 1x, GHM-C + GHM-R (settings of the R-50 config).
_base_ = './retinanet_r50_fpn_ghm-1x_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')))
