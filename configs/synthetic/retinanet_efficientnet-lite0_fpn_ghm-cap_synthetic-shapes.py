# GHM-C + GHM-R (published settings) with weight_cap=100 on both losses, as
# retinanet_tiny-r18_fpn_ghm-cap_synthetic-shapes.py, on the pretrained
# EfficientNet-Lite0.
_base_ = './retinanet_efficientnet-lite0_fpn_ghm_synthetic-shapes.py'
model = dict(
    bbox_head=dict(
        loss_cls=dict(weight_cap=_base_.ghm_weight_cap),
        loss_bbox=dict(weight_cap=_base_.ghm_weight_cap)))
