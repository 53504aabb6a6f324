# Tiny RetinaNet + Focal Loss on the synthetic shapes set (CPU, minutes;
# run by tools/main_job.py, or by any MMDetection train script).
# The CE and GHM configs inherit this one and only swap the losses, so all
# three share data, model, schedule and seed.
_base_ = [
    '../_base_/models/retinanet_tiny-r18_fpn.py',
    '../_base_/datasets/synthetic_shapes.py',
    '../_base_/schedules/synthetic_adamw_30e.py',
]
custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
