#!/usr/bin/env python3
"""Build the DeepForest tree-crown set in COCO format (see ``mmdet_ghm.datasets.tree_crowns``).

Downloads the ``deepforest`` 2.1.0 wheel once into the cache (never installs
it), checks its sha256, cuts the two NEON images into train tiles and val
regions with no crown in both splits, and prints the statistics.

Usage::

    python3 tools/dataset_converters/tree_crowns.py --out data/tree_crowns/ \\
        [--tile-size 256] [--tile-stride 192] [--cache-dir data/cache] \\
        [--wheel PATH]

An existing set with the same parameters is reused as it is; one with other
parameters is an error (it is never overwritten).
"""
import argparse
import os.path as osp
import sys
import time

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:  # run from a clone without installing
    sys.path.insert(0, _ROOT)

from mmdet_ghm.datasets.tree_crowns import ensure_tree_crowns  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Build the DeepForest tree-crown detection set (NEON RGB '
        'images) in COCO format.')
    parser.add_argument('--out', required=True,
                        help='data root to build into, e.g. data/tree_crowns/')
    parser.add_argument('--tile-size', type=int, default=256,
                        help='side of the train tiles in pixels (default: 256)')
    parser.add_argument('--tile-stride', type=int, default=192,
                        help='step between train tiles (default: 192)')
    parser.add_argument('--cache-dir', default=None,
                        help='where the wheel is downloaded once (default: '
                        '"cache" beside --out, e.g. data/cache)')
    parser.add_argument('--wheel', default=None,
                        help='a local copy of deepforest-2.1.0-py3-none-any.whl '
                        'to use instead of downloading (its sha256 is checked)')
    return parser.parse_args(argv)


def format_stats(meta):
    """The meta dict's statistics as printable lines."""
    p = meta['params']
    lines = [f'tree crowns: tile {p["tile_size"]} px, stride {p["tile_stride"]} px, '
             f'from {meta["source"]["wheel"]} (sha256 {meta["source"]["sha256"]})']
    for stem, info in meta['images'].items():
        lines.append(
            f'  {stem}: {info["width"]} x {info["height"]} px, {info["crowns"]} crowns; '
            f's={info["s"]} t={info["t"]} v={info["v"]}; {info["train_tiles"]} train tiles, '
            f'val image {info["val_size"][0]} x {info["val_size"][1]} px')
    for split, st in meta['stats'].items():
        lines.append(
            f'  {split}: {st["images"]} images ({st["images_without_boxes"]} without boxes), '
            f'{st["annotations"]} annotations ({st["crowd"]} crowd), '
            f'{st["crowns"]} crowns with pixels in the split, {st["dropped"]} slivers dropped')
    return lines


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    meta = ensure_tree_crowns(args.out, tile_size=args.tile_size,
                              tile_stride=args.tile_stride, cache_dir=args.cache_dir,
                              wheel=args.wheel)
    for line in format_stats(meta):
        print(line)
    print(f'  data root: {args.out} ({time.perf_counter() - start:.1f} s)')
    return meta


if __name__ == '__main__':
    main()
