"""A config's anchor head settings and its split's boxes at the scale the head sees them.

The inputs of :mod:`mmdet_ghm.analysis.anchor_coverage` taken from a config:

* :func:`head_settings`: the anchor generator, the ``MaxIoUAssigner``'s
  thresholds, ``pad_size_divisor`` and ``allowed_border``; it refuses heads
  without anchors and other assigners, naming them;
* :func:`collect_boxes`: every image of a split once, either through the
  split's own pipeline with fixed seeds (the boxes at the scale the detector
  trains on, after its resizing, cropping and flipping) or, with
  ``augment=False``, the annotation boxes scaled as the test pipeline's
  deterministic ``Resize`` scales them (unscaled without one).
"""
import copy
import random
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

#: The assigner arguments :func:`anchor_coverage` takes by name.
_THRESHOLDS = ('pos_iou_thr', 'neg_iou_thr', 'min_pos_iou')


def type_name(cfg) -> str:
    """The ``type`` of a config dict as a short name (no scope, classes by name)."""
    kind = cfg.get('type') if hasattr(cfg, 'get') else None
    if isinstance(kind, str):
        return kind.split('.')[-1]
    return getattr(kind, '__name__', repr(kind))


def _plain(cfg):
    return cfg.to_dict() if hasattr(cfg, 'to_dict') else copy.deepcopy(dict(cfg))


def head_settings(cfg) -> dict:
    """What the anchor coverage of ``cfg``'s detector depends on.

    Args:
        cfg (mmengine.Config): A detector config.

    Returns:
        dict: ``anchor_generator`` (``model.bbox_head.anchor_generator``),
        ``pos_iou_thr``, ``neg_iou_thr``, ``min_pos_iou`` and
        ``assigner_options`` (the rest of ``model.train_cfg.assigner``),
        ``pad_size_divisor`` (``model.data_preprocessor``, default 1) and
        ``allowed_border`` (``model.train_cfg``, default -1).

    Raises:
        ValueError: The model has no ``bbox_head`` (two-stage detectors), the
            head no ``anchor_generator`` (anchor-free heads), or the assigner
            is not ``MaxIoUAssigner``; the message names what was found.
    """
    model = cfg.get('model') or {}
    head = model.get('bbox_head')
    if head is None:
        raise ValueError(f'the model ({type_name(model)}) has no bbox_head: only single-stage '
                         'anchor heads (model.bbox_head.anchor_generator, as RetinaNet) are '
                         'covered')
    generator = head.get('anchor_generator')
    if generator is None:
        raise ValueError(f'model.bbox_head ({type_name(head)}) has no anchor_generator: '
                         'anchor-free heads (FCOS and the like) are not covered')
    train_cfg = model.get('train_cfg') or head.get('train_cfg') or {}
    assigner = train_cfg.get('assigner')
    if assigner is None:
        raise ValueError('model.train_cfg has no assigner; only MaxIoUAssigner is supported')
    if type_name(assigner) != 'MaxIoUAssigner':
        raise ValueError(f'model.train_cfg.assigner is {type_name(assigner)}: only '
                         'MaxIoUAssigner is supported')
    assigner = _plain(assigner)
    assigner.pop('type')
    missing = [k for k in _THRESHOLDS[:2] if k not in assigner]
    if missing:
        raise ValueError(f'model.train_cfg.assigner lacks {missing}')
    thresholds = dict(pos_iou_thr=assigner.pop('pos_iou_thr'),
                      neg_iou_thr=assigner.pop('neg_iou_thr'),
                      min_pos_iou=assigner.pop('min_pos_iou', 0.0))
    if isinstance(thresholds['neg_iou_thr'], list):
        thresholds['neg_iou_thr'] = tuple(thresholds['neg_iou_thr'])
    preprocessor = model.get('data_preprocessor') or {}
    return dict(anchor_generator=_plain(generator), **thresholds, assigner_options=assigner,
                pad_size_divisor=int(preprocessor.get('pad_size_divisor', 1) or 1),
                allowed_border=train_cfg.get('allowed_border', -1))


