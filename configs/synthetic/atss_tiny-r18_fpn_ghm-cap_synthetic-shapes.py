# Tiny ATSS with GHM-C and a weight cap of 100 (beta_j <= 100 x the uniform
# CE weight), the study's best GHM option on RetinaNet (README, 'When does
# GHM help?'; retinanet_tiny-r18_fpn_ghm-cap_synthetic-shapes.py says why
# 100).
_base_ = './atss_tiny-r18_fpn_ghm_synthetic-shapes.py'
model = dict(bbox_head=dict(loss_cls=dict(weight_cap=_base_.ghm_weight_cap)))
