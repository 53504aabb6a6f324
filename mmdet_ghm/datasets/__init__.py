"""Datasets: the self-generating synthetic COCO-format shapes set."""
from .synthetic_dataset import SyntheticShapesDataset
from .synthetic_shapes import (CLASSES, PALETTE, ensure_synthetic_shapes,
                               generate_synthetic_shapes, read_meta)

__all__ = [
    'SyntheticShapesDataset', 'CLASSES', 'PALETTE', 'ensure_synthetic_shapes',
    'generate_synthetic_shapes', 'read_meta'
]
