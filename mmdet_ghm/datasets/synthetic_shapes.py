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

Drawing and label corruption: :mod:`.synthetic_rendering`. Public API:
:func:`generate_synthetic_shapes` and
:func:`ensure_synthetic_shapes` (generate only if missing; safe when several
processes start at once).
"""
import json
import os
import os.path as osp
from typing import Dict, Sequence

import numpy as np
from PIL import Image

from .build_dir import build_atomically, dataset_lock
from .synthetic_rendering import CLASSES, corrupt_train_labels, render_image

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
        pixels, objects = render_image(np.random.default_rng(render_ss),
                                       params)
        file_name = f'{idx + 1:06d}.png'
        Image.fromarray(pixels).save(osp.join(root, split, file_name),
                                     optimize=False, compress_level=6)
        images.append(dict(id=idx + 1, file_name=file_name, width=size,
                           height=size))
        stats['objects'] += len(objects)
        if split == 'train':
            kept = corrupt_train_labels(objects, np.random.default_rng(noise_ss),
                                        params, size)
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
