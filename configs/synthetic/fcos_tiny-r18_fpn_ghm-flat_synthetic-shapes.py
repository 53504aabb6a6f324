# Tiny FCOS with GHM-C (published settings: bins=30, momentum=0.75, gradient
# clipping max_norm=35) as MMDetection's FCOSHead calls it: once over the
# scores of all levels and images flattened, so the gradient density (and the
# EMA, updated once per iteration) is that of all levels at once. This is
# what a plain type='FCOSHead' config with GHM-C gives; the per-level
# fcos_tiny-r18_fpn_ghm_synthetic-shapes.py inherits it and changes only the
# head type. The box loss stays FCOS's IoU loss: GHM-R is for delta
# regression (README).
_base_ = [
    './fcos_tiny-r18_fpn_fl_synthetic-shapes.py',
    '../_base_/losses/loss_settings.py',
]
model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.ghmc)))
optim_wrapper = dict(clip_grad=_base_.ghm_clip_grad)
custom_hooks = _base_.ghm_custom_hooks
