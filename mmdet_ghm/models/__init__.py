"""Detector parts that let softmax heads and flattening heads use GHM-C."""
from .ghm_fcos_head import GHMFCOSHead
from .ghm_ssd_head import GHMSSDHead
from .per_level_loss import PerLevelClsLossMixin, PerLevelLoss, level_sizes, per_level_cls_loss

__all__ = ['GHMFCOSHead', 'GHMSSDHead', 'PerLevelClsLossMixin', 'PerLevelLoss', 'level_sizes',
           'per_level_cls_loss']
