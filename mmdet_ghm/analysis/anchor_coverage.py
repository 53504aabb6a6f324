"""How well an anchor head's anchors fit the ground-truth boxes, as MaxIoUAssigner sees them.

The functional core of ``tools/analysis_tools/anchor_coverage.py``. For every
image it lays out the anchors the head would see (the anchor generator's grid
on feature maps of ``ceil(padded side / stride)`` cells, the image padded to a
multiple of ``pad_size_divisor`` as ``DetDataPreprocessor`` pads it), computes
the IoU of each box with each anchor (one image at a time: a
``(boxes, anchors)`` matrix, the one the assigner itself builds in training)
and assigns the anchors with MMDetection's own ``MaxIoUAssigner``
(``assign_wrt_overlaps``, so low-quality matching, ``gt_max_assign_all`` and
``ignore_iof_thr`` behave as in training). Per box it keeps:

* the best IoU over all anchors, and the FPN level of that best anchor (the
  box's *level* in the per-level rows);
* whether some anchor reaches ``pos_iou_thr`` (a box without one is
  *uncovered*: it gets positives only through low-quality matching, with
  ``min_pos_iou``, or none at all);
* its positive anchors after the assignment, counted per level.

:func:`anchor_coverage` sums these up per level and overall;
:func:`suggest_octave_base_scale` repeats it over a grid of
``octave_base_scale`` values.
"""
import copy
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

#: Quantiles reported for the best IoU and the box size: key -> q.
QUANTILES = (('q05', 0.05), ('q25', 0.25), ('median', 0.5), ('q75', 0.75), ('q95', 0.95))
#: The octave_base_scale values :func:`suggest_octave_base_scale` tries by default
#: (the config's own value is always added).
DEFAULT_CANDIDATES = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0)
#: How :func:`suggest_octave_base_scale` chooses.
SUGGESTION_RULE = (
    'the candidate with the smallest share of boxes without an anchor at IoU >= pos_iou_thr; '
    'ties (the same number of such boxes) go to the higher mean best-anchor IoU, then to the '
    'value closest to the config\'s (by ratio), then to the smaller value')

ArrayLike = Union[Tensor, np.ndarray, Sequence[Sequence[float]]]


def build_anchor_generator(anchor_generator):
    """The anchor generator: built from a config dict with MMDetection's ``TASK_UTILS``.

    Args:
        anchor_generator (dict | object): ``model.bbox_head.anchor_generator``
            of a config, or an already built generator (returned as is).
    """
    if not isinstance(anchor_generator, Mapping):
        return anchor_generator
    import mmdet.models.task_modules  # noqa: F401  (registers the generators)
    from mmdet.registry import TASK_UTILS
    return TASK_UTILS.build(copy.deepcopy(dict(anchor_generator)))


def build_assigner(pos_iou_thr: float = 0.5, neg_iou_thr: float = 0.4, min_pos_iou: float = 0.0,
                   **kwargs):
    """MMDetection's ``MaxIoUAssigner`` with these thresholds.

    Args:
        pos_iou_thr, neg_iou_thr, min_pos_iou: As ``MaxIoUAssigner``.
        **kwargs: Its other arguments (``match_low_quality``,
            ``gt_max_assign_all``, ``ignore_iof_thr``, ``iou_calculator``, ...).
    """
    from mmdet.models.task_modules.assigners import MaxIoUAssigner
    return MaxIoUAssigner(pos_iou_thr=pos_iou_thr, neg_iou_thr=neg_iou_thr,
                          min_pos_iou=min_pos_iou, **kwargs)


def padded_size(image_size: Tuple[int, int], pad_size_divisor: int = 1) -> Tuple[int, int]:
    """``(h, w)`` padded up to multiples of ``pad_size_divisor`` (``DetDataPreprocessor``)."""
    d = max(int(pad_size_divisor), 1)
    return tuple(int(math.ceil(side / d) * d) for side in image_size)


