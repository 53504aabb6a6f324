# FCOS R-50-caffe-FPN (GN head) 1x with GHM-C in place of Focal Loss, with
# per-level gradient density.
#
# MMDetection's fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py (36.6 box AP with
# Focal Loss), unchanged but for the head type and the classification loss:
# GHMFCOSHead is FCOSHead whose classification loss is called once per FPN
# level (cls_loss_per_level=True), so GHM-C counts its regions per level and
# the five levels share one EMA, as in the published RetinaNet GHM configs
# (RetinaHead calls its loss per level); FCOSHead itself would call it once
# over all levels flattened (set cls_loss_per_level=False for that).
# GHM-C as published (bins=30, momentum=0.75, sigmoid, loss_weight=1.0); the
# base config already clips gradients at max_norm=35, as the GHM configs do.
# The box loss stays FCOS's IoU loss on decoded boxes: GHM-R harmonizes the
# ASL1 loss of box deltas and does not apply to it (README).
# Not trained on COCO by this project yet.
_base_ = [
    'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    '../_base_/losses/loss_settings.py',
]
custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
# generator states in every checkpoint: --resume continues exactly
custom_hooks = [dict(type='RNGStateHook')]

model = dict(
    bbox_head=dict(
        type='GHMFCOSHead',
        cls_loss_per_level=True,
        loss_cls=dict(_delete_=True, **_base_.ghmc)))
