# Tiny FCOS with GHM-C (published settings) and per-level gradient density:
# GHMFCOSHead calls GHM-C once per FPN level, the levels sharing one EMA, as
# RetinaNet's head does (mmdet_ghm/models/per_level_loss.py). Everything else
# is fcos_tiny-r18_fpn_ghm-flat_synthetic-shapes.py (FCOSHead's flattened
# call: one density over all levels).
_base_ = './fcos_tiny-r18_fpn_ghm-flat_synthetic-shapes.py'
model = dict(bbox_head=dict(type='GHMFCOSHead', cls_loss_per_level=True))
