"""Deterministic synthetic COCO-format detection set of simple shapes.

The set is built to show what GHM is about on a CPU in minutes:

* heavy foreground/background imbalance: a few small objects on a large,
  textured background;
* skewed class frequencies (``class_freqs``);
* many small objects (COCO "small": area < 32 x 32);
* unlabelled clutter (bars, elongated ellipses, open arcs, L-shapes, specks)
  that looks like the classes but is none of them: hard negatives;
* a small fraction of outliers in the TRAIN split only: wrong class labels
  (``label_noise``), missing labels (``missing_rate``) and badly misplaced
  boxes (``box_noise``). The val split is always clean.

Rendering and label corruption use separate random streams, so changing the
outlier rates never changes a single pixel. Every kept annotation carries a
``noise`` key (``'label'`` or ``'box'``) when it was corrupted; COCO readers
ignore unknown keys.

Layout written under ``data_root``::

    annotations/instances_train.json
    annotations/instances_val.json
    train/000001.png ...
    val/000001.png ...
    synthetic_shapes_meta.json   # generation params + statistics

Public API: :func:`generate_synthetic_shapes` and
:func:`ensure_synthetic_shapes` (generate only if missing; safe when several
processes start at once).
"""
import json
import math
import os
import os.path as osp
from typing import Dict, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from .build_dir import build_atomically, dataset_lock

#: Class names, in category-id order (ids start at 1).
CLASSES = ('circle', 'square', 'triangle', 'cross', 'ring')
#: Visualisation colours, one per class.
PALETTE = [(220, 20, 60), (0, 130, 200), (60, 180, 75), (245, 130, 48),
           (145, 30, 180)]
#: Bumped whenever the rendering changes, so stale data sets are detected.
FORMAT_VERSION = 1
META_FILE = 'synthetic_shapes_meta.json'
SPLITS = ('train', 'val')

_DEFAULTS = dict(
    num_train=800,
    num_val=200,
    image_size=128,
    min_size=12,
    max_size=40,
    max_objects=8,
    mean_distractors=2.0,
    class_freqs=(0.36, 0.25, 0.18, 0.13, 0.08),
    label_noise=0.01,
    missing_rate=0.01,
    box_noise=0.01,
)
_DISTRACTORS = ('bar', 'ellipse', 'arc', 'ell', 'specks')


def _check_int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f'{name} must be an int, got {value!r}')
    if value < low or (high is not None and value > high):
        rng = f'[{low}, {high}]' if high is not None else f'>= {low}'
        raise ValueError(f'{name} must be in {rng}, got {value!r}')
    return int(value)


def _check_rate(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f'{name} must be a float, got {value!r}')
    if not 0.0 <= value < 0.5:
        raise ValueError(f'{name} must be in [0, 0.5), got {value!r}')
    return float(value)


def _normalise_params(seed, **kwargs) -> dict:
    """Validate generator arguments and return them as a JSON-able dict."""
    unknown = set(kwargs) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f'unknown synthetic-shapes argument(s): '
                        f'{sorted(unknown)}; valid: {sorted(_DEFAULTS)}')
    p = dict(_DEFAULTS, **kwargs)
    out = dict(format_version=FORMAT_VERSION)
    out['seed'] = _check_int('seed', seed, 0)
    out['num_train'] = _check_int('num_train', p['num_train'], 1)
    out['num_val'] = _check_int('num_val', p['num_val'], 1)
    out['image_size'] = _check_int('image_size', p['image_size'], 32)
    out['min_size'] = _check_int('min_size', p['min_size'], 6)
    out['max_size'] = _check_int('max_size', p['max_size'], out['min_size'],
                                 out['image_size'] // 2)
    out['max_objects'] = _check_int('max_objects', p['max_objects'], 1, 50)
    md = p['mean_distractors']
    if isinstance(md, bool) or not isinstance(md, (int, float)) or md < 0:
        raise ValueError(f'mean_distractors must be a number >= 0, got {md!r}')
    out['mean_distractors'] = float(md)
    freqs = p['class_freqs']
    if (not isinstance(freqs, (list, tuple)) or len(freqs) != len(CLASSES)
            or any(isinstance(f, bool) or not isinstance(f, (int, float))
                   or f <= 0 for f in freqs)):
        raise ValueError(f'class_freqs must be {len(CLASSES)} positive '
                         f'numbers (one per class {CLASSES}), got {freqs!r}')
    total = float(sum(freqs))
    out['class_freqs'] = [round(float(f) / total, 6) for f in freqs]
    for name in ('label_noise', 'missing_rate', 'box_noise'):
        out[name] = _check_rate(name, p[name])
    if out['label_noise'] + out['missing_rate'] + out['box_noise'] >= 0.5:
        raise ValueError('label_noise + missing_rate + box_noise must be '
                         f'< 0.5, got {out["label_noise"]} + '
                         f'{out["missing_rate"]} + {out["box_noise"]}')
    return out


# --------------------------------------------------------------------------
# Rendering (pure functions of an RNG)
# --------------------------------------------------------------------------


def _rotate(points, angle, cx, cy):
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c)
            for x, y in points]


