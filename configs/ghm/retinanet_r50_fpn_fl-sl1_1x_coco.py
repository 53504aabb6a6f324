# RetinaNet R-50-FPN 1x, Focal Loss + SmoothL1: the "FL + SL1" baseline of
# Li et al., "Gradient Harmonized Single-stage Detector" (AAAI 2019).
#
# Everything except the regression loss and gradient clipping is MMDetection's
# own RetinaNet R-50-FPN 1x (Focal Loss gamma=2.0, alpha=0.25). SmoothL1
# (beta=0.11, loss_weight=1.0) and grad clipping (max_norm=35, norm_type=2) are
# the authors' baseline settings (libuyu/GHM_Detection,
# experiments/cfg_retinanet_origin_r50_fpn_1x.py).
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
# generator states in every checkpoint: --resume continues exactly
custom_hooks = [dict(type='RNGStateHook')]

model = dict(
    bbox_head=dict(
        loss_bbox=dict(
            _delete_=True, type='SmoothL1Loss', beta=0.11, loss_weight=1.0)))

optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
