# GHM-C + GHM-R with the published hyper-parameters (as every *_ghm_* config
# here) in place of Focal Loss + L1; everything else as the FL config.
_base_ = [
    './retinanet_efficientnet-lite0_fpn_fl_coco-format.py',
    '../_base_/losses/loss_settings.py',
]
model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.ghmc),
        loss_bbox=dict(_delete_=True, **_base_.ghmr)))
optim_wrapper = dict(clip_grad=_base_.ghm_clip_grad)
custom_hooks = _base_.ghm_custom_hooks
