"""Train a detector (MMDetection 3.3's ``tools/train.py`` with mmdet-ghm loaded).

Usage::

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr]
        [--resume [auto|CHECKPOINT]] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

Unlike MMDetection's script, it refuses to start a fresh run in a work dir
that already holds checkpoints (they would be overwritten); pass ``--resume``
to continue that run or choose another ``--work-dir``.
"""
import argparse
import glob
import os.path as osp

from launch_utils import (add_cfg_options_arg, add_launcher_args, build_runner, close_distributed,
                          export_local_rank, resolve_work_dir, setup_cpu_distributed)
from mmengine.config import Config

from mmdet.utils import setup_cache_size_limit_of_dynamo


def parse_args(argv=None):
    """Parse command line arguments."""
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    add_cfg_options_arg(parser)
    add_launcher_args(parser)
    args = parser.parse_args(argv)
    export_local_rank(args)
    return args


def check_fresh_work_dir(work_dir):
    """Refuse to start a new run over an earlier run's checkpoints.

    Args:
        work_dir (str): The run's work dir.

    Raises:
        FileExistsError: If ``work_dir`` holds ``*.pth`` files or a
            ``last_checkpoint`` record.
    """
    found = sorted(glob.glob(osp.join(work_dir, '*.pth')))
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        found.append(osp.join(work_dir, 'last_checkpoint'))
    if found:
        raise FileExistsError(
            f'work dir {work_dir!r} already holds checkpoints of an earlier '
            f'run ({", ".join(osp.basename(f) for f in found[:3])}'
            f'{", ..." if len(found) > 3 else ""}) that a new run would '
            'overwrite. Pass --resume to continue that run, or choose '
            'another --work-dir.')


def main(argv=None):
    """Build the runner from the config and CLI options, then train."""
    args = parse_args(argv)
    setup_cache_size_limit_of_dynamo()

    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    resolve_work_dir(cfg, args.work_dir, args.config)

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        scale_cfg = cfg.get('auto_scale_lr', None)
        if not scale_cfg or 'enable' not in scale_cfg or \
                'base_batch_size' not in scale_cfg:
            raise ValueError(
                f'--auto-scale-lr needs `auto_scale_lr = dict(enable=False, '
                f'base_batch_size=...)` in the config; {args.config!r} has '
                f'auto_scale_lr={scale_cfg!r}.')
        cfg.auto_scale_lr.enable = True

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(osp.expanduser(args.resume)) and '://' not in \
                args.resume:
            raise FileNotFoundError(
                f'--resume checkpoint {args.resume!r} does not exist')
        cfg.resume = True
        cfg.load_from = args.resume
    if not cfg.get('resume', False):
        check_fresh_work_dir(cfg.work_dir)

    setup_cpu_distributed(cfg)
    runner = build_runner(cfg)
    runner.train()
    close_distributed(runner)


if __name__ == '__main__':
    main()
