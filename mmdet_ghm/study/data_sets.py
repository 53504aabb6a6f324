"""The study's data sets: where each lives, what points a config at it, how a record names it.

A set is named by its id (``synthetic_shapes``, ``synthetic_shapes_noise4``,
``tree_crowns``, ...) and lives in ``<data_dir>/<id>/``. Records carry
:func:`describe_data` (id, parameters, stats, SHA-256 of the annotation files)
and overrides made :func:`portable`, never a machine's absolute path. The
runner and the record migration both build on this module.
"""
import os
import os.path as osp
from typing import Dict, Optional

from mmdet_ghm.datasets.build_dir import file_sha256

from .variants import Variant

DATA_DIR = 'data'
#: --quick: a tiny synthetic set of its own (so it never clashes with the full one).
QUICK_GENERATOR = dict(seed=0, num_train=24, num_val=8)
NOISE_KEYS = ('label_noise', 'missing_rate', 'box_noise')
#: The dataset argument that carries a set's parameters, per data set.
PARAMS_KEY = dict(shapes='generator_cfg', crowns='converter_cfg')
ANNOTATIONS = ('annotations/instances_train.json', 'annotations/instances_val.json')


def data_settings(variant: Variant, quick: bool, data_dir: Optional[str] = None):
    """``(set_id, data_root, params)`` of a variant's data set.

    Every set lives in ``<data_dir>/<set_id>/`` (``data_dir`` defaults to the
    repository's ``data/``; the root is absolute, with a trailing slash). The
    id names the set in records: ``synthetic_shapes`` (``_quick`` for
    ``--quick``, ``_noise<percent>`` for a variant with its own outlier rate,
    since a data root never holds a set made with other parameters) or
    ``tree_crowns`` (the same set in quick runs: it is small).
    """
    if variant.dataset == 'crowns':
        set_id, params = 'tree_crowns', {}
    else:
        set_id = 'synthetic_shapes_quick' if quick else 'synthetic_shapes'
        params = dict(QUICK_GENERATOR) if quick else dict(seed=0)
        if variant.noise is not None:
            params.update({key: variant.noise for key in NOISE_KEYS})
            set_id += f'_noise{variant.noise * 100:g}'
    root = osp.join(osp.abspath(data_dir or DATA_DIR), set_id) + '/'
    return set_id, root, params


def run_overrides(dataset: str, data_root: str, params: dict, quick: bool) -> Dict:
    """``merge_from_dict`` overrides that point a study config at a data set."""
    overrides = {}
    for split in ('train', 'val', 'test'):
        overrides[f'{split}_dataloader.dataset.data_root'] = data_root
        overrides[f'{split}_dataloader.dataset.{PARAMS_KEY[dataset]}'] = params
    for split in ('val', 'test'):
        overrides[f'{split}_evaluator.ann_file'] = data_root + 'annotations/instances_val.json'
    if quick:
        overrides.update({
            'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1,
            'default_hooks.checkpoint.interval': 1,
            # after a few iterations all scores are below 0.05: keep every
            # detection so that COCO evaluation really runs
            'model.test_cfg.score_thr': 0.0})
        for split in ('train', 'val', 'test'):
            overrides[f'{split}_dataloader.batch_size'] = 4
    return overrides


def map_strings(value, fn):
    """``value`` (a string, or dicts and lists of them) with ``fn`` applied to every string."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {key: map_strings(item, fn) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [map_strings(item, fn) for item in value]
    return value


def portable(value, data_root: str, set_id: str):
    """``value`` with the machine's ``data_root`` written as ``data/<set_id>/``.

    Records name data sets by id, relative to the repository (where the
    runner puts them by default), never by a machine's absolute path.
    """
    return map_strings(value, lambda s: f'{DATA_DIR}/{set_id}/' + s[len(data_root):]
                       if s.startswith(data_root) else s)


def relative_paths(value, base: str):
    """``value`` with the paths under ``base`` written relative to it."""
    prefix = base.rstrip(os.sep) + os.sep
    return map_strings(value, lambda s: osp.relpath(s, base) if s.startswith(prefix) else s)


def describe_data(set_id: str, data_root: str, params: dict, stats) -> Dict:
    """A record's ``data``: the set's id, parameters, stats and annotation hashes."""
    return dict(id=set_id, params=params, stats=stats, annotations_sha256={
        name: file_sha256(osp.join(data_root, name)) for name in ANNOTATIONS})


def build_data_set(dataset: str, root: str, params: dict) -> dict:
    """Build the set ``dataset`` in ``root`` if missing (or check it); its meta."""
    if dataset == 'crowns':
        from mmdet_ghm.datasets.tree_crowns import ensure_tree_crowns
        return ensure_tree_crowns(root, **params)
    from mmdet_ghm.datasets.synthetic_shapes import ensure_synthetic_shapes
    return ensure_synthetic_shapes(root, **params)
