"""Helpers shared by ``tools/train.py`` and ``tools/test.py``.

Importing this module puts the repository root on ``sys.path`` (so the tools
run from a clone without installing) and imports :mod:`mmdet_ghm`, which
registers the plugin types and the safe checkpoint loader even when a config
has no ``custom_imports``.
"""
import os
import os.path as osp
import sys

_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import mmdet_ghm  # noqa: E402,F401  (registers losses, datasets, safe loader)
from mmengine.config import DictAction  # noqa: E402

from mmdet_ghm.utils.distributed import (close_distributed,  # noqa: E402,F401 (re-exported)
                                         setup_cpu_distributed)

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def add_cfg_options_arg(parser):
    """Add MMDetection's ``--cfg-options key=value ...`` config overrides.

    Args:
        parser (argparse.ArgumentParser): Parser to extend.
    """
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')


def add_launcher_args(parser):
    """Add ``--launcher`` and ``--local_rank/--local-rank`` like MMDetection.

    Args:
        parser (argparse.ArgumentParser): Parser to extend.
    """
    parser.add_argument(
        '--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank; torchrun sets the LOCAL_RANK environment variable.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def export_local_rank(args):
    """Set ``LOCAL_RANK`` from ``--local_rank`` unless the launcher did."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)


def resolve_work_dir(cfg, work_dir, config_path):
    """Set ``cfg.work_dir``: CLI value, else config value, else config name.

    Args:
        cfg (mmengine.Config): Config to update in place.
        work_dir (str | None): ``--work-dir`` value.
        config_path (str): Path of the config file.
    """
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(config_path))[0])


def build_runner(cfg):
    """Build the runner named by ``cfg.runner_type`` (default ``Runner``)."""
    from mmengine.runner import Runner

    from mmdet.registry import RUNNERS
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
