#!/usr/bin/env python3
"""Main job: train and evaluate CE, Focal Loss and GHM RetinaNets on CPU.

Trains one tiny RetinaNet per classification loss on the synthetic shapes set
(generated on first use under ``data/synthetic_shapes/``), each in its own
subprocess through MMEngine's ``Runner`` (so peak-memory figures are not
mixed; by default all three at once, one CPU thread each), then prints a comparison table and writes into a new timestamped
directory ``<work-dir>/<YYYYmmdd_HHMMSS>/``:

* ``results.json``  - final metrics, time per iteration, peak memory, curves;
* ``curves.png``    - training-loss and val-mAP curves of every model;
* ``<loss>/``       - each model's MMEngine work dir (logs, checkpoint).

Usage::

    python3 tools/main_job.py                 # full run (all 3 in parallel)
    python3 tools/main_job.py --quick         # smoke run (tiny data, 1 epoch)
    python3 tools/main_job.py --losses fl ghm --work-dir work_dirs/mine
"""
import argparse
import datetime
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'ce': 'configs/synthetic/retinanet_tiny-r18_fpn_ce_synthetic-shapes.py',
    'fl': 'configs/synthetic/retinanet_tiny-r18_fpn_fl_synthetic-shapes.py',
    'ghm': 'configs/synthetic/retinanet_tiny-r18_fpn_ghm_synthetic-shapes.py',
    'alpha-ce': 'configs/synthetic/retinanet_tiny-r18_fpn_alpha-ce_synthetic-shapes.py',
    'cfl': 'configs/synthetic/retinanet_tiny-r18_fpn_cfl_synthetic-shapes.py',
    'ohem': 'configs/synthetic/retinanet_tiny-r18_fpn_ohem_synthetic-shapes.py',
}
LABELS = {'ce': 'CE', 'fl': 'FL', 'ghm': 'GHM-C + GHM-R', 'alpha-ce': 'α-balanced CE',
          'cfl': 'continuous FL |y-p|^2·CE', 'ohem': 'OHEM (3:1)'}
