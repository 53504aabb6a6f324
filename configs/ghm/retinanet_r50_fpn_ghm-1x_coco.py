# RetinaNet R-50-FPN 1x, GHM-C + GHM-R: the full method of Li et al.,
# "Gradient Harmonized Single-stage Detector" (AAAI 2019).
#
# Same settings as MMDetection's `ghm/retinanet_r50_fpn_ghm-1x_coco.py` and the
# authors' experiments/cfg_retinanet_ghm_r50_fpn_1x.py: GHM-C (bins=30,
# momentum=0.75, sigmoid, loss_weight=1.0), GHM-R (mu=0.02, bins=10,
# momentum=0.7, loss_weight=10.0), grad clipping max_norm=35, norm_type=2.
# Only the loss types change, to this plugin's GHMCLoss / GHMRLoss.
_base_ = [
    'mmdet::ghm/retinanet_r50_fpn_ghm-1x_coco.py',
    '../_base_/losses/loss_settings.py',
]
custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
# generator states in every checkpoint: --resume continues exactly
custom_hooks = [dict(type='RNGStateHook')]

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.ghmc),
        loss_bbox=dict(_delete_=True, **_base_.ghmr)))

optim_wrapper = dict(clip_grad=_base_.ghm_clip_grad)
