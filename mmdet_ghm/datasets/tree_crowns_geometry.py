"""Where the tree-crown images are split and tiled, and how boxes are clipped to a window.

Pure functions on integer pixel boxes ``x0, y0, x1, y1`` (``x1``, ``y1``
exclusive), arrays of shape (N, 4).

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
Clipped boxes narrower or lower than 2 px are dropped.
"""
import math
from typing import Dict, List, Sequence, Tuple

import numpy as np

#: Nominal split line, as a fraction of the image width.
SPLIT_AT = 0.7
#: Where the split line is searched, as fractions of the width.
SEARCH_WINDOW = (0.65, 0.75)
#: A clipped box with less of its area visible becomes ``iscrowd=1``.
MIN_VISIBLE = 0.5
#: Clipped boxes narrower or lower than this (pixels) are dropped.
MIN_SIDE = 2

Box = Tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)


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
