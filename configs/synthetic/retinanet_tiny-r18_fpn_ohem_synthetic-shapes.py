# Sigmoid CE with online hard example mining: every positive element plus the
# hardest negatives, 3 per positive and at least 100, per FPN level; the mean
# over the kept elements.
_base_ = [
    './retinanet_tiny-r18_fpn_fl_synthetic-shapes.py',
    '../_base_/losses/loss_settings.py',
]
model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.ohem)))
