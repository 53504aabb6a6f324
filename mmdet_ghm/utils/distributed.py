"""Multi-process training on machines without CUDA, and a clean end to it.

Shared by ``tools/train.py``, ``tools/test.py`` (through ``tools/launch_utils.py``)
and the study's training process (:mod:`mmdet_ghm.study.child`), which
``tools/compare_losses.py --launcher pytorch`` starts with torchrun.
"""
import torch
import torch.distributed as torch_dist


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
