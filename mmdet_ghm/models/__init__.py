"""Detector parts: heads that let softmax and flattening heads use GHM-C; backbones."""
from .backbones import EfficientNetLite
from .ghm_fcos_head import GHMFCOSHead
from .ghm_ssd_head import GHMSSDHead
from .per_level_loss import PerLevelClsLossMixin, PerLevelLoss, level_sizes, per_level_cls_loss

__all__ = ['EfficientNetLite', 'GHMFCOSHead', 'GHMSSDHead', 'PerLevelClsLossMixin', 'PerLevelLoss',
           'level_sizes', 'per_level_cls_loss']
