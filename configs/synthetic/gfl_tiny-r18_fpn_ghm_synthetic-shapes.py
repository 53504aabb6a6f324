# Tiny GFL with GHM-C in place of Quality Focal Loss (published GHM-C
# settings: bins=30, momentum=0.75, gradient clipping max_norm=35). GFLHead
# calls the classification loss once per FPN level with the target
# (labels, IoU scores) and weight=label_weights: GHM-C takes the score of the
# labelled class as its soft target (g = |sigmoid(x) - score|), with the
# density per level and one shared EMA. The box losses stay GFL's (GIoU and
# distribution focal loss): GHM-R is for delta regression (README).
_base_ = [
    './gfl_tiny-r18_fpn_qfl_synthetic-shapes.py',
    '../_base_/losses/loss_settings.py',
]
model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.ghmc)))
optim_wrapper = dict(clip_grad=_base_.ghm_clip_grad)
custom_hooks = _base_.ghm_custom_hooks
