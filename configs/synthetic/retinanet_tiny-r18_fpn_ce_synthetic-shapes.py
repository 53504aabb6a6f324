# Baseline: plain sigmoid cross-entropy for classification, no re-weighting.
_base_ = [
    './retinanet_tiny-r18_fpn_fl_synthetic-shapes.py',
    '../_base_/losses/loss_settings.py',
]
model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.ce_sigmoid)))
