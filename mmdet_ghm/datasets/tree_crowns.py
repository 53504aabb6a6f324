"""Real-image tree-crown detection set in COCO format, from DeepForest's sample data.

Source: the ``deepforest`` 2.1.0 wheel (MIT licence, (c) 2019 Ben Weinstein)
ships NEON airborne RGB orthophoto crops with crown boxes annotated by the
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

Split, per image (no crown has pixels in both train and val): the line
``s`` in ``[0.65 W, 0.75 W]`` that the fewest boxes cross (``xmin < s <
xmax``; ties: closest to ``round(0.7 W)``, then the smaller ``s``). With
``C`` the boxes crossing ``s``, train is the columns ``[0, t)``, ``t =
min xmin over C``, and val the columns ``[v, W)``, ``v = max xmax over C``
(``t = v = s`` when ``C`` is empty); the strip ``[t, v)`` is in neither.
:func:`crowns_in_both_splits` checks the property.

Train is cut into ``tile_size`` tiles at ``tile_stride`` (the last row and
column shifted back to end at the region's border); val is one image per
source, its whole val region. A box cut by a window (a tile, ``t`` or
``v``) is clipped to it: a normal annotation when at least half of its area
is visible, else ``iscrowd=1``: COCO evaluation ignores detections on it, so
no crown part counts as a false positive; in training it is no target (an
assigner with ``ignore_iof_thr > 0`` also ignores the anchors on it).
Clipped boxes narrower or lower than 2 px are dropped. Tiles without boxes
are kept (real background).

Layout written under ``data_root`` (as MMDetection's ``data/coco``)::

    annotations/instances_train.json
    annotations/instances_val.json
    train/<source>_x0000_y0000.png ...
    val/<source>_x1609_y0000.png ...
    tree_crowns_meta.json   # source, parameters, s/t/v, statistics

Each annotation also carries ``crown_id``: the crown's 1-based index over
both sources' XML files in order, and each image its ``source`` and
``origin`` in the source; COCO readers ignore unknown keys.

Public API: :func:`ensure_tree_crowns` (build only if missing; safe when
several processes start at once) and the pure functions it is made of.
"""
import hashlib
import io
import json
import math
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .build_dir import build_atomically, dataset_lock, file_sha256

#: Class names, in category-id order (ids start at 1).
CLASSES = ('tree', )
#: Visualisation colour.
PALETTE = [(0, 160, 60)]
#: Bumped whenever the output changes, so stale data sets are detected.
FORMAT_VERSION = 1
META_FILE = 'tree_crowns_meta.json'
SPLITS = ('train', 'val')

DEEPFOREST_VERSION = '2.1.0'
WHEEL_NAME = f'deepforest-{DEEPFOREST_VERSION}-py3-none-any.whl'
#: sha256 of :data:`WHEEL_NAME` as PyPI serves it.
WHEEL_SHA256 = \
    '8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd5d00ae54'
#: Folder of the sample data inside the wheel.
MEMBER_DIR = 'deepforest/data/'
#: The used images (``<stem>.png`` + ``<stem>.xml`` in :data:`MEMBER_DIR`).
SOURCES = ('2019_YELL_2_528000_4978000_image_crop2',
           '2019_YELL_2_541000_4977000_image_crop')

#: Nominal split line, as a fraction of the image width.
SPLIT_AT = 0.7
#: Where the split line is searched, as fractions of the width.
SEARCH_WINDOW = (0.65, 0.75)
#: A clipped box with less of its area visible becomes ``iscrowd=1``.
MIN_VISIBLE = 0.5
#: Clipped boxes narrower or lower than this (pixels) are dropped.
MIN_SIDE = 2

Box = Tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)


def _check_int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f'{name} must be an int, got {value!r}')
    if value < low or (high is not None and value > high):
        rng = f'[{low}, {high}]' if high is not None else f'>= {low}'
        raise ValueError(f'{name} must be in {rng}, got {value!r}')
    return int(value)


