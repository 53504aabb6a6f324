# Baseline: plain sigmoid cross-entropy for classification, no re-weighting.
_base_ = './retinanet_tiny-r18_fpn_fl_tree-crowns.py'
model = dict(
    bbox_head=dict(
        loss_cls=dict(
            _delete_=True,
            type='CrossEntropyLoss',
            use_sigmoid=True,
            loss_weight=1.0)))
