# Tree crowns in NEON aerial RGB imagery (mmdet_ghm.datasets.tree_crowns):
# built on first use into data_root (relative to the working directory, like
# MMDetection's data/coco/) from the sample data of the deepforest 2.1.0 wheel,
# the only download (pip download --no-deps; cached in data/cache/).
# Train: 256 px tiles (stride 192) of the left ~70 % of two Yellowstone
# crops; val: the right ~30 % of each, whole, at its own scale; no crown is in
# both. Needs: custom_imports = dict(imports=['mmdet_ghm'], ...) in the final config.
dataset_type = 'TreeCrownsDataset'
data_root = 'data/tree_crowns/'
# Converter arguments (tile_size, tile_stride); changing them for an existing
# data_root raises rather than overwriting it (use another data_root).
converter_cfg = dict()
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    # crown sizes differ by about 2x between the two source images: scale
    # jitter (resize by 0.75-1.5, then a random 256 px crop), colour jitter,
    # and, seen from above, a forest has no up or left: flips on both axes.
    # (Chosen by the study's FL tuning runs, README "Tree crowns".)
    dict(type='RandomResize', scale=(256, 256), ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=(256, 256), allow_negative_crop=True),
    dict(type='PhotoMetricDistortion', brightness_delta=24,
         contrast_range=(0.8, 1.2), saturation_range=(0.8, 1.2), hue_delta=8),
    dict(type='RandomFlip', prob=[0.25, 0.25, 0.25],
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale_factor=1.0, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        converter_cfg=converter_cfg,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        # tiles without a crown are real background: keep them
        filter_cfg=dict(filter_empty_gt=False, min_size=0),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        converter_cfg=converter_cfg,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