DEFAULT_LOSSES = ['ce', 'fl', 'ghm']
DEFAULT_DATA_ROOT = 'data/synthetic_shapes/'
DEFAULT_WORK_DIR = 'work_dirs/main_job'
QUICK_DATA_ROOT = 'data/synthetic_shapes_quick/'
# --quick: a tiny set of its own (so it never clashes with the full one)
QUICK_GENERATOR = dict(seed=0, num_train=24, num_val=8)
METRICS = (('bbox_mAP', 'coco/bbox_mAP'), ('AP50', 'coco/bbox_mAP_50'),
           ('AP75', 'coco/bbox_mAP_75'), ('AP_small', 'coco/bbox_mAP_s'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train and compare CE, FL and GHM RetinaNets on the '
        'synthetic shapes set (CPU).')
    parser.add_argument(
        '--losses', nargs='+', default=DEFAULT_LOSSES,
        help=f'which models to train, any of: {" ".join(CONFIGS)}, or "all" '
        f'(default: {" ".join(DEFAULT_LOSSES)}: the paper\'s comparison, within the '
        '15-minute CPU budget)')
    parser.add_argument(
        '--work-dir', default=DEFAULT_WORK_DIR,
        help='parent directory; each run writes into a new timestamped '
        'sub-directory (default: work_dirs/main_job in the repository)')
    parser.add_argument(
        '--data-root', default=None,
        help=f'data set directory (default: {DEFAULT_DATA_ROOT}, or '
        f'{QUICK_DATA_ROOT} with --quick, in the repository); generated if '
        'missing')
    parser.add_argument(
        '--quick', action='store_true',
        help='smoke run: tiny data set, 1 epoch, small batches')
    parser.add_argument(
        '--epochs', type=int, default=None,
        help='override the number of training epochs')
    parser.add_argument(
        '--threads', type=int, default=1,
        help='torch CPU threads per training process (default: 1; on a '
        'small shared CPU more threads mostly spin and are slower)')
    parser.add_argument(
        '--jobs', type=int, default=3,
        help='how many models train at the same time (default: 3, i.e. '
        'all at once, so they share the CPU under the same conditions)')
    parser.add_argument('--_child', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.losses == ['all']:
        args.losses = list(CONFIGS)
    bad = [x for x in args.losses if x not in CONFIGS]
    if bad:
        parser.error(f'unknown loss(es) {bad}; choose from {sorted(CONFIGS)}')
    if len(set(args.losses)) != len(args.losses):
        parser.error(f'--losses has duplicates: {args.losses}')
    if args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    if args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    if args.epochs is not None and args.epochs < 1:
        parser.error(f'--epochs must be >= 1, got {args.epochs}')
    return args


def new_run_dir(parent: str) -> str:
    """Create and return a fresh ``<parent>/<timestamp>[_n]`` directory."""
    os.makedirs(parent, exist_ok=True)
    stamp = datetime.datetime.now().strftime('%Y%m%d_%H%M%S')
    for n in range(1000):
        path = osp.join(parent, stamp if n == 0 else f'{stamp}_{n}')
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f'could not create a new run directory in {parent!r}')


def overrides_for(args, data_root: str, generator_cfg: dict) -> dict:
    """Config overrides (``merge_from_dict`` keys) for one child run."""
    root = data_root.rstrip('/') + '/'
    ov = {}
    for split in ('train', 'val', 'test'):
        ds = f'{split}_dataloader.dataset.'
        ov[ds + 'data_root'] = root
        ov[ds + 'generator_cfg'] = generator_cfg
    for split in ('val', 'test'):
        ov[f'{split}_evaluator.ann_file'] = (
            root + 'annotations/instances_val.json')
    if args.quick:
        ov['train_cfg.max_epochs'] = 1
        ov['train_cfg.val_interval'] = 1
        ov['default_hooks.checkpoint.interval'] = 1
        # after a few iterations all scores are below the usual 0.05:
        # keep every detection so that COCO evaluation really runs
        ov['model.test_cfg.score_thr'] = 0.0
        for split in ('train', 'val', 'test'):
            ov[f'{split}_dataloader.batch_size'] = 4
            ov[f'{split}_dataloader.num_workers'] = 0
            ov[f'{split}_dataloader.persistent_workers'] = False
    if args.epochs is not None:
        ov['train_cfg.max_epochs'] = args.epochs
        ov['default_hooks.checkpoint.interval'] = args.epochs
    return ov


# --------------------------------------------------------------------------
# Child: one training run
# --------------------------------------------------------------------------


def run_child(spec: dict) -> None:
    """Train + validate one model; write ``result.json`` in its work dir.

    MMEngine's own log goes to ``train.log``; short progress lines go to the
    original stdout (the parent's terminal).
    """
    import resource
    work_dir = spec['work_dir']
    progress = os.fdopen(os.dup(1), 'w', buffering=1)
    log_fd = os.open(osp.join(work_dir, 'train.log'),
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    sys.stdout = os.fdopen(1, 'w', buffering=1)
    sys.stderr = os.fdopen(2, 'w', buffering=1)

    import torch
    torch.set_num_threads(spec['threads'])
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    tag = spec['tag']

    class ProgressHook(Hook):
        """Records loss/metric curves and timings; prints progress."""
        priority = 'VERY_LOW'

        def __init__(self):
            self.losses, self.vals, self.iter_times = [], [], []
            self._t_end = None
            self._t0 = time.perf_counter()

        def before_train_epoch(self, runner):
            self._t_end = time.perf_counter()

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            now = time.perf_counter()
            self.iter_times.append(now - self._t_end)
            self._t_end = now
            rec = {k: float(v.detach()) if hasattr(v, 'detach') else float(v)
                   for k, v in (outputs or {}).items()}
            rec['iter'] = runner.iter + 1
            self.losses.append(rec)
            n = len(runner.train_dataloader)
            if (batch_idx + 1) % 10 == 0 or batch_idx + 1 == n:
                done = runner.iter + 1
                total = runner.max_iters
                rate = (now - self._t0) / done
                print(f'  [{tag}] epoch {runner.epoch + 1}/'
                      f'{runner.max_epochs} iter {batch_idx + 1}/{n} '
                      f'loss {rec.get("loss", float("nan")):.4f} '
                      f'({rate:.2f} s/it incl. val, '
                      f'eta {(total - done) * rate / 60:.1f} min)',
                      file=progress)

        def after_val_epoch(self, runner, metrics=None):
            metrics = {k: float(v) for k, v in (metrics or {}).items()
                       if isinstance(v, (int, float))}
            metrics['epoch'] = runner.epoch
            self.vals.append(metrics)
            print(f'  [{tag}] val after epoch {runner.epoch}: bbox mAP '
                  f'{metrics.get("coco/bbox_mAP", float("nan")):.3f}, AP50 '
                  f'{metrics.get("coco/bbox_mAP_50", float("nan")):.3f}',
                  file=progress)

    cfg = Config.fromfile(spec['config'])
    old_epochs = cfg.train_cfg.max_epochs
    cfg.merge_from_dict(spec['overrides'])
    new_epochs = cfg.train_cfg.max_epochs
    if new_epochs != old_epochs:
        # stretch/shrink epoch-based schedules (e.g. cosine) to the new length
        for sched in cfg.get('param_scheduler') or []:
            if sched.get('end') == old_epochs:
                sched['end'] = new_epochs
            if sched.get('T_max') == old_epochs:
                sched['T_max'] = new_epochs
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    runner = Runner.from_cfg(cfg)
    hook = ProgressHook()
    runner.register_hook(hook)
    t0 = time.perf_counter()
    runner.train()
    wall = time.perf_counter() - t0
    # skip the first iteration (worker start-up, lazy allocations)
    times = hook.iter_times[1:] or hook.iter_times
    result = dict(
        tag=tag,
        config=spec['config'],
        train_wall_s=wall,
        iters=len(hook.iter_times),
        time_per_iter_s=sum(times) / len(times),
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss /
        1024.0,
        final=hook.vals[-1] if hook.vals else {},
        val_curve=hook.vals,
        loss_curve=hook.losses,
    )
    with open(osp.join(work_dir, 'result.json'), 'w') as f:
        json.dump(result, f, indent=1)


# --------------------------------------------------------------------------
# Parent: orchestration, table, plot
# --------------------------------------------------------------------------


def format_table(results: dict) -> str:
    """A plain-text comparison table of the finished runs."""
    head = ('model', 'bbox_mAP', 'AP50', 'AP75', 'AP_small', 's/iter',
            'peak MiB', 'wall min')
    rows = []
    for key, res in results.items():
        fin = res['final']
        rows.append((LABELS[key], *[f'{fin.get(m, float("nan")):.3f}'
                                    for _, m in METRICS],
                     f'{res["time_per_iter_s"]:.3f}',
                     f'{res["peak_rss_mib"]:.0f}',
                     f'{res["train_wall_s"] / 60:.1f}'))
    widths = [max(len(str(r[i])) for r in [head] + rows)
              for i in range(len(head))]
    line = '  '.join(h.ljust(w) for h, w in zip(head, widths))
    out = [line, '-' * len(line)]
    for r in rows:
        out.append('  '.join(str(c).ljust(w) for c, w in zip(r, widths)))
    return '\n'.join(out)


def plot_curves(results: dict, path: str) -> None:
    """Write training-loss and val-mAP curves of every model to ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    colours = {'ce': 'tab:blue', 'fl': 'tab:orange', 'ghm': 'tab:green', 'alpha-ce': 'tab:purple',
               'cfl': 'tab:brown', 'ohem': 'tab:gray'}
    for key, res in results.items():
        c = colours.get(key)
        it = [r['iter'] for r in res['loss_curve']]
        for ax, name in zip(axes[:2], ('loss_cls', 'loss_bbox')):
            ys = [r.get(name, float('nan')) for r in res['loss_curve']]
            ax.plot(it, ys, color=c, lw=0.5, alpha=0.3)
            k = min(20, len(ys))  # moving average for readability
            smooth = [sum(ys[max(0, i - k + 1):i + 1]) /
                      len(ys[max(0, i - k + 1):i + 1]) for i in range(len(ys))]
            ax.plot(it, smooth, color=c, lw=1.5, label=LABELS[key])
        ep = [v['epoch'] for v in res['val_curve']]
        axes[2].plot(ep, [v.get('coco/bbox_mAP', float('nan'))
                          for v in res['val_curve']], 'o-', color=c,
                     label=f'{LABELS[key]} mAP')
        axes[2].plot(ep, [v.get('coco/bbox_mAP_50', float('nan'))
                          for v in res['val_curve']], 's--', color=c,
                     label=f'{LABELS[key]} AP50')
    axes[0].set_title('classification loss (losses differ in scale)')
    axes[0].set_yscale('log')
    axes[1].set_title('regression loss')
    axes[1].set_yscale('log')
    for ax in axes[:2]:
        ax.set_xlabel('iteration')
    axes[2].set_title('val bbox mAP / AP50')
    axes[2].set_xlabel('epoch')
    axes[2].set_ylim(0, 1)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._child:
        with open(args._child) as f:
            run_child(json.load(f))
        return 0

    # paths given by the user are relative to where they run the command;
    # configs and the default data root are relative to the repository
    work_dir = osp.abspath(args.work_dir) if args.work_dir != \
        DEFAULT_WORK_DIR else DEFAULT_WORK_DIR
    data_root = osp.abspath(args.data_root) + '/' if args.data_root else (
        QUICK_DATA_ROOT if args.quick else DEFAULT_DATA_ROOT)
    os.chdir(REPO)
    generator_cfg = QUICK_GENERATOR if args.quick else dict(seed=0)
    run_dir = new_run_dir(work_dir)
    print(f'main job: losses {args.losses}, results in {run_dir}')

    t0 = time.perf_counter()
    sys.path.insert(0, REPO)
    from mmdet_ghm.datasets.synthetic_shapes import ensure_synthetic_shapes
    print(f'data set: {data_root} (generated on first use) ...')
    meta = ensure_synthetic_shapes(data_root, **generator_cfg)
    tr = meta['stats']['train']
    print(f'  train: {tr["images"]} images, {tr["annotations"]} boxes '
          f'({tr["noisy_label"]} wrong labels, {tr["missing"]} missing, '
          f'{tr["noisy_box"]} bad boxes); val: '
          f'{meta["stats"]["val"]["images"]} images, clean '
          f'[{time.perf_counter() - t0:.0f} s]')

    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    env['OMP_NUM_THREADS'] = str(args.threads)
    pending, running = list(args.losses), {}
    results, failed = {}, []
    print(f'training {len(pending)} model(s), {args.jobs} at a time, '
          f'{args.threads} thread(s) each')
    while pending or running:
        while pending and len(running) < args.jobs:
            key = pending.pop(0)
            sub = osp.join(run_dir, key)
            os.makedirs(sub)
            spec = dict(tag=key, config=CONFIGS[key], work_dir=sub,
                        threads=args.threads,
                        overrides=overrides_for(args, data_root,
                                                generator_cfg))
            spec_path = osp.join(sub, 'job.json')
            with open(spec_path, 'w') as f:
                json.dump(spec, f, indent=1)
            print(f'[{key}] start: {LABELS[key]} ({CONFIGS[key]}); '
                  f'log: {sub}/train.log', flush=True)
            running[key] = subprocess.Popen(
                [sys.executable, osp.abspath(__file__), '--_child',
                 spec_path], env=env)
        time.sleep(0.5)
        for key, proc in list(running.items()):
            if proc.poll() is None:
                continue
            del running[key]
            sub = osp.join(run_dir, key)
            res_path = osp.join(sub, 'result.json')
            if proc.returncode != 0 or not osp.exists(res_path):
                failed.append(key)
                print(f'[{key}] FAILED (exit code {proc.returncode}); last '
                      f'lines of {sub}/train.log:')
                with open(osp.join(sub, 'train.log'), errors='replace') as f:
                    print(''.join(f.readlines()[-25:]), flush=True)
                continue
            with open(res_path) as f:
                results[key] = json.load(f)
            print(f'[{key}] done in {results[key]["train_wall_s"] / 60:.1f} '
                  'min', flush=True)
    results = {k: results[k] for k in args.losses if k in results}

    total = time.perf_counter() - t0
    summary = dict(
        run_dir=run_dir,
        data_root=data_root,
        data_meta=meta,
        quick=args.quick,
        losses=args.losses,
        failed=failed,
        total_wall_s=total,
        table={
            k: dict({n: r['final'].get(m) for n, m in METRICS},
                    time_per_iter_s=r['time_per_iter_s'],
                    peak_rss_mib=r['peak_rss_mib'],
                    train_wall_s=r['train_wall_s'])
            for k, r in results.items()
        },
        runs=results)
    with open(osp.join(run_dir, 'results.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    if results:
        plot_curves(results, osp.join(run_dir, 'curves.png'))
        print('\nResults on the synthetic val split (COCO bbox metrics; '
              's/iter = mean wall time per training iteration, with '
              f'{min(args.jobs, len(args.losses))} model(s) training at once'
              '; peak MiB = peak RSS of each training process):')
        print(format_table(results))
    print(f'\ntotal wall time {total / 60:.1f} min; wrote '
          f'{run_dir}/results.json' +
          (f' and {run_dir}/curves.png' if results else ''))
    if failed:
        print(f'FAILED: {failed}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
