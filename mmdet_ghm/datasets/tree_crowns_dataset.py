"""``TreeCrownsDataset``: the DeepForest tree-crown set, built on first use."""
from typing import Optional

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from .tree_crowns import CLASSES, PALETTE, ensure_tree_crowns


@DATASETS.register_module()
class TreeCrownsDataset(CocoDataset):
    """COCO-format tree crowns in NEON RGB images (see :mod:`.tree_crowns`).

    Before loading its annotation file it calls :func:`ensure_tree_crowns`
    on ``data_root``, so a config pointing at it works on a fresh clone (the
    DeepForest wheel is downloaded once). Concurrent workers are safe; a
    ``data_root`` holding a set made with other parameters raises.

    Crowns cut by a tile or split border with under half their area visible
    are ``iscrowd=1`` annotations, loaded with ``ignore_flag=1``. Train tiles
    without crowns are real background: keep them with
    ``filter_cfg=dict(filter_empty_gt=False)`` (COCO configs drop them).

    Args:
        converter_cfg: Keyword arguments for :func:`ensure_tree_crowns`
            (``tile_size``, ``tile_stride``, ``cache_dir``, ...). ``None``
            means the defaults.
        **kwargs: Passed to :class:`mmdet.datasets.CocoDataset`.
    """

    METAINFO = {'classes': CLASSES, 'palette': PALETTE}

    def __init__(self, *args, converter_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if converter_cfg is not None and not isinstance(converter_cfg, dict):
            raise TypeError('converter_cfg must be a dict or None, got '
                            f'{converter_cfg!r}')
        self.converter_cfg = dict(converter_cfg or {})
        super().__init__(*args, **kwargs)

    def load_data_list(self):
        """Build the set if it is missing, then load it like COCO."""
        if not self.data_root:
            raise ValueError('TreeCrownsDataset needs data_root (the '
                             'directory to build into), got '
                             f'{self.data_root!r}')
        ensure_tree_crowns(self.data_root, **self.converter_cfg)
        return super().load_data_list()
