"""Benchmark the classification and regression losses at RetinaNet-R50 scale.

Inputs are what RetinaNet's head passes for 2 images of 800x1333 (padded to
800x1344): 9 anchors per location on the five FPN levels (strides 8-128),
80 classes, integer labels (80 = background), the loss called once per level.
Every variant runs forward + backward on the same tensors; variants are
interleaved inside each round, and the table gives medians over the rounds,
the ratio to the first variant of the group, and the peak memory the call
allocates beyond its inputs (also per element).

Peak memory on CPU is the process's peak resident set growth during one
call (``VmHWM`` reset through ``/proc/self/clear_refs``, with glibc's mmap
threshold fixed so that freed tensors leave the process); on CUDA it is
``torch.cuda.max_memory_allocated`` growth.

Example::

    python tools/analysis_tools/benchmark_losses.py --rounds 5
"""
import argparse
import os
import platform
import statistics
import sys
import time

if 'MALLOC_MMAP_THRESHOLD_' not in os.environ and __name__ == '__main__':
    # Make every large tensor an mmap that is returned on free, so resident
    # memory follows live tensors; re-exec before torch allocates anything.
    os.environ['MALLOC_MMAP_THRESHOLD_'] = str(1 << 16)
    os.execv(sys.executable, [sys.executable] + sys.argv)

import torch  # noqa: E402

STRIDES = (8, 16, 32, 64, 128)
ANCHORS_PER_LOCATION = 9


def level_sizes(height, width, images):
    """Anchors per FPN level for ``images`` images of ``height x width``."""
    sizes = []
    for stride in STRIDES:
        rows, cols = -(-height // stride), -(-width // stride)
        sizes.append(rows * cols * ANCHORS_PER_LOCATION * images)
    return sizes


def classification_inputs(sizes, num_classes, device, generator):
    """Per level: logits, labels (mostly background), label weights."""
    levels = []
    for n in sizes:
        logits = (torch.randn(n, num_classes, generator=generator) * 1.5 - 4.6).to(device)
        labels = torch.full((n,), num_classes, dtype=torch.long)
        positive = torch.rand(n, generator=generator) < 0.002
        labels[positive] = torch.randint(0, num_classes, (int(positive.sum()),),
                                         generator=generator)
        weights = (torch.rand(n, generator=generator) > 0.01).float()  # ~1% ignored
        levels.append((logits, labels.to(device), weights.to(device), max(int(positive.sum()), 1)))
    return levels


def regression_inputs(sizes, device, generator):
    """Per level: predicted and target deltas (N, 4), weights on positives only."""
    levels = []
    for n in sizes:
        pred = (torch.randn(n, 4, generator=generator) * 0.3).to(device)
        target = (torch.randn(n, 4, generator=generator) * 0.3).to(device)
        positive = (torch.rand(n, 1, generator=generator) < 0.002).float()
        levels.append((pred, target, positive.expand(n, 4).contiguous().to(device),
                       max(int(positive.sum()), 1)))
    return levels


def run_once(loss, levels):
    """Forward + backward of ``loss`` over all levels, as the head calls it."""
    total = 0
    for pred, target, weight, avg_factor in levels:
        pred = pred.detach().requires_grad_()
        total = total + loss(pred, target, weight, avg_factor=avg_factor)
    total.backward()
    return total


class PeakMemory:
    """Peak memory allocated during a block, beyond what was live before it."""

    def __init__(self, device):
        self.device = device
        self.peak = None

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')  # resets VmHWM to the current RSS
            self.start = self._status('VmRSS')
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.start
        else:
            self.peak = self._status('VmHWM') - self.start

    @staticmethod
    def _status(key):
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f'{key} not in /proc/self/status')


def timed(fn, device):
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start


def benchmark(variants, levels, rounds, device):
    """Median time and peak memory of each variant, interleaved over rounds."""
    for loss in variants.values():  # warm-up: compilation, allocator
        run_once(loss, levels)
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, loss in variants.items():
            times[name].append(timed(lambda: run_once(loss, levels), device))
    memory = {}
    for name, loss in variants.items():
        with PeakMemory(device) as peak:
            run_once(loss, levels)
        memory[name] = peak.peak
    return {name: (statistics.median(times[name]), memory[name]) for name in variants}


def print_table(title, results, elements):
    base_time, base_memory = next(iter(results.values()))
    print(f'\n{title}')
    print('| loss | fwd+bwd ms (median) | × first | peak extra MiB | bytes / element |')
    print('| --- | ---: | ---: | ---: | ---: |')
    for name, (seconds, memory) in results.items():
        print(f'| {name} | {seconds * 1e3:.0f} | {seconds / base_time:.2f} | '
              f'{memory / 2**20:.0f} | {memory / elements:.1f} |')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rounds', type=int, default=5, help='timed rounds (median)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--images', type=int, default=2)
    parser.add_argument('--size', type=int, nargs=2, default=(800, 1344), metavar=('H', 'W'))
    parser.add_argument('--num-classes', type=int, default=80)
    parser.add_argument('--skip-reference', action='store_true',
                        help="leave out MMDetection's GHMC/GHMR (slow)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f'--rounds must be >= 1, got {args.rounds}')

    from mmdet.models.losses import (GHMC, GHMR, CrossEntropyLoss, FocalLoss, L1Loss,
                                     SmoothL1Loss)

    from mmdet_ghm.losses import GHMCLoss, GHMRLoss

    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    sizes = level_sizes(*args.size, args.images)
    print(f'device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, '
          f'{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs')
    print(f'anchors per level: {sizes} ({sum(sizes)} in all), classes: {args.num_classes}, '
          f'rounds: {args.rounds}, MMDET_GHM_COMPILE={os.environ.get("MMDET_GHM_COMPILE", "1")}')

    cls_levels = classification_inputs(sizes, args.num_classes, device, generator)
    cls_variants = {
        'sigmoid BCE (CrossEntropyLoss, one-hot)': CrossEntropyLoss(use_sigmoid=True),
        'FocalLoss': FocalLoss(use_sigmoid=True),
        'GHMCLoss (this plugin)': GHMCLoss(bins=30, momentum=0.75),
    }
    if not args.skip_reference:
        cls_variants["GHMC (MMDetection)"] = GHMC(bins=30, momentum=0.75)
    cls_variants = {k: v.to(device) for k, v in cls_variants.items()}
    results = benchmark(cls_variants, cls_levels, args.rounds, device)
    print_table(f'Classification: {sum(sizes) * args.num_classes / 1e6:.1f} M elements',
                results, sum(sizes) * args.num_classes)
    del cls_levels

    reg_levels = regression_inputs(sizes, device, generator)
    reg_variants = {
        'L1Loss': L1Loss(),
        'SmoothL1Loss (beta=0.11)': SmoothL1Loss(beta=0.11),
        'GHMRLoss (this plugin)': GHMRLoss(mu=0.02, bins=10, momentum=0.7),
    }
    if not args.skip_reference:
        reg_variants['GHMR (MMDetection)'] = GHMR(mu=0.02, bins=10, momentum=0.7)
    reg_variants = {k: v.to(device) for k, v in reg_variants.items()}
    results = benchmark(reg_variants, reg_levels, args.rounds, device)
    print_table(f'Regression: {sum(sizes) * 4 / 1e6:.1f} M elements', results, sum(sizes) * 4)


if __name__ == '__main__':
    main()
