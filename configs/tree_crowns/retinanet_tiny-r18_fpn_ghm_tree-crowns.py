# GHM-C + GHM-R with the published hyper-parameters (Li et al., AAAI 2019;
# MMDetection's configs/ghm): GHM-C bins=30 momentum=0.75, GHM-R mu=0.02
# bins=10 momentum=0.7 loss_weight=10, gradient clipping max_norm=35.
_base_ = [
    './retinanet_tiny-r18_fpn_fl_tree-crowns.py',
    '../_base_/losses/loss_settings.py',
]
model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.ghmc),
        loss_bbox=dict(_delete_=True, **_base_.ghmr)))
optim_wrapper = dict(clip_grad=_base_.ghm_clip_grad)
# Log how GHM sees each batch (region histogram, EMA density, weight shares)
# at the logger's interval; see docs/gradient_density.md.
custom_hooks = _base_.ghm_custom_hooks
