# Continuous focal loss |y - p|^beta * CE with beta=2 and no alpha: the
# seed notes' "generalized focal loss" (ContinuousFocalLoss).
_base_ = [
    './retinanet_tiny-r18_fpn_fl_synthetic-shapes.py',
    '../_base_/losses/loss_settings.py',
]
model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.continuous_focal)))