def image_anchors(generator, image_size: Tuple[int, int], pad_size_divisor: int = 1,
                  allowed_border: float = -1) -> Tuple[Tensor, Tensor]:
    """The anchors the head sees for one image, and the level of each.

    The feature map of stride ``s`` has ``ceil(padded side / s)`` cells (what
    ResNet, EfficientNet and FPN's stride-2 extra convs give on a padded
    input). With ``allowed_border >= 0`` only anchors inside the unpadded
    image plus that border are kept (``train_cfg.allowed_border``; RetinaNet
    uses -1: all).

    Args:
        generator: A built anchor generator (``grid_priors``, ``strides``).
        image_size (tuple): ``(h, w)`` of the image before padding.
        pad_size_divisor (int): The data preprocessor's ``pad_size_divisor``.
        allowed_border (float): As ``train_cfg.allowed_border``.

    Returns:
        tuple: anchors ``(A, 4)`` float32 xyxy and their level indices ``(A,)``.
    """
    pad_h, pad_w = padded_size(image_size, pad_size_divisor)
    featmaps = [(int(math.ceil(pad_h / sh)), int(math.ceil(pad_w / sw)))
                for sw, sh in generator.strides]
    per_level = [getattr(a, 'tensor', a)  # HorizontalBoxes with use_box_type=True
                 for a in generator.grid_priors(featmaps, device='cpu')]
    anchors = torch.cat(per_level).float()
    levels = torch.cat([torch.full((len(a),), i, dtype=torch.long)
                        for i, a in enumerate(per_level)])
    if allowed_border >= 0:
        h, w = image_size
        inside = ((anchors[:, 0] >= -allowed_border) & (anchors[:, 1] >= -allowed_border)
                  & (anchors[:, 2] < w + allowed_border) & (anchors[:, 3] < h + allowed_border))
        anchors, levels = anchors[inside], levels[inside]
    return anchors, levels


def match_boxes(gt_bboxes: Tensor, anchors: Tensor, levels: Tensor, num_levels: int,
                assigner, ignored_bboxes: Optional[Tensor] = None) -> Dict[str, Tensor]:
    """Best anchor and positives of each box of one image.

    Args:
        gt_bboxes (Tensor): ``(G, 4)`` xyxy boxes that count.
        anchors (Tensor): ``(A, 4)`` xyxy.
        levels (Tensor): ``(A,)`` level of each anchor in ``[0, num_levels)``.
        num_levels (int): Number of levels.
        assigner: A ``MaxIoUAssigner``.
        ignored_bboxes (Tensor, optional): ``(I, 4)`` ignored boxes; they only
            matter with ``ignore_iof_thr > 0`` (anchors covering them are
            taken out of the assignment, as in training).

    Returns:
        dict: ``best_iou`` ``(G,)`` (0 where no anchor overlaps),
        ``best_level`` ``(G,)`` (the level of the best anchor; the lowest one
        on ties) and ``positives`` ``(G, num_levels)`` (positive anchors of
        each box per level).
    """
    gt_bboxes = gt_bboxes.float().reshape(-1, 4)
    num_gts = len(gt_bboxes)
    if num_gts == 0 or len(anchors) == 0:
        return dict(best_iou=torch.zeros(num_gts),
                    best_level=torch.zeros(num_gts, dtype=torch.long),
                    positives=torch.zeros(num_gts, num_levels, dtype=torch.long))
    overlaps = assigner.iou_calculator(gt_bboxes, anchors)  # (G, A)
    if (assigner.ignore_iof_thr > 0 and ignored_bboxes is not None
            and len(ignored_bboxes) > 0):
        ignored_bboxes = ignored_bboxes.float().reshape(-1, 4)
        if assigner.ignore_wrt_candidates:
            iof = assigner.iou_calculator(anchors, ignored_bboxes, mode='iof').max(dim=1)[0]
        else:
            iof = assigner.iou_calculator(ignored_bboxes, anchors, mode='iof').max(dim=0)[0]
        overlaps[:, iof > assigner.ignore_iof_thr] = -1
    best_iou, best_anchor = overlaps.max(dim=1)
    result = assigner.assign_wrt_overlaps(overlaps, torch.zeros(num_gts, dtype=torch.long))
    positive = result.gt_inds > 0
    positives = torch.zeros(num_gts, num_levels, dtype=torch.long)
    positives.index_put_((result.gt_inds[positive] - 1, levels[positive]),
                         torch.ones(int(positive.sum()), dtype=torch.long), accumulate=True)
    return dict(best_iou=best_iou.clamp(min=0), best_level=levels[best_anchor],
                positives=positives)


