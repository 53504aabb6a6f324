"""Backbones: EfficientNet-Lite for the pretrained regime."""
from .efficientnet_lite import EfficientNetLite

__all__ = ['EfficientNetLite']
