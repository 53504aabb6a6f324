"""GHM losses: a functional core and thin modules registered in ``mmdet.registry.MODELS``."""
from .ghm_c import GHMCLoss, ghm_c_loss
from .ghm_r import GHMRLoss, ghm_r_loss

__all__ = ['GHMCLoss', 'GHMRLoss', 'ghm_c_loss', 'ghm_r_loss']
