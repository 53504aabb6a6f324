"""The DeepForest wheel the tree-crown set is made from, and its Pascal VOC annotations.

The ``deepforest`` 2.1.0 wheel (MIT licence, (c) 2019 Ben Weinstein) ships
NEON airborne RGB orthophoto crops with crown boxes annotated by the
DeepForest authors (Weinstein et al.) under ``deepforest/data/``. Only the
wheel is downloaded (``pip download --no-deps``), never installed; it is
cached, checked against :data:`WHEEL_SHA256`, and the two used members of
each image are read straight from the zip:

* ``2019_YELL_2_528000_4978000_image_crop2`` (2299 x 2472 px, 574 crowns);
* ``2019_YELL_2_541000_4977000_image_crop`` (1249 x 1035 px, 279 crowns);

each a ``.png`` with a Pascal VOC ``.xml`` of boxes named ``Tree``. The
wheel's other sample images (``OSBS_029``, ``SOAP_061``: other sites,
400 x 400 px) are not used. One class: ``tree``.

VOC pixel boxes are read as continuous coordinates: ``xmin`` ... ``xmax``
cover the columns ``[xmin, xmax)`` and give the COCO box
``[xmin, ymin, xmax - xmin, ymax - ymin]`` (the files' boxes reach
``xmax == width``).
"""
import xml.etree.ElementTree as ET
from typing import Optional, Tuple

import numpy as np

from mmdet_ghm.utils.pinned_wheel import PinnedWheel

#: Class names, in category-id order (ids start at 1).
CLASSES = ('tree', )

DEEPFOREST_VERSION = '2.1.0'
WHEEL_NAME = f'deepforest-{DEEPFOREST_VERSION}-py3-none-any.whl'
#: sha256 of :data:`WHEEL_NAME` as PyPI serves it.
WHEEL_SHA256 = \
    '8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd5d00ae54'
WHEEL = PinnedWheel('deepforest', DEEPFOREST_VERSION, WHEEL_NAME, WHEEL_SHA256,
                    what='the DeepForest wheel this set is made from')
#: Folder of the sample data inside the wheel.
MEMBER_DIR = 'deepforest/data/'
#: The used images (``<stem>.png`` + ``<stem>.xml`` in :data:`MEMBER_DIR`).
SOURCES = ('2019_YELL_2_528000_4978000_image_crop2',
           '2019_YELL_2_541000_4977000_image_crop')


def parse_voc(xml: bytes) -> Tuple[int, int, np.ndarray]:
    """Read a Pascal VOC annotation of tree crowns.

    Args:
        xml: The ``.xml`` file's bytes.

    Returns:
        tuple: ``(width, height, boxes)``, ``boxes`` an int64 array of shape
        (N, 4) of ``x0, y0, x1, y1`` in file order.

    Raises:
        ValueError: An object is not named ``Tree`` (any case), or a box is
            empty or reaches outside the image.
    """
    root = ET.fromstring(xml)
    width = int(root.findtext('size/width'))
    height = int(root.findtext('size/height'))
    boxes = []
    for i, obj in enumerate(root.iter('object')):
        name = obj.findtext('name')
        if name is None or name.strip().lower() not in CLASSES:
            raise ValueError(f'object {i} is named {name!r}; only '
                             f'{CLASSES} are known')
        box = [int(obj.findtext(f'bndbox/{k}'))
               for k in ('xmin', 'ymin', 'xmax', 'ymax')]
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ValueError(f'object {i} has box {box}, empty or outside '
                             f'the {width} x {height} image')
        boxes.append(box)
    return width, height, np.asarray(boxes, np.int64).reshape(-1, 4)


def verify_wheel(path: str, sha256: Optional[str] = None) -> str:
    """Raise ``ValueError`` naming both hashes unless ``path`` has ``sha256``
    (default :data:`WHEEL_SHA256`); return ``path``."""
    return WHEEL.verify(path, sha256)


def fetch_wheel(cache_dir: str, sha256: Optional[str] = None) -> str:
    """Path of the verified DeepForest wheel in ``cache_dir``; download it once
    (``pip download --no-deps deepforest==2.1.0``)."""
    return WHEEL.fetch(cache_dir, sha256)
