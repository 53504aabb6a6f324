# GHM-C + GHM-R with the published hyper-parameters (as every *_ghm_* config
# here) in place of Focal Loss + L1; everything else as the FL config.
_base_ = './retinanet_efficientnet-lite0_fpn_fl_coco-format.py'
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