def _as_boxes(boxes: ArrayLike) -> Tensor:
    boxes = boxes.detach().cpu() if isinstance(boxes, Tensor) else boxes
    array = np.asarray(boxes, dtype=np.float32)
    if array.size == 0:
        return torch.zeros(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f'boxes must be (n, 4) xyxy, got shape {array.shape}')
    return torch.from_numpy(array)


def _quantiles(values: np.ndarray) -> Dict[str, float]:
    out = dict(mean=float(values.mean()), min=float(values.min()))
    out.update({key: float(np.quantile(values, q)) for key, q in QUANTILES})
    out['max'] = float(values.max())
    return out


def _stats(best_iou: np.ndarray, positives: np.ndarray, sizes: np.ndarray,
           pos_iou_thr: float) -> dict:
    """The numbers of one group of boxes (one level, or all)."""
    n = len(best_iou)
    if n == 0:
        return dict(num_boxes=0, uncovered_share=None, low_quality_only_share=None,
                    no_positive_share=None, positives_per_box=None, positives_by_level=None,
                    best_iou=None, box_size=None)
    total = positives.sum(axis=1)
    uncovered = best_iou < pos_iou_thr
    return dict(
        num_boxes=int(n),
        uncovered_share=float(uncovered.mean()),
        low_quality_only_share=float((uncovered & (total > 0)).mean()),
        no_positive_share=float((total == 0).mean()),
        positives_per_box=dict(mean=float(total.mean()), median=float(np.median(total))),
        positives_by_level=[float(v) for v in positives.mean(axis=0)],
        best_iou=_quantiles(best_iou),
        box_size=_quantiles(sizes))


def _generator_summary(generator) -> List[dict]:
    """Stride and anchor sizes (sqrt of the area, px) of each level."""
    out = []
    for stride, base in zip(generator.strides, generator.base_anchors):
        area = (base[:, 2] - base[:, 0]) * (base[:, 3] - base[:, 1])
        side = area.sqrt()
        out.append(dict(stride=[float(s) for s in stride],
                        anchor_sizes=[float(side.min()), float(side.max())],
                        anchors_per_location=int(len(base))))
    return out


