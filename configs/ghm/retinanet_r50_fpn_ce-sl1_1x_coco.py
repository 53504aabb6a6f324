# RetinaNet R-50-FPN 1x, sigmoid cross-entropy + SmoothL1: the "CE" baseline of
# Li et al., "Gradient Harmonized Single-stage Detector" (AAAI 2019).
#
# Everything except the two losses and gradient clipping is MMDetection's own
# RetinaNet R-50-FPN 1x (SGD lr 0.01 for 16 images, steps at epochs 8 and 11).
# Sigmoid CE over all anchors (no sampling, no focal term). The head must keep
# `use_sigmoid=True` so that RetinaHead predicts `num_classes` sigmoid logits.
# SmoothL1 (beta=0.11, loss_weight=1.0) and grad clipping (max_norm=35) are the
# authors' settings (libuyu/GHM_Detection, experiments/cfg_*.py).
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/losses/loss_settings.py',
]
custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
# generator states in every checkpoint: --resume continues exactly
custom_hooks = [dict(type='RNGStateHook')]

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.ce_sigmoid),
        loss_bbox=dict(
            _delete_=True, type='SmoothL1Loss', beta=0.11, loss_weight=1.0)))

optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
