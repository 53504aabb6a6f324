# RetinaNet R-50-FPN 1x, GHM-C + Authentic Smooth L1: the "ASL1" row of the
# regression comparison (SL1 vs ASL1 vs GHM-R) in Li et al., "Gradient
# Harmonized Single-stage Detector" (AAAI 2019).
#
# GHM-C as published (bins=30, momentum=0.75, sigmoid, loss_weight=1.0).
# ASL1 = sqrt(d^2 + mu^2) - mu with GHM-R's mu=0.02 and no gradient-density
# weights, normalised like SmoothL1 by RetinaNet's avg_factor. loss_weight
# 1.0 as for SmoothL1: for |d| >> mu both are |d| minus a constant (mu for
# ASL1, beta / 2 = 0.055 for SL1), so the comparison isolates the shape near
# zero. Grad clipping max_norm=35. Everything else is MMDetection's RetinaNet
# R-50-FPN 1x.
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
            _delete_=True,
            type='AuthenticSmoothL1Loss',
            mu=0.02,
            loss_weight=1.0)))

optim_wrapper = dict(clip_grad=_base_.ghm_clip_grad)
