# Alpha-balanced sigmoid CE (alpha=0.75 on positives, 0.25 on negatives), no
# easy/hard re-weighting: the "class-imbalanced CE" of the GHM comparison.
_base_ = './retinanet_tiny-r18_fpn_fl_synthetic-shapes.py'
model = dict(
    bbox_head=dict(
        loss_cls=dict(
            _delete_=True,
            type='AlphaBalancedCELoss',
            alpha=0.75,
            use_sigmoid=True,
            loss_weight=1.0)))