def anchor_coverage(gt_bboxes: Sequence[ArrayLike], image_sizes: Sequence[Tuple[int, int]],
                    anchor_generator, pos_iou_thr: float = 0.5, neg_iou_thr: float = 0.4,
                    min_pos_iou: float = 0.0, *,
                    ignore_flags: Optional[Sequence[ArrayLike]] = None,
                    pad_size_divisor: int = 1, allowed_border: float = -1,
                    assigner_options: Optional[dict] = None) -> dict:
    """Anchor coverage of a set of boxes, per level and overall.

    Args:
        gt_bboxes (sequence): per image, ``(n_i, 4)`` xyxy boxes in the
            coordinates of the image the head sees (after resizing).
        image_sizes (sequence): per image, ``(h, w)`` before padding.
        anchor_generator (dict | object): ``model.bbox_head.anchor_generator``
            of a config (built with ``TASK_UTILS``) or a built generator.
        pos_iou_thr, neg_iou_thr, min_pos_iou (float): The assigner's.
        ignore_flags (sequence, optional): per image, ``(n_i,)`` bools; flagged
            boxes are left out of every number and counted in ``num_ignored``.
        pad_size_divisor (int): The data preprocessor's.
        allowed_border (float): ``train_cfg.allowed_border`` (-1: all anchors).
        assigner_options (dict, optional): Other ``MaxIoUAssigner`` arguments
            (``match_low_quality`` (True), ``gt_max_assign_all`` (True),
            ``ignore_iof_thr`` (-1), ...).

    Returns:
        dict: ``settings`` (the arguments, JSON-ready), ``num_images``,
        ``num_boxes``, ``num_ignored``, ``levels`` (one dict per level:
        ``level``, ``stride``, ``anchor_sizes`` ``[min, max]`` sqrt of the
        area in px, ``anchors_per_location``, ``positives_share`` (share of all
        positive anchors that lie on this level) and the statistics below
        over the boxes whose best anchor is on this level), ``overall`` (the
        statistics over all boxes). Statistics: ``num_boxes``;
        ``uncovered_share`` (best IoU < ``pos_iou_thr``);
        ``low_quality_only_share`` (uncovered, yet positive through low-quality
        matching); ``no_positive_share`` (no positive anchor at all);
        ``positives_per_box`` ``{mean, median}``; ``positives_by_level`` (mean
        positives per box from each level's anchors); ``best_iou`` and
        ``box_size`` (sqrt of the area, px) as ``{mean, min, q05, q25, median,
        q75, q95, max}``. A group without boxes has ``num_boxes`` 0 and None
        elsewhere.

    Raises:
        ValueError: Inputs of different lengths, or boxes not ``(n, 4)``.
    """
    if len(gt_bboxes) != len(image_sizes):
        raise ValueError(f'{len(gt_bboxes)} box sets for {len(image_sizes)} image sizes')
    if ignore_flags is not None and len(ignore_flags) != len(gt_bboxes):
        raise ValueError(f'{len(ignore_flags)} ignore-flag sets for {len(gt_bboxes)} images')
    generator = build_anchor_generator(anchor_generator)
    options = dict(assigner_options or {})
    assigner = build_assigner(pos_iou_thr, neg_iou_thr, min_pos_iou, **options)
    num_levels = len(generator.strides)
    anchors_of: Dict[Tuple[int, int], Tuple[Tensor, Tensor]] = {}
    best, level, positives, sizes, num_ignored = [], [], [], [], 0
    for i, (boxes, size) in enumerate(zip(gt_bboxes, image_sizes)):
        boxes = _as_boxes(boxes)
        ignored = None
        if ignore_flags is not None:
            flags = torch.as_tensor(np.asarray(ignore_flags[i], dtype=bool)).reshape(-1)
            if len(flags) != len(boxes):
                raise ValueError(f'image {i}: {len(flags)} ignore flags for {len(boxes)} boxes')
            ignored, boxes = boxes[flags], boxes[~flags]
            num_ignored += int(flags.sum())
        if len(boxes) == 0:
            continue
        key = (int(size[0]), int(size[1]))
        if key not in anchors_of:
            anchors_of[key] = image_anchors(generator, key, pad_size_divisor, allowed_border)
        matched = match_boxes(boxes, *anchors_of[key], num_levels, assigner, ignored)
        best.append(matched['best_iou'])
        level.append(matched['best_level'])
        positives.append(matched['positives'])
        sizes.append(((boxes[:, 2] - boxes[:, 0]).clamp(min=0)
                      * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)).sqrt())
    cat = (lambda parts, shape: torch.cat(parts).numpy() if parts
           else np.zeros(shape, dtype=np.float32))
    best, level = cat(best, (0,)), cat(level, (0,)).astype(np.int64)
    positives, sizes = cat(positives, (0, num_levels)), cat(sizes, (0,))
    all_positives = max(int(positives.sum()), 1)
    levels = []
    for lvl, summary in enumerate(_generator_summary(generator)):
        on = level == lvl
        levels.append(dict(level=lvl, **summary,
                           positives_share=float(positives[:, lvl].sum() / all_positives),
                           **_stats(best[on], positives[on], sizes[on], pos_iou_thr)))
    settings = dict(pos_iou_thr=pos_iou_thr, neg_iou_thr=neg_iou_thr, min_pos_iou=min_pos_iou,
                    pad_size_divisor=pad_size_divisor, allowed_border=allowed_border,
                    assigner_options=_jsonable(options),
                    anchor_generator=_jsonable(anchor_generator)
                    if isinstance(anchor_generator, Mapping) else repr(anchor_generator))
    return dict(settings=settings, num_images=len(gt_bboxes), num_boxes=int(len(best)),
                num_ignored=num_ignored, levels=levels,
                overall=_stats(best, positives, sizes, pos_iou_thr))


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return repr(value)