def _normalise_params(tile_size, tile_stride) -> dict:
    """Validate the converter arguments; return every parameter as a dict."""
    tile_size = _check_int('tile_size', tile_size, 32)
    return dict(format_version=FORMAT_VERSION, tile_size=tile_size,
                tile_stride=_check_int('tile_stride', tile_stride, 1,
                                       tile_size),
                split_at=SPLIT_AT, search_window=list(SEARCH_WINDOW),
                min_visible=MIN_VISIBLE, min_side=MIN_SIDE)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------
# Pure functions: boxes, split, windows, COCO records
# --------------------------------------------------------------------------


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


def choose_split(boxes: np.ndarray, width: int, split_at: float = SPLIT_AT,
                 window: Sequence[float] = SEARCH_WINDOW
                 ) -> Tuple[int, int, int]:
    """Choose the split line ``s`` and the region borders ``t`` and ``v``.

    ``s`` is the integer in ``[window[0] * width, window[1] * width]`` that
    the fewest boxes cross (``x0 < s < x1``); ties go to the one closest to
    ``round(split_at * width)`` (halves rounded up), then to the smaller.

    Args:
        boxes: (N, 4) ``x0, y0, x1, y1``.
        width: Image width in pixels.
        split_at: Nominal split, a fraction of ``width``.
        window: Search window, fractions of ``width``.

    Returns:
        tuple: ``(s, t, v)``: train is the columns ``[0, t)``, val ``[v,
        width)``; ``t`` is the smallest ``x0`` and ``v`` the largest ``x1`` of
        the boxes crossing ``s`` (both ``s`` when none does).

    Raises:
        ValueError: The search window holds no integer line inside the image.
    """
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    # rounded first: 0.65 * 300 is 195.00000000000003 in floats
    nominal = int(math.floor(round(split_at * width, 9) + 0.5))
    lo = max(1, int(math.ceil(round(window[0] * width, 9))))
    hi = min(width - 1, int(math.floor(round(window[1] * width, 9))))
    if lo > hi:
        raise ValueError(f'no split line in {list(window)} of width {width}')
    lines = np.arange(lo, hi + 1)
    crossing = ((boxes[None, :, 0] < lines[:, None]) &
                (lines[:, None] < boxes[None, :, 2]))
    counts = crossing.sum(1)
    s = min(zip(counts.tolist(), np.abs(lines - nominal).tolist(),
                lines.tolist()))[2]
    crossed = boxes[crossing[s - lo]]
    if len(crossed) == 0:
        return s, s, s
    return s, int(crossed[:, 0].min()), int(crossed[:, 2].max())


def crowns_in_both_splits(boxes: np.ndarray, t: int, v: int) -> List[int]:
    """Indices of the boxes with pixels in train ``[0, t)`` and val ``[v, W)``.

    The split of :func:`choose_split` gives an empty list; anything else is a
    crown whose pixels would be seen in training and scored in validation.
    """
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    return np.flatnonzero((boxes[:, 0] < t) & (boxes[:, 2] > v)).tolist()


def tile_origins(length: int, tile_size: int, stride: int) -> List[int]:
    """Start offsets of the tiles along one side of a region.

    Tiles start every ``stride`` pixels; the last one is shifted back to end
    at ``length``, so every tile is ``tile_size`` long and inside the region.
    A region shorter than a tile gives the one tile ``[0, length)``.
    """
    if length <= tile_size:
        return [0]
    return list(range(0, length - tile_size, stride)) + [length - tile_size]


def tile_windows(region: Box, tile_size: int, stride: int) -> List[Box]:
    """The tiles of ``region`` (``x0, y0, x1, y1``), row by row."""
    x0, y0, x1, y1 = region
    w, h = min(tile_size, x1 - x0), min(tile_size, y1 - y0)
    return [(x0 + dx, y0 + dy, x0 + dx + w, y0 + dy + h)
            for dy in tile_origins(y1 - y0, tile_size, stride)
            for dx in tile_origins(x1 - x0, tile_size, stride)]


def split_windows(width: int, height: int, t: int, v: int, tile_size: int,
                  stride: int) -> Dict[str, List[Box]]:
    """The image windows of each split: train tiles, the whole val region."""
    if not 0 < t <= v < width:
        raise ValueError(f'split t={t}, v={v} leaves no train or val region '
                         f'in width {width}')
    return dict(train=tile_windows((0, 0, t, height), tile_size, stride),
                val=[(v, 0, width, height)])


