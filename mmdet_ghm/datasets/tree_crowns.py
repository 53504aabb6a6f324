"""Real-image tree-crown detection set in COCO format, from DeepForest's sample data.

Two NEON aerial RGB crops of conifer forest with every crown boxed, read
from the pinned ``deepforest`` wheel (:mod:`.tree_crowns_source`), split so
that no crown has pixels in both train and val, the train part cut into
tiles and the boxes clipped to them (:mod:`.tree_crowns_geometry`). This
module writes the set and checks an existing one. Tiles without boxes are
kept (real background).

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
import os
import os.path as osp
import zipfile
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from .build_dir import build_atomically, dataset_lock, file_sha256
from .tree_crowns_geometry import (MIN_SIDE, MIN_VISIBLE, SEARCH_WINDOW, SPLIT_AT,
                                   choose_split, clip_boxes, crowns_in_both_splits,
                                   split_windows, tile_origins, tile_windows)
from .tree_crowns_source import (CLASSES, DEEPFOREST_VERSION, MEMBER_DIR, SOURCES,
                                 WHEEL_NAME, WHEEL_SHA256, fetch_wheel, parse_voc,
                                 verify_wheel)

#: Visualisation colour.
PALETTE = [(0, 160, 60)]
#: Bumped whenever the output changes, so stale data sets are detected.
FORMAT_VERSION = 1
META_FILE = 'tree_crowns_meta.json'
SPLITS = ('train', 'val')


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
