"""Drawing the synthetic shapes images and corrupting train labels (pure functions of an RNG).

An image is a textured background (base colour, gradient, blotches, noise),
unlabelled clutter drawn first (bars, elongated ellipses, open arcs,
L-shapes, specks: hard negatives), then up to ``max_objects`` labelled
shapes of the classes in :data:`CLASSES` that do not overlap. Boxes are
``[x, y, w, h]`` in pixels, tight around the drawn pixels.
:func:`corrupt_train_labels` turns a few train annotations into outliers
(wrong class, missing, misplaced box); it draws from its own random stream,
so outlier rates never change a pixel.
"""
import math
from typing import Tuple

import numpy as np
from PIL import Image, ImageDraw

#: Class names, in category-id order (ids start at 1).
CLASSES = ('circle', 'square', 'triangle', 'cross', 'ring')
#: Unlabelled clutter that looks like the classes but is none of them.
_DISTRACTORS = ('bar', 'ellipse', 'arc', 'ell', 'specks')


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


def render_image(rng, params) -> Tuple[np.ndarray, list]:
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


def corrupt_train_labels(objects, rng, params, size):
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
