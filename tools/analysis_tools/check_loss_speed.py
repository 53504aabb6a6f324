"""CI guard: fail when GHM-C or GHM-R becomes much slower than its plain baseline.

Measures, in one process and interleaved, forward + backward of
``GHMCLoss`` against ``F.binary_cross_entropy_with_logits`` (float one-hot
target built before timing) on one 512x768 image's RetinaNet anchors
(5.9 M elements, the loss called per level), and ``GHMRLoss`` against
``L1Loss`` on the box deltas of two 800x1344 images (1.6 M elements). Prints
the ratios and exits 1 if one exceeds its limit.

The statistic is the median, over the interleaved rounds, of each round's
ratio (GHM loss time / baseline time, measured back to back on the same
inputs, which of the two runs first alternating between rounds), timed as
one thread's CPU time (``--threads 1 --clock thread``). A round's two calls
share the machine's state of that moment, so a busy or lucky moment moves
both; the median ignores the rounds where it did not. (The
guard used to compare the fastest call of each, which one lucky baseline
call moved by 20 %.)

The ratios depend on the CPU: GHM-R's compiled kernels against ATen's
``L1Loss`` measure about 1.45 on the Intel Xeon machines and about 2.0 on the
AMD EPYC ones, where a 2x slower kernel on the Intel ones measures 2.4. So
the limits are per CPU model (``CALIBRATED_CPUS``): each lies halfway
between the ratios measured on that CPU with the kernels as they are (quiet
machine and beside a training run) and with every kernel run twice
(``--calibrate``; the runs are in the CPU's calibration file). On a CPU
with no calibration the guard uses the loosest limits of all and says so.
The kernels are compiled by the first call (the inductor cache of a
preceding test run makes that quick).

Example::

    python tools/analysis_tools/check_loss_speed.py
"""
import argparse
import json
import os
import os.path as osp
import re
import signal
import statistics
import subprocess
import sys
import time
from typing import Optional

import torch

from mmdet_ghm.analysis import loss_benchmark as lb
from mmdet_ghm.utils.doc_blocks import block_pattern, regenerate_blocks

#: Per CPU model (as ``/proc/cpuinfo`` names it): the calibration runs,
#: relative to the repository, and the largest median per-round ratio that
#: passes per loss, halfway between the ratios measured there with the
#: kernels as they are (quiet and loaded machine) and with every kernel run
#: twice.
CALIBRATED_CPUS = {
    'Intel(R) Xeon(R) Processor': dict(
        calibration='docs/results/benchmarks/guard/calibration.json',
        limits={'GHMCLoss / BCE': 1.46, 'GHMRLoss / L1Loss': 1.95}),
    'AMD EPYC': dict(
        calibration='docs/results/benchmarks/guard/calibration-amd-epyc.json',
        limits={'GHMCLoss / BCE': 1.64, 'GHMRLoss / L1Loss': 2.84}),
}
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def round_ratios(ghm_times, baseline_times) -> list:
    """Each interleaved round's GHM time over its baseline time."""
    return [ghm / base for ghm, base in zip(ghm_times, baseline_times)]


def measure(rounds: int, device: torch.device, clock) -> dict:
    """Median per-round ratio of each GHM loss to its baseline (and older statistics).

    Returns:
        dict: per pair, ``ratio`` (median of the per-round ratios, the
        guard's statistic), ``ratio_iqr`` (their interquartile range),
        ``ratio_of_medians``, ``ratio_of_minima`` and the fastest calls in ms.
    """
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
                                    levels, rounds, device, clock, alternate=True)
        ratios = round_ratios(times['ghm'], times['baseline'])
        quartiles = statistics.quantiles(ratios, n=4)
        results[name] = dict(
            ratio=statistics.median(ratios), ratio_iqr=quartiles[2] - quartiles[0],
            ratio_of_medians=statistics.median(times['ghm']) / statistics.median(times['baseline']),
            ratio_of_minima=min(times['ghm']) / min(times['baseline']),
            ghm_min_ms=min(times['ghm']) * 1e3, baseline_min_ms=min(times['baseline']) * 1e3)
    return results


def this_cpu() -> str:
    """The CPU model this process runs on, as the records name it."""
    return lb.environment(torch.device('cpu'))['env']['machine']['cpu']


