# Alpha-balanced sigmoid CE (alpha=0.75 on positives, 0.25 on negatives), no
# easy/hard re-weighting: the "class-imbalanced CE" of the GHM comparison.
_base_ = [
    './retinanet_tiny-r18_fpn_fl_synthetic-shapes.py',
    '../_base_/losses/loss_settings.py',
]
model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.alpha_ce)))
