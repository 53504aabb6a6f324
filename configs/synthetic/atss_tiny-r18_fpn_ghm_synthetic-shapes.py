# Tiny ATSS with GHM-C (published settings: bins=30, momentum=0.75, gradient
# clipping max_norm=35). ATSSHead calls the classification loss once per FPN
# level (with the label weights), so the gradient density is per level with
# one shared EMA, as in RetinaNet, with no change to the head. The box loss
# stays ATSS's GIoU loss: GHM-R is for delta regression (README).
_base_ = './atss_tiny-r18_fpn_fl_synthetic-shapes.py'
model = dict(
    bbox_head=dict(
        loss_cls=dict(
            _delete_=True,
            type='GHMCLoss',
            bins=30,
            momentum=0.75,
            use_sigmoid=True,
            loss_weight=1.0)))
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
custom_hooks = [dict(type='GHMStatsHook'), dict(type='RNGStateHook')]
