"""Benchmark the losses at RetinaNet-R50 scale and write a record.

Three groups, each against a plain PyTorch baseline (its first variant):
sigmoid classification (``F.binary_cross_entropy_with_logits`` on a float
one-hot target built before timing), softmax classification
(``F.cross_entropy``) and box regression (``L1Loss``). This package's losses
run twice, with compiled and with eager kernels (``MMDET_GHM_COMPILE=0``),
interleaved in one process; the first call of each variant (compilation
included, with an empty inductor cache unless ``--warm-cache``) is reported
apart. See :mod:`mmdet_ghm.analysis.loss_benchmark` for the inputs.

The record (``--out``, default ``docs/results/benchmarks/<device>-<date>.json``)
holds the figures, the setting, the commit, versions, machine and threads;
``--update-docs`` regenerates the tables of ``docs/benchmark.md`` from the
committed records.

Example::

    python tools/analysis_tools/benchmark_losses.py --rounds 5 --note "after the fix"
"""
import argparse
import os
import sys
import tempfile

if __name__ == '__main__' and 'MALLOC_MMAP_THRESHOLD_' not in os.environ:
    # Make every large tensor an mmap that is returned on free, so resident
    # memory follows live tensors; and compile into an empty inductor cache,
    # so the first call shows the real compile time. Re-exec before torch
    # allocates anything.
    os.environ['MALLOC_MMAP_THRESHOLD_'] = str(1 << 16)
    if '--warm-cache' not in sys.argv and 'TORCHINDUCTOR_CACHE_DIR' not in os.environ:
        os.environ['TORCHINDUCTOR_CACHE_DIR'] = tempfile.mkdtemp(prefix='mmdet_ghm_bench_')
    os.execv(sys.executable, [sys.executable] + sys.argv)

import os.path as osp  # noqa: E402

import torch  # noqa: E402

from mmdet_ghm.analysis import loss_benchmark as lb  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def build_groups(args, device, generator):
    """``{key: (title, variants, levels)}``, built one group at a time (memory)."""
    from mmdet.models.losses import (GHMC, GHMR, CrossEntropyLoss, FocalLoss, L1Loss,
                                     SmoothL1Loss)

    from mmdet_ghm.losses import GHMCLoss, GHMRLoss

    sizes = lb.level_sizes(args.size[0], args.size[1], args.images)
    if 'sigmoid' in args.groups:
        levels = lb.classification_inputs(sizes, args.num_classes, device, generator)
        variants = {
            'BCE (F.binary_cross_entropy_with_logits)': lb.PlainBCE(levels),
            'CrossEntropyLoss (MMDetection, one-hot in the call)':
                CrossEntropyLoss(use_sigmoid=True),
            'FocalLoss (MMDetection)': FocalLoss(use_sigmoid=True),
            '**GHMCLoss**': GHMCLoss(bins=30, momentum=0.75),
            'GHMCLoss, eager kernels': lb.EagerKernels(GHMCLoss(bins=30, momentum=0.75)),
        }
        if not args.skip_reference:
            variants['GHMC (MMDetection)'] = GHMC(bins=30, momentum=0.75)
        elements = sum(level[0].numel() for level in levels)
        yield 'sigmoid', f'sigmoid classification, {elements / 1e6:.1f} M elements', \
            variants, levels
        del levels, variants
    if 'softmax' in args.groups:
        levels = lb.softmax_inputs(sizes, args.num_classes, device, generator)
        variants = {
            'CE (F.cross_entropy)': lb.PlainCE(),
            '**GHMCLoss(use_sigmoid=False)**': GHMCLoss(bins=30, momentum=0.75,
                                                        use_sigmoid=False),
            'GHMCLoss(use_sigmoid=False), eager kernels':
                lb.EagerKernels(GHMCLoss(bins=30, momentum=0.75, use_sigmoid=False)),
        }
        rows, classes = levels[0][0].shape
        yield 'softmax', f'softmax classification, {rows} × {classes} logits, one call', \
            variants, levels
        del levels, variants
    if 'regression' in args.groups:
        levels = lb.regression_inputs(sizes, device, generator)
        variants = {
            'L1Loss (MMDetection)': L1Loss(),
            'SmoothL1Loss (MMDetection, beta=0.11)': SmoothL1Loss(beta=0.11),
            '**GHMRLoss**': GHMRLoss(mu=0.02, bins=10, momentum=0.7),
            'GHMRLoss, eager kernels': lb.EagerKernels(GHMRLoss(mu=0.02, bins=10, momentum=0.7)),
        }
        if not args.skip_reference:
            variants['GHMR (MMDetection)'] = GHMR(mu=0.02, bins=10, momentum=0.7)
        elements = sum(level[0].numel() for level in levels)
        yield 'regression', f'box regression, {elements / 1e6:.1f} M elements', variants, levels


