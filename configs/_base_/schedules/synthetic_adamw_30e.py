# Schedule of every synthetic-set config (tools/main_job.py and the softmax
# detectors): 30 epochs of 50 iterations (batch 16), AdamW with warm-up and a
# cosine decay, one checkpoint at the end, validation every 5 epochs; on top
# of MMDetection's default runtime.
_base_ = 'mmdet::_base_/default_runtime.py'

max_epochs = 30
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# From scratch in ~1000 iterations: AdamW + cosine converges much faster than
# the COCO recipe's SGD; every loss gets the same optimizer and schedule.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05))
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

# RNGStateHook: generator states in every checkpoint, so that --resume
# continues exactly as the uninterrupted run (configs that add hooks keep it).
custom_hooks = [dict(type='RNGStateHook')]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs,
                    max_keep_ckpts=1))
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=True)
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=16)
