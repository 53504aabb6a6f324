"""GHM losses: a functional core and thin modules registered in ``mmdet.registry.MODELS``."""
from .alpha_balanced_ce import AlphaBalancedCELoss, alpha_balanced_ce_loss
from .authentic_smooth_l1 import AuthenticSmoothL1Loss, authentic_smooth_l1_loss
from .generalized_focal import ContinuousFocalLoss, continuous_focal_loss
from .ghm_c import GHMCLoss, ghm_c_loss
from .ghm_r import GHMRLoss, ghm_r_loss
from .ohem import OHEMLoss, ohem_loss

__all__ = [
    'GHMCLoss', 'GHMRLoss', 'ghm_c_loss', 'ghm_r_loss', 'AlphaBalancedCELoss',
    'alpha_balanced_ce_loss', 'ContinuousFocalLoss', 'continuous_focal_loss', 'OHEMLoss',
    'ohem_loss', 'AuthenticSmoothL1Loss', 'authentic_smooth_l1_loss'
]
