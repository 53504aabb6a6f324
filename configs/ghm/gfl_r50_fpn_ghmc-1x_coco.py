# GFL R-50-FPN 1x with GHM-C in place of Quality Focal Loss.
#
# MMDetection's gfl/gfl_r50_fpn_1x_coco.py (40.2 box AP with QFL), unchanged
# but for the classification loss and gradient clipping. GFLHead calls the
# classification loss once per FPN level with a soft target: (labels, IoU
# scores of the positives) and weight=label_weights, so GHM-C's density is per
# level with one shared EMA, and its targets are the IoU-aware scores that QFL
# regresses (g = |sigmoid(x) - score|).
# GHM-C as published (bins=30, momentum=0.75, sigmoid, loss_weight=1.0) and
# the GHM configs' gradient clipping (max_norm=35, norm_type=2).
# The box losses stay GFL's GIoU and distribution focal losses: GHM-R
# harmonizes the ASL1 loss of box deltas and does not apply to them (README).
# GHMCLoss takes that (labels, scores) target and the weight= keyword
# (tests/losses/test_ghm_c_quality.py); not trained on COCO by this project yet.
_base_ = [
    'mmdet::gfl/gfl_r50_fpn_1x_coco.py',
    '../_base_/losses/loss_settings.py',
]
custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
# generator states in every checkpoint: --resume continues exactly
custom_hooks = [dict(type='RNGStateHook')]

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.ghmc)))

optim_wrapper = dict(clip_grad=_base_.ghm_clip_grad)
