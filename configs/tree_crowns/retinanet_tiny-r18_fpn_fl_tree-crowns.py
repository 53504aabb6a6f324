# Tiny RetinaNet + Focal Loss on the tree-crown set (real aerial images; CPU,
# minutes). The synthetic study's model with one class, trained from scratch
# with the synthetic configs' AdamW recipe stretched to 60 epochs of 9
# iterations (batch 16), scale/colour jitter and flips (the data set's base).
# The CE and GHM configs inherit this one and only swap the losses.
_base_ = [
    '../_base_/models/retinanet_tiny-r18_fpn.py',
    '../_base_/datasets/tree_crowns.py',
    '../_base_/schedules/synthetic_adamw_30e.py',
]
custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)

max_epochs = 60
model = dict(
    bbox_head=dict(num_classes=1),
    # a val region holds up to ~200 crowns
    test_cfg=dict(nms_pre=2000, max_per_img=500))
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
