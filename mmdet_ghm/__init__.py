"""mmdet-ghm: Gradient Harmonizing Mechanism (GHM-C, GHM-R) for MMDetection 3.x.

Importing this package registers its losses, datasets and hooks in
MMDetection's registries and makes MMEngine's checkpoint loading work under
torch >= 2.6 with ``weights_only=True``. Configs load it with::

    custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)

and inherit one of its configs (installed or editable) with::

    _base_ = __import__('mmdet_ghm').config_path('ghm/retinanet_r50_fpn_ghm-1x_coco.py')
"""
from . import datasets, engine, losses, models  # noqa: F401  (registration)
from .engine.safe_checkpoint import install_safe_checkpoint_loading
from .losses import GHMCLoss, GHMRLoss
from .utils.mim import config_dir, config_path

__version__ = '0.1.0'

install_safe_checkpoint_loading()

__all__ = [
    'GHMCLoss', 'GHMRLoss', 'config_dir', 'config_path', 'install_safe_checkpoint_loading',
    '__version__'
]
