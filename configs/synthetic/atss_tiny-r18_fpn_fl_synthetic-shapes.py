# Tiny ATSS + Focal Loss on the synthetic shapes set: the study's data,
# backbone, neck and recipe (AdamW, 30 epochs) with MMDetection's ATSS head
# (configs/_base_/models/atss_tiny-r18_fpn.py). The GHM-C ATSS configs
# inherit this one and only swap the classification loss (and clip gradients,
# as the published GHM configs do).
_base_ = [
    '../_base_/models/atss_tiny-r18_fpn.py',
    '../_base_/datasets/synthetic_shapes.py',
    '../_base_/schedules/synthetic_adamw_30e.py',
]
custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
