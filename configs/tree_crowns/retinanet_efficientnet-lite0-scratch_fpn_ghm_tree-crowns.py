# Control: retinanet_efficientnet-lite0_fpn_ghm_tree-crowns.py without the
# ImageNet weights (nothing frozen, BN statistics learned; see
# _base_/models/retinanet_efficientnet-lite0-scratch_fpn.py), trained as the
# from-scratch crowns configs are: 60 epochs, validation every 10.
_base_ = './retinanet_efficientnet-lite0_fpn_ghm_tree-crowns.py'
max_epochs = 60
model = dict(
    backbone=dict(
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=[dict(type='Kaiming', layer='Conv2d'),
                  dict(type='Constant', layer=['_BatchNorm', 'GroupNorm'], val=1)]))
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=2e-5,
        begin=0,
        end=max_epochs,
        by_epoch=True,
        convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
