# GHM-C + GHM-R with the published hyper-parameters (as
# retinanet_tiny-r18_fpn_ghm_synthetic-shapes.py) on the pretrained
# EfficientNet-Lite0: GHM-C bins=30 momentum=0.75, GHM-R mu=0.02 bins=10
# momentum=0.7 loss_weight=10, gradient clipping max_norm=35.
_base_ = './retinanet_efficientnet-lite0_fpn_fl_synthetic-shapes.py'
model = dict(
    bbox_head=dict(
        loss_cls=dict(
            _delete_=True,
            type='GHMCLoss',
            bins=30,
            momentum=0.75,
            use_sigmoid=True,
            loss_weight=1.0),
        loss_bbox=dict(
            _delete_=True,
            type='GHMRLoss',
            mu=0.02,
            bins=10,
            momentum=0.7,
            loss_weight=10.0)))
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
custom_hooks = [dict(type='GHMStatsHook'), dict(type='RNGStateHook')]
