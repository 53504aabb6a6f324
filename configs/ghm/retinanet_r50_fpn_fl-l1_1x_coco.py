# RetinaNet R-50-FPN 1x, Focal Loss + L1: MMDetection's default RetinaNet,
# unchanged (no gradient clipping), so that MMDetection's published result and
# checkpoint for `retinanet/retinanet_r50_fpn_1x_coco.py` apply to it. It only
# adds the plugin import, so it runs under the same code as the GHM configs.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)
# generator states in every checkpoint: --resume continues exactly
custom_hooks = [dict(type='RNGStateHook')]
