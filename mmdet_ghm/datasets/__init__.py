"""Datasets: the self-generating synthetic COCO-format shapes set and the
DeepForest tree-crown set (real NEON images, built from the pinned wheel)."""
from .synthetic_dataset import SyntheticShapesDataset
from .synthetic_shapes import (CLASSES, PALETTE, ensure_synthetic_shapes,
                               generate_synthetic_shapes, read_meta)
from .tree_crowns import ensure_tree_crowns
from .tree_crowns_dataset import TreeCrownsDataset

__all__ = [
    'SyntheticShapesDataset', 'CLASSES', 'PALETTE', 'ensure_synthetic_shapes',
    'generate_synthetic_shapes', 'read_meta', 'TreeCrownsDataset',
    'ensure_tree_crowns'
]