def print_group(title, rows):
    print(f'\n{title}')
    print('| loss | fwd+bwd ms (median) | × first | first call s | peak extra MiB | B / element |')
    print('| --- | ---: | ---: | ---: | ---: | ---: |')
    for row in rows:
        print(f"| {row['name']} | {row['median_ms']:.0f} | {row['ratio']:.2f} | "
              f"{row['first_call_s']:.1f} | {row.get('peak_extra_mib', 0):.0f} | "
              f"{row.get('bytes_per_element', 0):.1f} |", flush=True)


#: The page whose ``<!-- benchmark:... -->`` blocks are generated from the records.
PAGE = 'docs/benchmark.md'


def update_docs():
    path = osp.join(REPO, PAGE)
    with open(path) as f:
        text = f.read()
    new = lb.update_benchmark_blocks(text, osp.join(REPO, lb.RECORDS_DIR))
    with open(path, 'w') as f:
        f.write(new)
    print(f'{PAGE} {"updated" if new != text else "unchanged"}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rounds', type=int, default=5, help='timed rounds (median)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--images', type=int, default=2)
    parser.add_argument('--size', type=int, nargs=2, default=(800, 1344), metavar=('H', 'W'))
    parser.add_argument('--num-classes', type=int, default=80)
    parser.add_argument('--groups', nargs='+', default=['sigmoid', 'softmax', 'regression'],
                        choices=['sigmoid', 'softmax', 'regression'])
    parser.add_argument('--skip-reference', action='store_true',
                        help="leave out MMDetection's GHMC/GHMR (slow)")
    parser.add_argument('--warm-cache', action='store_true',
                        help="keep inductor's cache (the first call then shows no compile)")
    parser.add_argument('--out', help='record path (default: docs/results/benchmarks/'
                        '<device>-<date>.json); never overwritten')
    parser.add_argument('--no-record', action='store_true', help='print only')
    parser.add_argument('--note', default='', help='what this run is, stored in the record')
    parser.add_argument('--update-docs', action='store_true',
                        help=f'only regenerate the tables of {PAGE} from the committed records')
    args = parser.parse_args()
    if args.update_docs:
        update_docs()
        return
    if args.rounds < 1:
        parser.error(f'--rounds must be >= 1, got {args.rounds}')
    if args.images < 1 or min(args.size) < 128:
        parser.error(f'--images must be >= 1 and --size at least 128 x 128, got '
                     f'{args.images} images of {args.size[0]} x {args.size[1]}')

    device = torch.device(args.device)
    out = args.out or osp.join(REPO, lb.RECORDS_DIR, lb.default_record_name(device) + '.json')
    if not args.no_record and osp.exists(out):
        parser.error(f'record {out} exists; choose another --out')
    generator = torch.Generator().manual_seed(0)
    sizes = lb.level_sizes(args.size[0], args.size[1], args.images)
    print(f'device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, '
          f'{os.cpu_count()} CPUs; anchors per level: {sizes}, classes: {args.num_classes}, '
          f'rounds: {args.rounds}', flush=True)
    groups = {}
    for key, title, variants, levels in build_groups(args, device, generator):
        variants = {name: loss.to(device) for name, loss in variants.items()}
        rows = lb.benchmark_group(variants, levels, args.rounds, device)
        print_group(title, rows)
        groups[key] = dict(title=title, variants=rows)
    if args.no_record:
        return
    setting = dict(images=args.images, height=args.size[0], width=args.size[1],
                   num_classes=args.num_classes, rounds=args.rounds,
                   anchors_per_level=sizes, warm_cache=args.warm_cache)
    lb.write_record(out, lb.make_record(groups, setting, device, args.note))
    print(f'\nrecord: {osp.relpath(out, REPO)}')


if __name__ == '__main__':
    main()
