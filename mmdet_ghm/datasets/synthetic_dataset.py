"""``SyntheticShapesDataset``: a COCO dataset that generates itself."""
from typing import Optional

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from .synthetic_shapes import CLASSES, PALETTE, ensure_synthetic_shapes


@DATASETS.register_module()
class SyntheticShapesDataset(CocoDataset):
    """COCO-format synthetic shapes set (see :mod:`.synthetic_shapes`).

    Before loading its annotation file it calls
    :func:`ensure_synthetic_shapes` on ``data_root``, so a config pointing at
    it works on a fresh clone with no data present. Concurrent workers are
    safe; a ``data_root`` holding a set made with other parameters raises.

    Args:
        generator_cfg: Keyword arguments for the generator (``seed``,
            ``num_train``, ...). ``None`` means the defaults.
        **kwargs: Passed to :class:`mmdet.datasets.CocoDataset`.
    """

    METAINFO = {'classes': CLASSES, 'palette': PALETTE}

    def __init__(self, *args, generator_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if generator_cfg is not None and not isinstance(generator_cfg, dict):
            raise TypeError('generator_cfg must be a dict or None, got '
                            f'{generator_cfg!r}')
        self.generator_cfg = dict(generator_cfg or {})
        super().__init__(*args, **kwargs)

    def load_data_list(self):
        """Generate the set if it is missing, then load it like COCO."""
        if not self.data_root:
            raise ValueError('SyntheticShapesDataset needs data_root (the '
                             'directory to generate into), got '
                             f'{self.data_root!r}')
        ensure_synthetic_shapes(self.data_root, **self.generator_cfg)
        return super().load_data_list()