# -- the split's images --------------------------------------------------------------------------
def build_split_dataset(cfg, split: str):
    """The data set of ``cfg.<split>_dataloader``, built with MMDetection's registry."""
    from mmengine.registry import DefaultScope

    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    loader = cfg.get(f'{split}_dataloader')
    if loader is None or loader.get('dataset') is None:
        raise ValueError(f'the config has no {split}_dataloader.dataset')
    register_all_modules(init_default_scope=False)
    dataset_cfg = copy.deepcopy(loader['dataset'])
    _no_serialization(dataset_cfg)
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(dataset_cfg)
    return dataset


def _no_serialization(dataset_cfg) -> None:
    """``serialize_data=False`` in the data sets inside wrappers, in place.

    One process reads the data, so serializing it (for worker processes)
    saves nothing; and MMEngine's serialization fails on an empty data set
    (``need at least one array to concatenate``) before it could be reported.
    """
    if dataset_cfg.get('datasets') is not None:
        for part in dataset_cfg['datasets']:
            _no_serialization(part)
    elif dataset_cfg.get('dataset') is not None:
        _no_serialization(dataset_cfg['dataset'])
    else:
        dataset_cfg['serialize_data'] = False


def leaf_datasets(dataset) -> list:
    """The data sets inside wrappers (``ConcatDataset``'s parts, ``RepeatDataset``'s one)."""
    if hasattr(dataset, 'datasets'):
        return [leaf for part in dataset.datasets for leaf in leaf_datasets(part)]
    if hasattr(dataset, 'dataset'):
        return leaf_datasets(dataset.dataset)
    return [dataset]


def _find_pipeline(dataset_cfg) -> list:
    while dataset_cfg is not None:
        if dataset_cfg.get('pipeline') is not None:
            return list(dataset_cfg['pipeline'])
        dataset_cfg = dataset_cfg.get('dataset') or (dataset_cfg.get('datasets') or [None])[0]
    return []


def deterministic_resize(cfg) -> Optional[dict]:
    """The ``Resize`` step of the test pipeline (``test_dataloader``, else ``val_dataloader``).

    Returns:
        dict | None: The step's config, or None when the pipeline does not resize.

    Raises:
        ValueError: The pipeline resizes with another transform (``RandomResize``,
            ``TestTimeAug``, ...): only a deterministic ``Resize`` is modelled.
    """
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
    for step in _find_pipeline(loader.get('dataset')):
        kind = type_name(step)
        if kind == 'Resize':
            return _plain(step)
        if 'Resize' in kind or kind == 'TestTimeAug':
            raise ValueError(f'the test pipeline resizes with {kind}: without augmentation only '
                             "a deterministic 'Resize' step (scale or scale_factor) is modelled")
    return None


def resized_shape(width: int, height: int, resize: dict) -> Tuple[int, int]:
    """``(new_w, new_h)`` that MMDetection's ``Resize`` gives an image of ``width x height``."""
    from mmcv.image.geometric import _scale_size, rescale_size
    scale, factor = resize.get('scale'), resize.get('scale_factor')
    if scale is None:
        if factor is None:
            raise ValueError(f'Resize needs scale or scale_factor, got {resize!r}')
        scale = _scale_size((width, height), factor)
    elif isinstance(scale, (int, float)):
        scale = (int(scale), int(scale))
    if resize.get('keep_ratio', False):
        return tuple(rescale_size((width, height), tuple(scale)))
    return int(scale[0]), int(scale[1])


def _annotation_sample(dataset, index: int, resize: Optional[dict]) -> Optional[tuple]:
    info = dataset.get_data_info(index)
    boxes = np.array([inst['bbox'] for inst in info.get('instances', [])],
                     dtype=np.float32).reshape(-1, 4)
    flags = np.array([bool(inst.get('ignore_flag', 0)) for inst in info.get('instances', [])],
                     dtype=bool)
    if 'height' not in info or 'width' not in info:
        raise ValueError(f'the data info of image {index} has no height/width')
    h, w = int(info['height']), int(info['width'])
    if resize is not None:
        new_w, new_h = resized_shape(w, h, resize)
        boxes *= np.array([new_w / w, new_h / h] * 2, dtype=np.float32)
        if resize.get('clip_object_border', True):
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, new_w)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, new_h)
        h, w = new_h, new_w
    return boxes, flags, (h, w)