def clip_boxes(boxes: np.ndarray, window: Box,
               min_visible: float = MIN_VISIBLE,
               min_side: int = MIN_SIDE) -> List[Tuple[int, Box, int]]:
    """Clip boxes to a window.

    Args:
        boxes: (N, 4) ``x0, y0, x1, y1`` in source pixels.
        window: ``x0, y0, x1, y1`` of the window in source pixels.
        min_visible: A box with a smaller visible fraction of its area is
            kept as ``iscrowd=1``.
        min_side: A clipped box narrower or lower than this is dropped.

    Returns:
        list: ``(index, box, iscrowd)`` of each kept box in ``boxes`` order,
        ``box`` in window coordinates. Boxes that share no area with the
        window are left out.
    """
    wx0, wy0, wx1, wy1 = window
    out = []
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes).tolist()):
        cx0, cy0 = max(x0, wx0), max(y0, wy0)
        cx1, cy1 = min(x1, wx1), min(y1, wy1)
        if cx1 - cx0 < min_side or cy1 - cy0 < min_side:
            continue
        visible = (cx1 - cx0) * (cy1 - cy0) / ((x1 - x0) * (y1 - y0))
        out.append((i, (cx0 - wx0, cy0 - wy0, cx1 - wx0, cy1 - wy0),
                    int(visible < min_visible)))
    return out


def coco_dict(split: str, images: List[dict], annotations: List[dict]) -> dict:
    """A COCO annotation file's contents for ``split``."""
    return dict(
        info=dict(description=f'mmdet-ghm tree crowns ({split}) from the '
                  f'DeepForest {DEEPFOREST_VERSION} sample data (NEON RGB)',
                  version=str(FORMAT_VERSION)),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=i + 1, name=c, supercategory='plant')
                    for i, c in enumerate(CLASSES)])


# --------------------------------------------------------------------------
# The wheel
# --------------------------------------------------------------------------


def verify_wheel(path: str, sha256: Optional[str] = None) -> str:
    """Raise ``ValueError`` naming both hashes unless ``path`` has ``sha256``.

    ``sha256`` defaults to :data:`WHEEL_SHA256`. Returns ``path``.
    """
    want = WHEEL_SHA256 if sha256 is None else sha256
    got = file_sha256(path)
    if got != want:
        raise ValueError(f'{path!r} has sha256 {got}, expected {want}; not '
                         'the DeepForest wheel this set is made from')
    return path


