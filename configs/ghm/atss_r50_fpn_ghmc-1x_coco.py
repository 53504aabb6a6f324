# ATSS R-50-FPN 1x with GHM-C in place of Focal Loss.
#
# MMDetection's atss/atss_r50_fpn_1x_coco.py (39.4 box AP with Focal Loss),
# unchanged but for the classification loss and gradient clipping. ATSSHead
# calls the classification loss once per FPN level (with the label weights),
# so GHM-C's density is per level with one shared EMA, as in the published
# RetinaNet GHM configs, with no change to the head.
# GHM-C as published (bins=30, momentum=0.75, sigmoid, loss_weight=1.0) and
# the GHM configs' gradient clipping (max_norm=35, norm_type=2).
# The box loss stays ATSS's GIoU loss on decoded boxes: GHM-R harmonizes the
# ASL1 loss of box deltas and does not apply to it (README).
# Not trained on COCO by this project yet.
_base_ = [
    'mmdet::atss/atss_r50_fpn_1x_coco.py',
    '../_base_/losses/loss_settings.py',
]
custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
# generator states in every checkpoint: --resume continues exactly
custom_hooks = [dict(type='RNGStateHook')]

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.ghmc)))

optim_wrapper = dict(clip_grad=_base_.ghm_clip_grad)
