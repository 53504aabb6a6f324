# Tiny ATSS with GHM-C (published settings: bins=30, momentum=0.75, gradient
# clipping max_norm=35). ATSSHead calls the classification loss once per FPN
# level (with the label weights), so the gradient density is per level with
# one shared EMA, as in RetinaNet, with no change to the head. The box loss
# stays ATSS's GIoU loss: GHM-R is for delta regression (README).
_base_ = [
    './atss_tiny-r18_fpn_fl_synthetic-shapes.py',
    '../_base_/losses/loss_settings.py',
]
model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.ghmc)))
optim_wrapper = dict(clip_grad=_base_.ghm_clip_grad)
custom_hooks = _base_.ghm_custom_hooks