def suggest_octave_base_scale(gt_bboxes: Sequence[ArrayLike],
                              image_sizes: Sequence[Tuple[int, int]], anchor_generator: Mapping,
                              pos_iou_thr: float = 0.5, neg_iou_thr: float = 0.4,
                              min_pos_iou: float = 0.0, *,
                              candidates: Optional[Sequence[float]] = None,
                              **coverage_options) -> dict:
    """The ``octave_base_scale`` whose anchors leave the fewest boxes uncovered.

    Each candidate replaces the config's ``octave_base_scale`` and keeps its
    ``scales_per_octave``, ``ratios``, ``strides`` (and the rest);
    :func:`anchor_coverage` is run for each. The choice follows
    :data:`SUGGESTION_RULE`: the smallest share of boxes without an anchor at
    ``pos_iou_thr``; ties go to the higher mean best-anchor IoU (the anchors
    that fit the boxes more tightly), then to the value closest to the
    config's, then to the smaller value.

    Args:
        gt_bboxes, image_sizes, pos_iou_thr, neg_iou_thr, min_pos_iou: As
            :func:`anchor_coverage`.
        anchor_generator (dict): The config's anchor generator; it must set
            ``octave_base_scale`` and ``scales_per_octave``.
        candidates (sequence, optional): Values to try (default
            :data:`DEFAULT_CANDIDATES`); the config's own value is added.
        **coverage_options: ``ignore_flags``, ``pad_size_divisor``,
            ``allowed_border``, ``assigner_options`` of :func:`anchor_coverage`.

    Returns:
        dict: ``current`` (the config's value), ``current_uncovered_share``,
        ``suggested``, ``uncovered_share`` and ``mean_best_iou`` (at the
        suggested value), ``rule`` (:data:`SUGGESTION_RULE`) and
        ``candidates``: per value tried (ascending), ``octave_base_scale``,
        ``anchor_sizes`` ``[min, max]`` over all levels, ``uncovered_share``,
        ``no_positive_share``, ``mean_best_iou``, ``positives_per_box`` (mean).

    Raises:
        ValueError: The generator has no ``octave_base_scale`` (explicit
            ``scales``), a candidate is not > 0, or there are no boxes.
    """
    if not isinstance(anchor_generator, Mapping) or \
            anchor_generator.get('octave_base_scale') is None or \
            anchor_generator.get('scales_per_octave') is None:
        raise ValueError('suggest_octave_base_scale needs an anchor generator config with '
                         'octave_base_scale and scales_per_octave; got '
                         f'{_jsonable(anchor_generator)!r}')
    current = float(anchor_generator['octave_base_scale'])
    values = sorted({float(v) for v in (candidates or DEFAULT_CANDIDATES)} | {current})
    if values[0] <= 0:
        raise ValueError(f'octave_base_scale candidates must be > 0, got {values[0]!r}')
    rows = []
    for value in values:
        cfg = dict(copy.deepcopy(dict(anchor_generator)), octave_base_scale=value)
        report = anchor_coverage(gt_bboxes, image_sizes, cfg, pos_iou_thr, neg_iou_thr,
                                 min_pos_iou, **coverage_options)
        overall = report['overall']
        if overall['num_boxes'] == 0:
            raise ValueError('no boxes to suggest an octave_base_scale from')
        sizes = [s for lvl in report['levels'] for s in lvl['anchor_sizes']]
        rows.append(dict(octave_base_scale=value, anchor_sizes=[min(sizes), max(sizes)],
                         uncovered_share=overall['uncovered_share'],
                         no_positive_share=overall['no_positive_share'],
                         mean_best_iou=overall['best_iou']['mean'],
                         positives_per_box=overall['positives_per_box']['mean']))
    # the same boxes for every candidate: equal shares are equal counts
    best = min(rows, key=lambda r: (r['uncovered_share'], -r['mean_best_iou'],
                                    abs(math.log(r['octave_base_scale'] / current)),
                                    r['octave_base_scale']))
    now = next(r for r in rows if r['octave_base_scale'] == current)
    return dict(current=current, current_uncovered_share=now['uncovered_share'],
                suggested=best['octave_base_scale'], uncovered_share=best['uncovered_share'],
                mean_best_iou=best['mean_best_iou'], rule=SUGGESTION_RULE, candidates=rows)
