# Tree crowns, FL, with flips only (no scale or colour jitter): the first
# setting of the study's FL tuning runs on this set (README "Tree crowns").
_base_ = './retinanet_tiny-r18_fpn_fl_tree-crowns.py'
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=[0.25, 0.25, 0.25],
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
