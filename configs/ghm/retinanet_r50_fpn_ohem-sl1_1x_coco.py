# RetinaNet R-50-FPN 1x, sigmoid CE with online hard example mining +
# SmoothL1: the "OHEM" setting GHM-C is compared with in Li et al.,
# "Gradient Harmonized Single-stage Detector" (AAAI 2019).
#
# OHEMLoss keeps, per call (RetinaHead calls the loss once per FPN level),
# every positive (anchor, class) element and the hardest negatives, 3 per
# positive (SSD's ratio) and at least 100; the loss is the mean CE over the
# kept elements (RetinaNet's avg_factor is not used). Ignored anchors are
# never kept. SmoothL1 (beta=0.11, loss_weight=1.0) and grad clipping
# (max_norm=35) as in the other configs of the comparison. Everything else
# is MMDetection's RetinaNet R-50-FPN 1x.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
# generator states in every checkpoint: --resume continues exactly
custom_hooks = [dict(type='RNGStateHook')]

model = dict(
    bbox_head=dict(
        loss_cls=dict(
            _delete_=True,
            type='OHEMLoss',
            neg_pos_ratio=3,
            min_neg=100,
            use_sigmoid=True,
            loss_weight=1.0),
        loss_bbox=dict(
            _delete_=True, type='SmoothL1Loss', beta=0.11, loss_weight=1.0)))

optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