def _shape_mask(kind: str, cx: float, cy: float, size: float, rng,
                canvas: int) -> np.ndarray:
    """Return a boolean ``canvas x canvas`` mask of one shape."""
    img = Image.new('L', (canvas, canvas), 0)
    d = ImageDraw.Draw(img)
    r = size / 2.0
    if kind == 'circle':
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif kind == 'ring':
        t = max(2.0, 0.3 * r)
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        d.ellipse([cx - r + t, cy - r + t, cx + r - t, cy + r - t], fill=0)
    elif kind == 'square':
        a = rng.uniform(-0.35, 0.35)
        h = r / math.sqrt(2.0) * 1.25
        pts = [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h),
               (cx - h, cy + h)]
        d.polygon(_rotate(pts, a, cx, cy), fill=255)
    elif kind == 'triangle':
        a = rng.uniform(0, 2 * math.pi)
        pts = [(cx + r * math.cos(a + k * 2 * math.pi / 3),
                cy + r * math.sin(a + k * 2 * math.pi / 3)) for k in range(3)]
        d.polygon(pts, fill=255)
    elif kind == 'cross':
        a = rng.uniform(-0.35, 0.35)
        w = max(1.5, 0.22 * size)
        arms = [[(cx - r, cy - w), (cx + r, cy - w), (cx + r, cy + w),
                 (cx - r, cy + w)],
                [(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy + r),
                 (cx - w, cy + r)]]
        for pts in arms:
            d.polygon(_rotate(pts, a, cx, cy), fill=255)
    elif kind == 'bar':
        a = rng.uniform(0, math.pi)
        w = rng.uniform(1.0, 2.0)
        pts = [(cx - r, cy - w), (cx + r, cy - w), (cx + r, cy + w),
               (cx - r, cy + w)]
        d.polygon(_rotate(pts, a, cx, cy), fill=255)
    elif kind == 'ellipse':
        # elongated (aspect >= 2.5), so never a circle
        rx, ry = r, r / rng.uniform(2.5, 4.0)
        a = rng.uniform(0, math.pi)
        pts = [(cx + rx * math.cos(t), cy + ry * math.sin(t))
               for t in np.linspace(0, 2 * math.pi, 24, endpoint=False)]
        d.polygon(_rotate(pts, a, cx, cy), fill=255)
    elif kind == 'arc':
        # an open ring: 150-250 degrees of arc, a hard negative for 'ring'
        start = rng.uniform(0, 360)
        span = rng.uniform(150, 250)
        d.arc([cx - r, cy - r, cx + r, cy + r], start, start + span,
              fill=255, width=max(2, int(round(0.3 * r))))
    elif kind == 'ell':
        # an L: half a cross, a hard negative for 'cross'
        a = rng.uniform(0, 2 * math.pi)
        w = max(1.5, 0.22 * size)
        arms = [[(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy + w),
                 (cx - w, cy + w)],
                [(cx - w, cy - w), (cx + r, cy - w), (cx + r, cy + w),
                 (cx - w, cy + w)]]
        for pts in arms:
            d.polygon(_rotate(pts, a, cx, cy), fill=255)
    elif kind == 'specks':
        for _ in range(int(rng.integers(3, 8))):
            x, y = rng.uniform(cx - r, cx + r), rng.uniform(cy - r, cy + r)
            q = rng.uniform(0.8, 1.8)
            d.ellipse([x - q, y - q, x + q, y + q], fill=255)
    else:  # pragma: no cover - internal names only
        raise ValueError(f'unknown shape kind {kind!r}')
    return np.asarray(img) > 127


def _contrasting_colour(rng, background: np.ndarray) -> np.ndarray:
    """A random RGB colour at least 70 (mean abs) away from ``background``."""
    for _ in range(50):
        col = rng.integers(0, 256, size=3)
        if np.abs(col - background).mean() >= 70:
            return col.astype(np.float32)
    return (255 - background).astype(np.float32)