def limits_for(cpu: str) -> dict:
    """The limits calibrated on ``cpu``; for an uncalibrated one, the loosest of all."""
    if cpu in CALIBRATED_CPUS:
        return CALIBRATED_CPUS[cpu]['limits']
    names = CALIBRATED_CPUS[next(iter(CALIBRATED_CPUS))]['limits']
    return {name: max(entry['limits'][name] for entry in CALIBRATED_CPUS.values())
            for name in names}


def calibration_path(cpu: str) -> str:
    """Where the calibration runs of ``cpu`` are kept (a new file for a new CPU)."""
    if cpu in CALIBRATED_CPUS:
        return CALIBRATED_CPUS[cpu]['calibration']
    slug = re.sub(r'[^a-z0-9]+', '-', cpu.lower()).strip('-') or 'unknown'
    return f'docs/results/benchmarks/guard/calibration-{slug}.json'


def verdict(results: dict, limits: dict) -> list:
    """Names of the ratios above their limit."""
    return [name for name, result in results.items() if result['ratio'] > limits[name]]


#: Calibration conditions: the kernels as they are on a quiet machine, the
#: same beside a running job (``--beside``), every compiled kernel run twice.
CONDITIONS = {'quiet': '1', 'loaded': '1', 'kernels_twice_as_slow': '2'}


def calibrate(runs: int, rounds: int, condition: str, beside: Optional[str],
              previous: dict) -> dict:
    """``runs`` guard measurements in fresh processes under ``condition``.

    ``beside`` is a shell command started (in its own process group) before
    the measurements and ended after them, e.g. a training run for the
    ``loaded`` condition. Each entry keeps the guard's statistic, its spread,
    the older ratio of minima and the machine's load average when it
    started; the entries of ``previous`` (the calibration file) are kept.
    """
    from mmdet_ghm.analysis.loss_benchmark import environment
    record = dict(previous)
    measured = list(previous.get(condition, []))
    job = subprocess.Popen(beside, shell=True, start_new_session=True) if beside else None
    try:
        if job is not None:
            time.sleep(20)  # past the job's start-up, into its steady state
        for _ in range(runs):
            if job is not None and job.poll() is not None:
                raise RuntimeError(f'the --beside command ended (exit code {job.returncode}) '
                                   'before the measurements did; give it a longer job')
            load = round(os.getloadavg()[0], 2)
            env = dict(os.environ, MMDET_GHM_KERNEL_REPEAT=CONDITIONS[condition])
            out = subprocess.run([sys.executable, __file__, '--json', '--rounds', str(rounds)],
                                 env=env, capture_output=True, text=True, check=True).stdout
            results = json.loads(out.strip().splitlines()[-1])
            entry = {name: {key: round(value[key], 3)
                            for key in ('ratio', 'ratio_iqr', 'ratio_of_minima')}
                     for name, value in results.items()}
            entry['load'] = load
            measured.append(entry)
            print(f'[calibrate] {condition}: {entry}', flush=True)
    finally:
        if job is not None and job.poll() is None:
            os.killpg(job.pid, signal.SIGTERM)
            job.wait()
    record[condition] = measured
    record.setdefault('beside', {})[condition] = beside
    record.update(environment(torch.device('cpu')), rounds=rounds)
    return record


#: The block of ``docs/benchmark.md`` that :func:`render_calibration` fills.
CALIBRATION_BLOCK = block_pattern('guard', 'calibration')
DOCS_PAGE = 'docs/benchmark.md'