def _as_array(boxes) -> np.ndarray:
    boxes = getattr(boxes, 'tensor', boxes)
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def _pipeline_sample(dataset, index: int) -> Optional[tuple]:
    data = dataset.prepare_data(index)
    if data is None:  # the pipeline dropped the image (e.g. a crop without boxes)
        return None
    sample = data['data_samples']
    if 'bboxes' not in sample.gt_instances:
        raise ValueError('the pipeline gives no ground-truth boxes (no LoadAnnotations?); '
                         'use the annotations instead (--no-augment)')
    kept = _as_array(sample.gt_instances.bboxes)
    ignored = sample.get('ignored_instances')
    ignored = _as_array(ignored.bboxes) if ignored is not None and 'bboxes' in ignored \
        else np.zeros((0, 4), np.float32)
    flags = np.r_[np.zeros(len(kept), bool), np.ones(len(ignored), bool)]
    h, w = data['inputs'].shape[-2:]
    return np.concatenate([kept, ignored]), flags, (int(h), int(w))


def collect_boxes(cfg, split: str = 'train', augment: bool = True, samples: Optional[int] = None,
                  seed: int = 0) -> Dict:
    """Every image of a split once: its boxes, ignore flags and size as the head sees them.

    Args:
        cfg (mmengine.Config): A detector config.
        split (str): ``train``, ``val`` or ``test`` (its ``<split>_dataloader``).
        augment (bool): Run each image through the split's pipeline (seeded
            with ``seed``); else scale the annotation boxes as the test
            pipeline's ``Resize`` does (:func:`deterministic_resize`).
        samples (int, optional): Use this many images, drawn with ``seed``
            (default: all).
        seed (int): Seed of Python's, NumPy's and torch's generators.

    Returns:
        dict: ``gt_bboxes`` (per image ``(n, 4)`` float32 xyxy), ``ignore_flags``
        (per image ``(n,)`` bool), ``image_sizes`` (per image ``(h, w)``, before
        padding), ``num_images`` (the images used), ``split_images`` (the split's, before
        ``samples`` draws from it), ``skipped`` (images the pipeline
        dropped), ``source`` (``'pipeline'`` or ``'annotations'``) and
        ``resize`` (the ``Resize`` applied to the annotations, or None).

    Raises:
        ValueError: The split has no images, ``samples`` < 1, or see
            :func:`deterministic_resize`.
    """
    dataset = build_split_dataset(cfg, split)
    index: List[Tuple[object, int]] = []
    for leaf in leaf_datasets(dataset):
        if hasattr(leaf, 'full_init'):
            leaf.full_init()
        index += [(leaf, i) for i in range(len(leaf))]
    if not index:
        raise ValueError(f'the {split} split ({type_name(cfg[f"{split}_dataloader"].dataset)}) '
                         'has no images')
    split_images = len(index)
    if samples is not None:
        if samples < 1:
            raise ValueError(f'samples must be >= 1, got {samples}')
        if samples < len(index):
            chosen = np.random.default_rng(seed).choice(len(index), samples, replace=False)
            index = [index[i] for i in sorted(chosen)]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    resize = None if augment else deterministic_resize(cfg)
    out = dict(gt_bboxes=[], ignore_flags=[], image_sizes=[], num_images=len(index),
               split_images=split_images, skipped=0,
               source='pipeline' if augment else 'annotations', resize=resize)
    for leaf, i in index:
        sample = _pipeline_sample(leaf, i) if augment else _annotation_sample(leaf, i, resize)
        if sample is None:
            out['skipped'] += 1
            continue
        for key, value in zip(('gt_bboxes', 'ignore_flags', 'image_sizes'), sample):
            out[key].append(value)
    return out


def coverage_inputs(settings: dict, data: dict) -> dict:
    """The keyword arguments of :func:`~mmdet_ghm.analysis.anchor_coverage.anchor_coverage`
    (and of ``suggest_octave_base_scale``) from :func:`head_settings` and :func:`collect_boxes`."""
    return dict(gt_bboxes=data['gt_bboxes'], image_sizes=data['image_sizes'],
                anchor_generator=settings['anchor_generator'],
                pos_iou_thr=settings['pos_iou_thr'], neg_iou_thr=settings['neg_iou_thr'],
                min_pos_iou=settings['min_pos_iou'], ignore_flags=data['ignore_flags'],
                pad_size_divisor=settings['pad_size_divisor'],
                allowed_border=settings['allowed_border'],
                assigner_options=settings['assigner_options'])