def _render_image(rng, params) -> Tuple[np.ndarray, list]:
    """Render one image; return (uint8 HxWx3, [(label_idx, [x, y, w, h])])."""
    size = params['image_size']
    # textured background: base colour + linear gradient + blotches + noise
    base = rng.integers(40, 216, size=3).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    gx, gy = rng.uniform(-30, 30, size=2)
    img = np.empty((size, size, 3), np.float32)
    img[:] = base
    img += (gx * (xx - 0.5) + gy * (yy - 0.5))[..., None]
    for _ in range(int(rng.integers(2, 6))):
        bx, by = rng.uniform(0, 1, size=2)
        bs = rng.uniform(0.05, 0.25)
        amp = rng.uniform(-25, 25, size=3)
        blob = np.exp(-((xx - bx)**2 + (yy - by)**2) / (2 * bs * bs))
        img += blob[..., None] * amp

    # unlabelled clutter first, so labelled objects are never occluded by it
    n_dis = int(rng.poisson(params['mean_distractors']))
    for _ in range(n_dis):
        kind = _DISTRACTORS[int(rng.integers(len(_DISTRACTORS)))]
        s = float(rng.uniform(params['min_size'], params['max_size']))
        cx, cy = rng.uniform(s / 2 + 1, size - s / 2 - 1, size=2)
        mask = _shape_mask(kind, cx, cy, s, rng, size)
        img[mask] = _contrasting_colour(rng, base)

    objects = []
    occupied = np.zeros((size, size), bool)
    n_obj = int(rng.integers(1, params['max_objects'] + 1))
    lo, hi = math.log(params['min_size']), math.log(params['max_size'])
    freqs = np.asarray(params['class_freqs'])
    for _ in range(n_obj):
        label = int(rng.choice(len(CLASSES), p=freqs))
        s = float(math.exp(rng.uniform(lo, hi)))
        for _attempt in range(20):
            cx, cy = rng.uniform(s / 2 + 1, size - s / 2 - 1, size=2)
            x0, y0 = int(cx - s / 2) - 2, int(cy - s / 2) - 2
            x1, y1 = int(cx + s / 2) + 3, int(cy + s / 2) + 3
            if not occupied[max(0, y0):y1, max(0, x0):x1].any():
                break
        else:
            continue  # image too crowded: skip this object
        mask = _shape_mask(CLASSES[label], cx, cy, s, rng, size)
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:  # pragma: no cover - min_size >= 6 prevents it
            continue
        occupied[max(0, y0):y1, max(0, x0):x1] = True
        img[mask] = _contrasting_colour(rng, base)
        bx0, by0 = int(xs.min()), int(ys.min())
        bx1, by1 = int(xs.max()) + 1, int(ys.max()) + 1
        objects.append((label, [bx0, by0, bx1 - bx0, by1 - by0]))

    img += rng.normal(0.0, 6.0, size=img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), objects


def _corrupt(objects, rng, params, size):
    """Apply train-split outliers; return [(label, box, noise_tag|None)]."""
    out = []
    lab, miss, box = (params['label_noise'], params['missing_rate'],
                      params['box_noise'])
    for label, bbox in objects:
        u = rng.uniform()
        if u < miss:
            continue  # object drawn but not labelled
        if u < miss + lab:
            other = int(rng.integers(len(CLASSES) - 1))
            out.append((other + (other >= label), bbox, 'label'))
        elif u < miss + lab + box:
            x, y, w, h = bbox
            # shift by 40-80 % of the box size and rescale by 0.5-1.6x,
            # then clip into the image
            nw = max(2, int(round(w * rng.uniform(0.5, 1.6))))
            nh = max(2, int(round(h * rng.uniform(0.5, 1.6))))
            sx = rng.choice([-1, 1]) * rng.uniform(0.4, 0.8) * w
            sy = rng.choice([-1, 1]) * rng.uniform(0.4, 0.8) * h
            nx = int(np.clip(round(x + sx), 0, size - nw))
            ny = int(np.clip(round(y + sy), 0, size - nh))
            out.append((label, [nx, ny, min(nw, size), min(nh, size)], 'box'))
        else:
            out.append((label, bbox, None))
    return out


def _write_split(root: str, split: str, params: dict) -> Dict[str, int]:
    """Render and write one split; return its statistics."""
    split_code = SPLITS.index(split)
    n = params['num_train'] if split == 'train' else params['num_val']
    size = params['image_size']
    os.makedirs(osp.join(root, split))
    images, annotations = [], []
    stats = dict(images=n, objects=0, annotations=0, small=0,
                 noisy_label=0, noisy_box=0, missing=0)
    per_class = [0] * len(CLASSES)
    for idx in range(n):
        ss = np.random.SeedSequence([params['seed'], split_code, idx])
        render_ss, noise_ss = ss.spawn(2)
        pixels, objects = _render_image(np.random.default_rng(render_ss),
                                        params)
        file_name = f'{idx + 1:06d}.png'
        Image.fromarray(pixels).save(osp.join(root, split, file_name),
                                     optimize=False, compress_level=6)
        images.append(dict(id=idx + 1, file_name=file_name, width=size,
                           height=size))
        stats['objects'] += len(objects)
        if split == 'train':
            kept = _corrupt(objects, np.random.default_rng(noise_ss), params,
                            size)
        else:
            kept = [(lab, box, None) for lab, box in objects]
        stats['missing'] += len(objects) - len(kept)
        for label, (x, y, w, h), tag in kept:
            ann = dict(id=len(annotations) + 1, image_id=idx + 1,
                       category_id=label + 1, bbox=[x, y, w, h],
                       area=int(w * h), iscrowd=0)
            if tag is not None:
                ann['noise'] = tag
                stats['noisy_' + tag] += 1
            annotations.append(ann)
            per_class[label] += 1
            stats['small'] += int(w * h < 32 * 32)
    stats['annotations'] = len(annotations)
    stats['per_class'] = dict(zip(CLASSES, per_class))
    coco = dict(
        info=dict(description=f'mmdet-ghm synthetic shapes ({split})',
                  version=str(FORMAT_VERSION)),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=i + 1, name=c, supercategory='shape')
                    for i, c in enumerate(CLASSES)])
    with open(osp.join(root, 'annotations', f'instances_{split}.json'),
              'w') as f:
        json.dump(coco, f, separators=(',', ':'))
    return stats


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _generate_unlocked(data_root: str, params: dict) -> dict:
    def write(tmp):
        return dict(params=params,
                    stats={split: _write_split(tmp, split, params) for split in SPLITS})

    return build_atomically(data_root, META_FILE, write)


