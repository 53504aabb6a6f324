# Tree crowns, FL: scale jitter on the train tiles (resize by 0.75-1.5, then a
# random 256 px crop) and colour jitter, on top of the flips: the FL tuning
# run that chose this pipeline, which the data set's base config has used
# since (so this config now trains as retinanet_tiny-r18_fpn_fl_tree-crowns.py).
_base_ = './retinanet_tiny-r18_fpn_fl_tree-crowns.py'
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=(256, 256), ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=(256, 256), allow_negative_crop=True),
    dict(type='PhotoMetricDistortion', brightness_delta=24, contrast_range=(0.8, 1.2),
         saturation_range=(0.8, 1.2), hue_delta=8),
    dict(type='RandomFlip', prob=[0.25, 0.25, 0.25],
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