def fetch_wheel(cache_dir: str, sha256: Optional[str] = None) -> str:
    """Path of the verified DeepForest wheel in ``cache_dir``; download it once.

    The download is ``pip download --no-deps deepforest==2.1.0`` into a
    temporary folder of ``cache_dir``, verified, then renamed into place.
    """
    path = osp.join(cache_dir, WHEEL_NAME)
    if not osp.isfile(path):
        os.makedirs(cache_dir, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix='.deepforest-download-', dir=cache_dir)
        try:
            subprocess.run([
                sys.executable, '-m', 'pip', 'download', '--no-deps',
                '--only-binary=:all:', f'deepforest=={DEEPFOREST_VERSION}',
                '-d', tmp
            ], check=True)
            got = osp.join(tmp, WHEEL_NAME)
            if not osp.isfile(got):
                raise FileNotFoundError(
                    f'pip download gave {sorted(os.listdir(tmp))}, not '
                    f'{WHEEL_NAME}')
            os.replace(verify_wheel(got, sha256), path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return verify_wheel(path, sha256)


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------


def _write_sets(root: str, params: dict, wheel: str) -> dict:
    """Convert the sources into ``root``; return the meta dict (no hashes)."""
    images = {split: [] for split in SPLITS}
    annotations = {split: [] for split in SPLITS}
    stats = {split: dict(images=0, annotations=0, crowd=0, crowns=0,
                         images_without_boxes=0, dropped=0)
             for split in SPLITS}
    members, per_image = {}, {}
    crown_offset = 0
    for split in SPLITS:
        os.makedirs(osp.join(root, split))
    with zipfile.ZipFile(wheel) as zf:
        for stem in SOURCES:
            data = {}
            for ext in ('.png', '.xml'):
                name = MEMBER_DIR + stem + ext
                try:
                    data[ext] = zf.read(name)
                except KeyError:
                    raise ValueError(f'{wheel!r} has no {name}') from None
                members[name] = _sha256(data[ext])
            width, height, boxes = parse_voc(data['.xml'])
            with Image.open(io.BytesIO(data['.png'])) as im:
                pixels = im.convert('RGB')
            if pixels.size != (width, height):
                raise ValueError(f'{stem}.png is {pixels.size[0]} x '
                                 f'{pixels.size[1]} px, its .xml says '
                                 f'{width} x {height}')
            s, t, v = choose_split(boxes, width, params['split_at'],
                                   params['search_window'])
            shared = crowns_in_both_splits(boxes, t, v)
            if shared:  # pragma: no cover - choose_split rules it out
                raise RuntimeError(f'{stem}: crowns {shared} are in both '
                                   f'splits (s={s}, t={t}, v={v})')
            windows = split_windows(width, height, t, v, params['tile_size'],
                                    params['tile_stride'])
            per_image[stem] = dict(width=width, height=height,
                                   crowns=len(boxes), s=s, t=t, v=v,
                                   train_tiles=len(windows['train']),
                                   val_size=[width - v, height])
            regions = dict(train=boxes[:, 0] < t, val=boxes[:, 2] > v)
            for split in SPLITS:
                st = stats[split]
                st['crowns'] += int(regions[split].sum())
                for window in windows[split]:
                    x0, y0, x1, y1 = window
                    image_id = len(images[split]) + 1
                    file_name = f'{stem}_x{x0:04d}_y{y0:04d}.png'
                    pixels.crop(window).save(
                        osp.join(root, split, file_name), optimize=False,
                        compress_level=6)
                    images[split].append(dict(
                        id=image_id, file_name=file_name, width=x1 - x0,
                        height=y1 - y0, source=stem, origin=[x0, y0]))
                    kept = clip_boxes(boxes, window, params['min_visible'],
                                      params['min_side'])
                    inside = clip_boxes(boxes, window, params['min_visible'],
                                        1)
                    st['dropped'] += len(inside) - len(kept)
                    for i, (bx0, by0, bx1, by1), crowd in kept:
                        w, h = float(bx1 - bx0), float(by1 - by0)
                        annotations[split].append(dict(
                            id=len(annotations[split]) + 1, image_id=image_id,
                            category_id=1, bbox=[float(bx0), float(by0), w, h],
                            area=w * h, iscrowd=crowd,
                            crown_id=crown_offset + i + 1))
                        st['crowd'] += crowd
                    st['images_without_boxes'] += int(
                        all(crowd for _, _, crowd in kept))
            crown_offset += len(boxes)
    for split in SPLITS:
        stats[split]['images'] = len(images[split])
        stats[split]['annotations'] = len(annotations[split])
        with open(osp.join(root, 'annotations', f'instances_{split}.json'),
                  'w') as f:
            json.dump(coco_dict(split, images[split], annotations[split]), f,
                      separators=(',', ':'))
    source = dict(package='deepforest', version=DEEPFOREST_VERSION,
                  wheel=WHEEL_NAME, sha256=file_sha256(wheel),
                  members=members,
                  licence='MIT (DeepForest, (c) 2019 Ben Weinstein); imagery '
                  'from NEON airborne RGB orthophotos')
    return dict(params=params, source=source, images=per_image, stats=stats)


def _build_unlocked(data_root: str, params: dict, wheel: str) -> dict:
    def write(tmp):
        meta = _write_sets(tmp, params, wheel)
        meta['annotations_sha256'] = _annotation_hashes(tmp)
        return meta

    return build_atomically(data_root, META_FILE, write)


def _annotation_hashes(root: str) -> Dict[str, str]:
    rels = [f'annotations/instances_{split}.json' for split in SPLITS]
    return {rel: file_sha256(osp.join(root, rel)) for rel in rels}


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def read_meta(data_root: str) -> dict:
    """Return the stored meta dict of a built set."""
    with open(osp.join(data_root, META_FILE)) as f:
        return json.load(f)


def ensure_tree_crowns(data_root: str, tile_size: int = 256,
                       tile_stride: int = 192,
                       cache_dir: Optional[str] = None,
                       wheel: Optional[str] = None,
                       wheel_sha256: Optional[str] = None) -> dict:
    """Build the tree-crown set unless ``data_root`` already holds the same one.

    An existing set is only read (its meta file, and its annotation files'
    hashes checked); building writes into a temporary sibling directory that
    is then renamed, so a crash never leaves a half-written set. Several
    processes calling at once serialise on a file lock next to
    ``data_root``: the first builds, the others reuse. The same arguments
    give byte-identical files.

    Args:
        data_root: Directory of the data set.
        tile_size: Side of the train tiles in pixels, >= 32.
        tile_stride: Step between train tiles, in ``[1, tile_size]``.
        cache_dir: Where the wheel is downloaded once; default: ``cache``
            beside ``data_root`` (``data/cache`` for ``data/tree_crowns``).
        wheel: A local copy of the wheel to use instead (no download).
        wheel_sha256: The wheel's expected sha256; default
            :data:`WHEEL_SHA256`.

    Returns:
        dict: The meta dict stored in ``<data_root>/tree_crowns_meta.json``:
        ``params``, ``source``, ``images`` (per source: size, ``s``, ``t``,
        ``v``, ...), ``stats`` per split and ``annotations_sha256``.

    Raises:
        ValueError: A bad argument; a wheel with another sha256; or
            ``data_root`` holds a set made with other parameters or from
            another wheel, or an incomplete or modified one.
        TypeError: ``tile_size`` or ``tile_stride`` is not an int.
        FileExistsError: ``data_root`` is a non-empty directory that was not
            made by this converter.
    """
    params = _normalise_params(tile_size, tile_stride)
    want_sha = WHEEL_SHA256 if wheel_sha256 is None else wheel_sha256
    with dataset_lock(data_root):
        if osp.isfile(osp.join(data_root, META_FILE)):
            return _check_existing(data_root, params, want_sha)
        if wheel is None:
            if cache_dir is None:
                cache_dir = osp.join(
                    osp.dirname(osp.abspath(data_root).rstrip(os.sep)),
                    'cache')
            wheel = fetch_wheel(cache_dir, want_sha)
        else:
            verify_wheel(wheel, want_sha)
        return _build_unlocked(data_root, params, wheel)


def _check_existing(data_root: str, params: dict, wheel_sha256: str) -> dict:
    meta = read_meta(data_root)
    stored = meta.get('params', {})
    if stored != params:
        diff = {k: (stored.get(k), v) for k, v in params.items()
                if stored.get(k) != v}
        raise ValueError(
            f'{data_root!r} holds a tree-crown set built with other '
            f'parameters (stored vs requested: {diff}). It is not '
            'overwritten: delete it yourself or use another data_root.')
    stored_sha = meta.get('source', {}).get('sha256')
    if stored_sha != wheel_sha256:
        raise ValueError(
            f'{data_root!r} was built from a wheel with sha256 {stored_sha}, '
            f'requested {wheel_sha256}; delete it or use another data_root.')
    missing = [
        rel for rel in [f'annotations/instances_{s}.json' for s in SPLITS] +
        list(SPLITS) if not osp.exists(osp.join(data_root, rel))
    ]
    if missing:
        raise ValueError(f'{data_root!r} is incomplete (missing {missing}); '
                         'delete it to rebuild.')
    if _annotation_hashes(data_root) != meta.get('annotations_sha256'):
        raise ValueError(f'{data_root!r}: the annotation files differ from '
                         'the ones built (sha256 in its meta file); delete '
                         'it to rebuild.')
    return meta


__all__: Sequence[str] = ('CLASSES', 'PALETTE', 'WHEEL_SHA256', 'SOURCES',
                          'parse_voc', 'choose_split', 'crowns_in_both_splits',
                          'tile_origins', 'tile_windows', 'split_windows',
                          'clip_boxes', 'coco_dict', 'verify_wheel',
                          'fetch_wheel', 'ensure_tree_crowns', 'read_meta')