def generate_synthetic_shapes(data_root: str, seed: int = 0,
                              **kwargs) -> dict:
    """Generate the synthetic shapes set into ``data_root``.

    Everything is written into a temporary sibling directory which is then
    renamed atomically, so a crash never leaves a half-written set behind.

    Args:
        data_root: Target directory; must not exist or be empty.
        seed: Seed; the same arguments give byte-identical files.
        **kwargs: ``num_train`` (800), ``num_val`` (200), ``image_size``
            (128), ``min_size`` (12) / ``max_size`` (40) object side in
            pixels, ``max_objects`` per image (8), ``mean_distractors`` per
            image (2.0), ``class_freqs`` (one weight per class in
            :data:`CLASSES`), and the train-only outlier rates
            ``label_noise`` (0.04), ``missing_rate`` (0.04), ``box_noise``
            (0.02).

    Returns:
        dict: ``{'params': ..., 'stats': {'train': ..., 'val': ...}}``, also
        stored in ``<data_root>/synthetic_shapes_meta.json``.

    Raises:
        FileExistsError: ``data_root`` exists and is not empty.
        ValueError, TypeError: An argument is out of range or of wrong type.
    """
    params = _normalise_params(seed, **kwargs)
    with dataset_lock(data_root):
        return _generate_unlocked(data_root, params)


def read_meta(data_root: str) -> dict:
    """Return the stored ``{'params', 'stats'}`` of a generated set."""
    with open(osp.join(data_root, META_FILE)) as f:
        return json.load(f)


def ensure_synthetic_shapes(data_root: str, seed: int = 0, **kwargs) -> dict:
    """Generate the set unless ``data_root`` already holds the same one.

    Safe when several processes call it at once: they serialise on a file
    lock next to ``data_root``; the first generates, the others reuse.

    Args:
        data_root: Directory of the data set.
        seed: See :func:`generate_synthetic_shapes`.
        **kwargs: See :func:`generate_synthetic_shapes`.

    Returns:
        dict: The data set's ``{'params', 'stats'}``.

    Raises:
        ValueError: ``data_root`` holds a synthetic set made with other
            parameters, or is incomplete.
        FileExistsError: ``data_root`` is a non-empty directory that was not
            made by this generator.
    """
    params = _normalise_params(seed, **kwargs)
    with dataset_lock(data_root):
        if osp.isfile(osp.join(data_root, META_FILE)):
            meta = read_meta(data_root)
            if meta.get('params') != params:
                diff = {
                    k: (meta.get('params', {}).get(k), v)
                    for k, v in params.items()
                    if meta.get('params', {}).get(k) != v
                }
                raise ValueError(
                    f'{data_root!r} holds a synthetic shapes set generated '
                    f'with other parameters (stored vs requested: {diff}). '
                    'It is not overwritten: delete it yourself or use '
                    'another data_root.')
            missing = [
                rel for rel in [f'annotations/instances_{s}.json'
                                for s in SPLITS] + list(SPLITS)
                if not osp.exists(osp.join(data_root, rel))
            ]
            if missing:
                raise ValueError(f'{data_root!r} is incomplete (missing '
                                 f'{missing}); delete it to regenerate.')
            return meta
        return _generate_unlocked(data_root, params)


def default_params() -> dict:
    """The default generator keyword arguments (a copy)."""
    out = dict(_DEFAULTS)
    out['class_freqs'] = list(out['class_freqs'])
    return out


__all__: Sequence[str] = ('CLASSES', 'PALETTE', 'generate_synthetic_shapes',
                          'ensure_synthetic_shapes', 'read_meta',
                          'default_params')
