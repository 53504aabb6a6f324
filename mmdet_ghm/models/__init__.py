"""Detector parts that let softmax heads use GHM-C."""
from .ghm_ssd_head import GHMSSDHead

__all__ = ['GHMSSDHead']
