"""CI guard: fail when GHM-C or GHM-R becomes much slower than its plain baseline.

Measures, in one process and interleaved, forward + backward of
``GHMCLoss`` against ``F.binary_cross_entropy_with_logits`` (float one-hot
target built before timing) on one 512x768 image's RetinaNet anchors
(5.9 M elements, the loss called per level), and ``GHMRLoss`` against
``L1Loss`` on the box deltas of two 800x1344 images (1.6 M elements). Prints
the ratios and exits 1 if one exceeds its limit.

Timing is one thread's CPU time (``--threads 1 --clock thread``), and the
ratio compares the fastest of the interleaved rounds: both keep other jobs on
a shared machine from moving the ratio much. The limits (``LIMITS``) lie
between the ratios measured repeatedly on this project's 2-core CPU machine
and those measured with every kernel run twice (``--calibrate``; the runs
are in ``docs/results/benchmarks/guard/calibration.json``). The kernels are
compiled by the first call (the inductor cache of a preceding test run makes
that quick).

Example::

    python tools/analysis_tools/check_loss_speed.py
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import statistics
import sys
import time

import torch

from mmdet_ghm.analysis import loss_benchmark as lb

#: Largest ratio of the fastest rounds that passes, per loss: between the
#: ratios measured with the kernels as they are and with every kernel run
#: twice (``--calibrate``, runs kept in :data:`CALIBRATION`).
LIMITS = {'GHMCLoss / BCE': 1.75, 'GHMRLoss / L1Loss': 2.0}
#: The calibration runs, relative to the repository.
CALIBRATION = 'docs/results/benchmarks/guard/calibration.json'
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def measure(rounds: int, device: torch.device, clock) -> dict:
    """Ratio of medians (and of minima) of each GHM loss to its baseline."""
    from mmdet.models.losses import L1Loss

    from mmdet_ghm.losses import GHMCLoss, GHMRLoss
    generator = torch.Generator().manual_seed(0)
    cls_levels = lb.classification_inputs(lb.level_sizes(512, 768, 1), 80, device, generator)
    reg_levels = lb.regression_inputs(lb.level_sizes(800, 1344, 2), device, generator)
    pairs = {
        'GHMCLoss / BCE': (cls_levels, lb.PlainBCE(cls_levels), GHMCLoss(bins=30, momentum=0.75)),
        'GHMRLoss / L1Loss': (reg_levels, L1Loss(), GHMRLoss(mu=0.02, bins=10, momentum=0.7)),
    }
    results = {}
    for name, (levels, baseline, loss) in pairs.items():
        times, _ = lb.time_variants({'baseline': baseline.to(device), 'ghm': loss.to(device)},
                                    levels, rounds, device, clock)
        results[name] = dict(
            ratio=statistics.median(times['ghm']) / statistics.median(times['baseline']),
            ratio_of_minima=min(times['ghm']) / min(times['baseline']),
            ghm_min_ms=min(times['ghm']) * 1e3, baseline_min_ms=min(times['baseline']) * 1e3)
    return results


def verdict(results: dict, limits: dict) -> list:
    """Names of the ratios above their limit."""
    return [name for name, result in results.items() if result['ratio_of_minima'] > limits[name]]


def calibrate(runs: int, rounds: int, previous: dict) -> dict:
    """``runs`` guard measurements in fresh processes with the kernels as they
    are, and as many with every compiled kernel run twice (a 2x slower kernel).

    Each entry keeps the machine's load average when it started; the entries
    of ``previous`` (an earlier calibration) are kept before the new ones.
    """
    from mmdet_ghm.analysis.loss_benchmark import environment
    measured = {key: list(previous.get(key, [])) for key in ('normal', 'kernels_twice_as_slow')}
    for key, repeat in (('normal', '1'), ('kernels_twice_as_slow', '2')):
        for _ in range(runs):
            load = round(os.getloadavg()[0], 2)
            env = dict(os.environ, MMDET_GHM_KERNEL_REPEAT=repeat)
            out = subprocess.run([sys.executable, __file__, '--json', '--rounds', str(rounds)],
                                 env=env, capture_output=True, text=True, check=True).stdout
            results = json.loads(out.strip().splitlines()[-1])
            entry = {k: round(v['ratio_of_minima'], 3) for k, v in results.items()}
            entry['load'] = load
            measured[key].append(entry)
            print(f'[calibrate] {key}: {entry}', flush=True)
    record = environment(torch.device('cpu'))
    record.update(measured, rounds=rounds)
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rounds', type=int, default=15, help='interleaved timed rounds')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--clock', choices=['thread', 'wall'], default='thread')
    parser.add_argument('--json', action='store_true', help='print the results as JSON only')
    parser.add_argument('--calibrate', type=int, metavar='N',
                        help=f'N more runs with normal and with 2x slower kernels, added to {CALIBRATION}')
    args = parser.parse_args()
    if args.calibrate:
        path = osp.join(REPO, CALIBRATION)
        previous = {}
        if osp.exists(path):
            with open(path) as f:
                previous = json.load(f)
        record = calibrate(args.calibrate, args.rounds, previous)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(record, f, indent=1)
        print(f'[calibrate] written to {CALIBRATION}')
        return
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.clock == 'thread' else time.perf_counter
    if args.rounds < 3:
        parser.error(f'--rounds must be >= 3, got {args.rounds}')
    results = measure(args.rounds, torch.device(args.device), clock)
    if args.json:
        print(json.dumps(results))
        return
    for name, result in results.items():
        print(f"[loss speed] {name}: {result['ratio_of_minima']:.2f} (limit {LIMITS[name]}; "
              f"fastest of {args.rounds}: {result['ghm_min_ms']:.1f} ms vs "
              f"{result['baseline_min_ms']:.1f} ms; ratio of medians {result['ratio']:.2f})")
    failed = verdict(results, LIMITS)
    if failed:
        print(f'[loss speed] FAILED: {", ".join(failed)} above the limit: a kernel got slower '
              '(see docs/benchmark.md)', file=sys.stderr)
        sys.exit(1)
    print('[loss speed] ok')


if __name__ == '__main__':
    main()
