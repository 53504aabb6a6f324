# Tiny GFL + Quality Focal Loss on the synthetic shapes set: the study's data,
# backbone, neck and recipe (AdamW, 30 epochs) with MMDetection's GFL head
# (configs/_base_/models/gfl_tiny-r18_fpn.py). The GHM-C GFL config inherits
# this one and only swaps the classification loss (and clips gradients).
_base_ = [
    '../_base_/models/gfl_tiny-r18_fpn.py',
    '../_base_/datasets/synthetic_shapes.py',
    '../_base_/schedules/synthetic_adamw_30e.py',
]
custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
