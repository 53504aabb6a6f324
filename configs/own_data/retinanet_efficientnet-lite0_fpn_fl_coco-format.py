# RetinaNet + Focal Loss fine-tuned from the ImageNet-pretrained
# EfficientNet-Lite0 on your own COCO-format set: the tree crowns' pretrained
# model and fine-tuning schedule (48 epochs of AdamW, validation every 4)
# with the data of _base_/datasets/coco_format.py. Inherit it and set
# data_root, classes and num_classes: docs/fine_tune_own_data.md.
_base_ = [
    '../_base_/models/retinanet_efficientnet-lite0_fpn.py',
    '../_base_/datasets/coco_format.py',
    '../_base_/schedules/synthetic_adamw_30e.py',
]
custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)

max_epochs = 48
train_cfg = dict(max_epochs=max_epochs, val_interval=4)
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
