# RetinaNet R-50-FPN 1x, GHM-C + SmoothL1: the "GHM-C + SL1" setting of
# Li et al., "Gradient Harmonized Single-stage Detector" (AAAI 2019).
#
# GHM-C as published (bins=30, momentum=0.75, sigmoid, loss_weight=1.0).
# SmoothL1 (beta=0.11, loss_weight=1.0) and grad clipping (max_norm=35,
# norm_type=2) are the authors' settings (libuyu/GHM_Detection,
# experiments/cfg_retinanet_ghm-c-only_r50_fpn_1x.py). Everything else is
# MMDetection's RetinaNet R-50-FPN 1x.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/losses/loss_settings.py',
]
custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
# generator states in every checkpoint: --resume continues exactly
custom_hooks = [dict(type='RNGStateHook')]

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.ghmc),
        loss_bbox=dict(
            _delete_=True, type='SmoothL1Loss', beta=0.11, loss_weight=1.0)))

optim_wrapper = dict(clip_grad=_base_.ghm_clip_grad)
