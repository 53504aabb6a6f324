# Baseline: plain sigmoid cross-entropy for classification, no re-weighting
# (pretrained EfficientNet-Lite0).
_base_ = [
    './retinanet_efficientnet-lite0_fpn_fl_tree-crowns.py',
    '../_base_/losses/loss_settings.py',
]
model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, **_base_.ce_sigmoid)))
