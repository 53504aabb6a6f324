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
import torch  # noqa: E402
import torch.distributed as torch_dist  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

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


def setup_cpu_distributed(cfg):
    """Make multi-process runs work on machines without CUDA.

    MMEngine's ``init_dist`` calls ``torch.cuda.set_device`` and wraps the
    model with ``device_ids=[LOCAL_RANK]``, both of which fail without a GPU.
    With ``launcher='pytorch'`` and no CUDA, this selects the ``gloo``
    backend (in ``cfg.env_cfg.dist_cfg``), initialises the process group from
    the ``torchrun`` environment, and wraps the model with ``device_ids=None``.
    Does nothing for ``launcher='none'`` or when CUDA is available.

    Args:
        cfg (mmengine.Config): Config with ``launcher`` set; updated in place.

    Raises:
        ValueError: For ``slurm``/``mpi`` launchers on a machine without CUDA,
            or a non-gloo backend requested in the config there.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(
            f'--launcher {launcher} needs CUDA devices; on a CPU-only machine '
            'use --launcher pytorch (tools/dist_train.sh, tools/dist_test.sh).')
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    backend = dist_cfg.get('backend', 'nccl')
    if backend not in ('nccl', 'gloo'):
        raise ValueError(
            f'env_cfg.dist_cfg.backend={backend!r} cannot run without CUDA; '
            'use gloo (the default chosen on CPU-only machines).')
    dist_cfg['backend'] = 'gloo'
    wrapper_cfg = cfg.get('model_wrapper_cfg', None)
    if wrapper_cfg is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False),
            device_ids=None)
    else:
        wrapper_cfg.setdefault('device_ids', None)
    if not torch_dist.is_initialized():
        kwargs = {k: v for k, v in dist_cfg.items() if k != 'backend'}
        if 'timeout' in kwargs:
            import datetime
            kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
        torch_dist.init_process_group(backend='gloo', **kwargs)


def close_distributed(runner) -> None:
    """End a multi-process run cleanly: free DDP, then the process group.

    Left to interpreter exit, the process group's worker threads can be
    destroyed while still joinable (``terminate called without an active
    exception``, SIGABRT after a finished run), and destroying the group while
    DDP's reducer is alive can deadlock on the GIL with gloo's thread. So:
    wait for every rank, drop the wrapped model, collect it, destroy the group.
    Does nothing when not distributed.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    import gc
    torch_dist.barrier()
    runner.model = None
    gc.collect()
    torch_dist.destroy_process_group()


def build_runner(cfg):
    """Build the runner named by ``cfg.runner_type`` (default ``Runner``)."""
    from mmengine.runner import Runner

    from mmdet.registry import RUNNERS
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