def render_calibration(records: dict) -> str:
    """The calibration runs of every CPU (``{cpu: record}``) as one Markdown table.

    One row per CPU and condition: per loss, the statistic's range and its
    limit on that CPU, and the older fastest-call ratio.
    """
    names = list(CALIBRATED_CPUS[next(iter(CALIBRATED_CPUS))]['limits'])
    lines = ['| CPU | condition | runs | load average | ' + ' | '.join(
        f'{name}: median round ratio | limit | fastest-call ratio (the old statistic)'
        for name in names) + ' |',
             '| --- | --- | --- | --- | ' + ' | '.join('--- | --- | ---' for _ in names) + ' |']
    for cpu, record in records.items():
        limits = limits_for(cpu)
        for condition in CONDITIONS:
            runs = record.get(condition, [])
            if not runs:
                continue
            loads = [run['load'] for run in runs]
            cells = []
            for name in names:
                ratios = [run[name]['ratio'] for run in runs]
                minima = [run[name]['ratio_of_minima'] for run in runs]
                cells.append(f'{min(ratios):.2f}–{max(ratios):.2f} '
                             f'(median {statistics.median(ratios):.2f})')
                cells.append(f'{limits[name]}')
                cells.append(f'{min(minima):.2f}–{max(minima):.2f}')
            label = condition.replace('_', ' ')
            if condition == 'loaded':
                label += f" (beside `{record['beside'][condition]}`)"
            lines.append(f'| {cpu} | {label} | {len(runs)} | {min(loads):.1f}–{max(loads):.1f} | '
                         + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def load_calibrations() -> dict:
    """``{cpu: record}`` of every calibrated CPU, from its calibration file."""
    records = {}
    for cpu, entry in CALIBRATED_CPUS.items():
        with open(osp.join(REPO, entry['calibration'])) as f:
            records[cpu] = json.load(f)
    return records


def update_calibration_block(text: str, records: dict) -> str:
    """``text`` with its ``guard:calibration`` block regenerated from ``records``."""
    text, blocks = regenerate_blocks(text, CALIBRATION_BLOCK,
                                     lambda name: render_calibration(records))
    if not blocks:
        raise ValueError('no <!-- guard:calibration:begin/end --> block in the page')
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rounds', type=int, default=21, help='interleaved timed rounds')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--clock', choices=['thread', 'wall'], default='thread')
    parser.add_argument('--json', action='store_true', help='print the results as JSON only')
    parser.add_argument('--calibrate', type=int, metavar='N',
                        help='N more runs under --condition, added to the calibration file of '
                        'this CPU (see CALIBRATED_CPUS)')
    parser.add_argument('--condition', choices=sorted(CONDITIONS), default='quiet',
                        help='what the --calibrate runs measure (kernels_twice_as_slow sets '
                        'MMDET_GHM_KERNEL_REPEAT=2)')
    parser.add_argument('--beside', metavar='COMMAND',
                        help='a shell command run during the --calibrate runs (the loaded '
                        'condition: e.g. a training run)')
    parser.add_argument('--update-docs', action='store_true',
                        help=f'regenerate the calibration table of {DOCS_PAGE} and exit')
    args = parser.parse_args()
    if args.update_docs:
        page = osp.join(REPO, DOCS_PAGE)
        with open(page) as f:
            text = update_calibration_block(f.read(), load_calibrations())
        with open(page, 'w') as f:
            f.write(text)
        print(f'[loss speed] calibration table of {DOCS_PAGE} regenerated')
        return
    if args.rounds < 3:
        parser.error(f'--rounds must be >= 3, got {args.rounds}')
    if args.condition == 'loaded' and not args.beside:
        parser.error('--condition loaded needs --beside COMMAND (the job to measure beside)')
    if args.calibrate:
        relative = calibration_path(this_cpu())
        path = osp.join(REPO, relative)
        previous = {}
        if osp.exists(path):
            with open(path) as f:
                previous = json.load(f)
        record = calibrate(args.calibrate, args.rounds, args.condition, args.beside, previous)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(record, f, indent=1)
        print(f'[calibrate] written to {relative}')
        return
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.clock == 'thread' else time.perf_counter
    results = measure(args.rounds, torch.device(args.device), clock)
    cpu = this_cpu()
    limits = limits_for(cpu)
    if args.json:
        print(json.dumps(results))
        return
    if cpu in CALIBRATED_CPUS:
        print(f'[loss speed] CPU {cpu!r}: limits calibrated on it')
    else:
        print(f'[loss speed] CPU {cpu!r} has no calibration: using the loosest limits of '
              f'{", ".join(CALIBRATED_CPUS)} (calibrate it with --calibrate, see docs/benchmark.md)')
    for name, result in results.items():
        print(f"[loss speed] {name}: {result['ratio']:.2f} (limit {limits[name]}; median of "
              f"{args.rounds} per-round ratios, interquartile range {result['ratio_iqr']:.2f}; "
              f"fastest calls {result['ghm_min_ms']:.1f} ms vs {result['baseline_min_ms']:.1f} ms)")
    failed = verdict(results, limits)
    if failed:
        print(f'[loss speed] FAILED: {", ".join(failed)} above the limit: a kernel got slower '
              '(see docs/benchmark.md)', file=sys.stderr)
        sys.exit(1)
    print('[loss speed] ok')


if __name__ == '__main__':
    main()
