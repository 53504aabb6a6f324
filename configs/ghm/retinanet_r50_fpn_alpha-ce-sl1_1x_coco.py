# RetinaNet R-50-FPN 1x, alpha-balanced sigmoid CE + SmoothL1: the
# "class-imbalanced CE" setting GHM-C is compared with in Li et al.,
# "Gradient Harmonized Single-stage Detector" (AAAI 2019).
#
# Sigmoid CE over all anchors with alpha = 0.75 on positives and 0.25 on
# negatives (AlphaBalancedCELoss; 0.75 is the best alpha for CE without a
# focal term in Lin et al., ICCV 2017, Table 1a), normalised like the CE
# baseline by RetinaNet's avg_factor (number of positive anchors).
# SmoothL1 (beta=0.11, loss_weight=1.0) and grad clipping (max_norm=35) as in
# the other configs of the comparison. Everything else is MMDetection's
# RetinaNet R-50-FPN 1x. `use_sigmoid=True` keeps RetinaHead's sigmoid
# classifier (`num_classes` logits).
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
# generator states in every checkpoint: --resume continues exactly
custom_hooks = [dict(type='RNGStateHook')]

model = dict(
    bbox_head=dict(
        loss_cls=dict(
            _delete_=True,
            type='AlphaBalancedCELoss',
            alpha=0.75,
            use_sigmoid=True,
            loss_weight=1.0),
        loss_bbox=dict(
            _delete_=True, type='SmoothL1Loss', beta=0.11, loss_weight=1.0)))

optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
