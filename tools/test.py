"""Test (and evaluate) a detector: MMDetection 3.3's ``tools/test.py``.

Usage::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--show] [--show-dir DIR] [--wait-time SECONDS] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}] [--tta]

mmdet-ghm is imported first, so checkpoints load with ``weights_only=True``
(see ``mmdet_ghm/engine/safe_checkpoint.py``).
"""
import argparse
import logging
import os.path as osp
import warnings
from copy import deepcopy

from launch_utils import (add_cfg_options_arg, add_launcher_args, build_runner, close_distributed,
                          export_local_rank, resolve_work_dir, setup_cpu_distributed)
from mmengine import ConfigDict
from mmengine.config import Config
from mmengine.logging import print_log

from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmdet.evaluation import DumpDetResults
from mmdet.utils import setup_cache_size_limit_of_dynamo


def parse_args(argv=None):
    """Parse command line arguments."""
    parser = argparse.ArgumentParser(
        description='MMDet test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    add_cfg_options_arg(parser)
    add_launcher_args(parser)
    parser.add_argument('--tta', action='store_true')
    args = parser.parse_args(argv)
    export_local_rank(args)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(
            f'--out {args.out!r}: the dump file must end with .pkl or .pickle')
    return args


def enable_tta(cfg):
    """Wrap ``cfg.model`` in a TTA model, with MMDetection's defaults."""
    if 'tta_model' not in cfg:
        warnings.warn('Cannot find ``tta_model`` in config, '
                      'we will set it as default.')
        cfg.tta_model = dict(
            type='DetTTAModel',
            tta_cfg=dict(
                nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    if 'tta_pipeline' not in cfg:
        warnings.warn('Cannot find ``tta_pipeline`` in config, '
                      'we will set it as default.')
        test_data_cfg = cfg.test_dataloader.dataset
        while 'dataset' in test_data_cfg:
            test_data_cfg = test_data_cfg['dataset']
        cfg.tta_pipeline = deepcopy(test_data_cfg.pipeline)
        flip_tta = dict(
            type='TestTimeAug',
            transforms=[
                [
                    dict(type='RandomFlip', prob=1.),
                    dict(type='RandomFlip', prob=0.)
                ],
                [
                    dict(
                        type='PackDetInputs',
                        meta_keys=('img_id', 'img_path', 'ori_shape',
                                   'img_shape', 'scale_factor', 'flip',
                                   'flip_direction'))
                ],
            ])
        cfg.tta_pipeline[-1] = flip_tta
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def main(argv=None):
    """Build the runner, load the checkpoint and run the test loop."""
    args = parse_args(argv)
    setup_cache_size_limit_of_dynamo()

    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    resolve_work_dir(cfg, args.work_dir, args.config)

    if '://' not in args.checkpoint and not osp.isfile(
            osp.expanduser(args.checkpoint)):
        raise FileNotFoundError(
            f'checkpoint {args.checkpoint!r} does not exist')
    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        enable_tta(cfg)

    setup_cpu_distributed(cfg)
    runner = build_runner(cfg)

    if args.out is not None:
        if osp.exists(args.out):
            print_log(f'--out {args.out!r} exists and will be overwritten',
                      logger="current", level=logging.WARNING)
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))

    runner.test()
    close_distributed(runner)


if __name__ == '__main__':
    main()
