#!/usr/bin/env python3
"""Main job: train and evaluate CE, Focal Loss and GHM RetinaNets on CPU, and compare them.

The main job is ``tools/compare_losses.py`` on the synthetic shapes config
(``configs/synthetic/retinanet_tiny-r18_fpn_fl_synthetic-shapes.py``): one
tiny RetinaNet per loss (and per seed) on the synthetic shapes set
(generated on first use under ``data/synthetic_shapes/``, or
``<data-dir>/synthetic_shapes/``), each in its own process, by default all
at once with one CPU thread each, the same gradient clipping (norm 35) for
every loss. Prints a table (mean ± std over seeds with ``--seeds N``, N >= 2)
and writes into a new directory ``<work-dir>/<YYYYmmdd_HHMMSS>/``:

* ``report.md``    - the comparison's report: table, verdict, GHM signature;
* ``results.json`` - the summary behind it;
* ``curves.png``   - val mAP over epochs, mean ± std band per loss;
* ``records/``     - one record per run; ``runs/<loss>/seed<k>/`` - MMEngine work dirs.

Usage::

    python3 tools/main_job.py                 # full run: CE, FL, GHM, seed 0
    python3 tools/main_job.py --seeds 3       # each loss with seeds 0, 1, 2
    python3 tools/main_job.py --quick         # smoke run (tiny data, 1 epoch)
    python3 tools/main_job.py --losses fl ghm --work-dir work_dirs/mine
"""
import argparse
import datetime
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.join(REPO, 'tools'))

LOSSES = ('ce', 'fl', 'ghm', 'alpha-ce', 'cfl', 'ohem')
CONFIG = 'configs/synthetic/retinanet_tiny-r18_fpn_fl_synthetic-shapes.py'
DEFAULT_LOSSES = ['ce', 'fl', 'ghm']
DEFAULT_WORK_DIR = 'work_dirs/main_job'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train and compare CE, FL and GHM RetinaNets on the synthetic shapes set '
        '(CPU).')
    parser.add_argument(
        '--losses', nargs='+', default=DEFAULT_LOSSES,
        help=f'which models to train, any of: {" ".join(LOSSES)}, or "all" '
        f'(default: {" ".join(DEFAULT_LOSSES)}: the paper\'s comparison)')
    parser.add_argument('--seeds', type=int, default=1,
                        help='train each loss with seeds 0 .. N-1 and report mean ± std '
                        '(default: 1)')
    parser.add_argument('--work-dir', default=DEFAULT_WORK_DIR,
                        help='parent directory; each invocation writes into a new '
                        'timestamped sub-directory (default: work_dirs/main_job)')
    parser.add_argument('--data-dir', default=None,
                        help='directory of the data sets: the shapes set is '
                        '<data-dir>/synthetic_shapes/ (synthetic_shapes_quick/ with --quick), '
                        'generated if missing (default: the repository\'s data/)')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: tiny data set, 1 epoch, small batches')
    parser.add_argument('--epochs', type=int, default=None,
                        help='override the number of training epochs')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads per training process (default: 1)')
    parser.add_argument('--jobs', type=int, default=3,
                        help='how many models train at the same time (default: 3)')
    parser.add_argument('--stall-timeout', type=float, default=900,
                        help='kill a training process that shows no progress for this many '
                        'seconds (default: 900)')
    args = parser.parse_args(argv)
    if args.losses == ['all']:
        args.losses = list(LOSSES)
    bad = [x for x in args.losses if x not in LOSSES]
    if bad:
        parser.error(f'unknown loss(es) {bad}; choose from {" ".join(LOSSES)}')
    if len(set(args.losses)) != len(args.losses):
        parser.error(f'--losses has duplicates: {args.losses}')
    for name in ('seeds', 'jobs', 'threads'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be >= 1, got {getattr(args, name)}')
    if args.epochs is not None and args.epochs < 1:
        parser.error(f'--epochs must be >= 1, got {args.epochs}')
    return args


def new_run_dir(parent: str) -> str:
    """Create and return a fresh ``<parent>/<timestamp>[_n]`` directory."""
    from mmdet_ghm.study.runner import new_attempt_dir
    return new_attempt_dir(parent)


def main(argv=None) -> int:
    args = parse_args(argv)
    from compare_losses import print_summary, write_report

    from mmdet_ghm.comparison.engine import CompareError, CompareOptions, prepare, run
    from mmdet_ghm.study.data_sets import data_settings, run_overrides
    from mmdet_ghm.study.variants import VARIANTS

    # the user's paths are relative to where they run the command; the
    # defaults are relative to the repository
    work_dir = (osp.join(REPO, DEFAULT_WORK_DIR) if args.work_dir == DEFAULT_WORK_DIR
                else osp.abspath(args.work_dir))
    data_dir = osp.abspath(args.data_dir) if args.data_dir else osp.join(REPO, 'data')
    os.chdir(REPO)
    run_dir = new_run_dir(work_dir)
    seeds = list(range(args.seeds))
    # the synthetic set (quick: its tiny version, 1 epoch, batch 4) as config overrides
    _, root, params = data_settings(VARIANTS['fl'], args.quick, data_dir)
    options = CompareOptions(
        config=CONFIG, losses=args.losses, seeds=seeds, work_dir=run_dir,
        cfg_options=run_overrides('shapes', root, params, args.quick), epochs=args.epochs,
        jobs=args.jobs, threads=args.threads, stall_timeout=args.stall_timeout)
    print(f'main job: {" ".join(args.losses)} x seeds {seeds}; results in {run_dir}')
    start = time.perf_counter()
    try:
        comparison = prepare(options, cwd=REPO)
        failed = run(comparison)
    except CompareError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    facts = dict(run_dir=run_dir, quick=args.quick, seeds=seeds,
                 total_wall_s=time.perf_counter() - start,
                 date=datetime.datetime.now().isoformat(timespec='seconds'),
                 failed=[r.tag for r in failed])
    summary = write_report(comparison, extra=facts)
    print(f'\nResults on the clean synthetic val split (COCO bbox metrics after the last '
          f'epoch; mean ± sample std over {len(seeds)} seed(s); s/iter with '
          f'{min(args.jobs, len(args.losses) * len(seeds))} run(s) training at once):')
    print_summary(summary)
    print(f'\ntotal wall time {facts["total_wall_s"] / 60:.1f} min; wrote {run_dir}/report.md, '
          'results.json and curves.png')
    if failed:
        print(f'FAILED: {", ".join(r.tag for r in failed)}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
