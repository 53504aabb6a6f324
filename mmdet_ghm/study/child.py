"""Train and validate one run of the study; write its record.

Run by the study runner as ``python -m mmdet_ghm.study.child <spec.json>``,
one process per run (so peak memory and timings are the run's own). The spec
(written by :mod:`mmdet_ghm.study.runner`) names the config, the overrides,
the seed, the work dir and the record path. MMEngine's log goes to
``<work_dir>/train.log``; ``<work_dir>/progress.json`` is rewritten after
every few iterations so that the runner can show progress and spot a hang.

A checkpoint is written after every epoch (the last one kept). A spec with
``resume_from`` (an earlier attempt's checkpoint) continues that run
exactly: ``RNGStateHook`` restores the generators, and the recorder's
curves and timings travel in the checkpoint, so the record equals the
uninterrupted run's in every metric and lists the epochs it resumed at.
"""
import json
import os
import os.path as osp
import resource
import sys
import time
from typing import Dict, List, Optional

from .records import (LAST_BATCH_SAMPLING, RECORD_SCHEMA, STATS_SAMPLING_FIELD,
                      combine_sampling, environment, write_json_atomic)

#: COCO metric keys and the names the records use.
METRICS = (('bbox_mAP', 'coco/bbox_mAP'), ('AP50', 'coco/bbox_mAP_50'),
           ('AP75', 'coco/bbox_mAP_75'), ('AP_small', 'coco/bbox_mAP_s'),
           ('AP_medium', 'coco/bbox_mAP_m'), ('AP_large', 'coco/bbox_mAP_l'))
GHM_STATS_PREFIX = 'train/ghm_'
#: ``ClsGradientShareHook``'s keys (its ``LOG_PREFIX``), kept per epoch in a
#: record's ``cls_grad_stats``.
CLS_GRAD_PREFIX = 'train/cls_grad/'
#: The loss module the study reads the classification gradient of.
CLS_LOSS_PATH = 'bbox_head.loss_cls'


#: Where the recorder keeps its state in a checkpoint.
RECORDER_KEY = 'study_recorder'


def stretch_schedule(cfg, epochs: int) -> None:
    """Set ``epochs`` and stretch epoch-based schedulers (e.g. cosine) to it."""
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs
    for scheduler in cfg.get('param_scheduler') or []:
        if scheduler.get('end') == old:
            scheduler['end'] = epochs
        if scheduler.get('T_max') == old:
            scheduler['T_max'] = epochs


def new_scalar_means(message_hub, seen: Dict[str, int],
                     prefix: str = GHM_STATS_PREFIX) -> Dict[str, float]:
    """Means of the statistics under ``prefix`` logged since the last call (``seen`` is updated).

    :class:`~mmdet_ghm.engine.hooks.GHMStatsHook` logs ``train/ghm_<loss>/<key>``
    and :class:`~mmdet_ghm.engine.hooks.ClsGradientShareHook`
    ``train/cls_grad/<key>`` once per logging window (each value pooled over
    the window's iterations, the epoch's last, partial window included); this
    averages the values logged during one epoch, each window with equal weight.
    """
    means = {}
    for key, buffer in message_hub.log_scalars.items():
        if not key.startswith(prefix):
            continue
        values = buffer.data[0]
        start = seen.get(key, 0)
        if len(values) > start:
            means[key[len(prefix):]] = float(values[start:].mean())
        seen[key] = len(values)
    return means


def ghm_stats_sampling(runner) -> Optional[str]:
    """How the run's ``GHMStatsHook`` samples its statistics (its ``SAMPLING``);
    ``None`` when the run has no such hook or its model no GHM loss."""
    from mmdet_ghm.engine.hooks import GHMStatsHook
    hook = next((h for h in runner.hooks if isinstance(h, GHMStatsHook)), None)
    return hook.SAMPLING if hook is not None and hook.losses else None


def resumable_run(cfg, resume_from=None) -> None:
    """Checkpoint ``cfg`` after every epoch (last one kept), with ``RNGStateHook`` on.

    ``resume_from``: an earlier attempt's checkpoint to continue from.
    """
    cfg.default_hooks.checkpoint.update(interval=1, by_epoch=True, max_keep_ckpts=1)
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(hook.get('type') == 'RNGStateHook' for hook in hooks):
        hooks.append(dict(type='RNGStateHook'))
    cfg.custom_hooks = hooks
    if resume_from:
        cfg.resume = True
        cfg.load_from = resume_from


def make_recorder(progress_path: str, tag: str, echo):
    """A hook that records validation metrics, GHM statistics and timings.

    Its state goes into every checkpoint (``RECORDER_KEY``) and comes back
    when the run resumes from one. ``ghm_stats_sampling`` is how the epochs
    of ``ghm_stats`` were sampled (:func:`ghm_stats_sampling`; ``'mixed'``
    when a run resumed across a change of it; ``None`` while there are
    none); a checkpoint written before the recorder kept it, with
    statistics, had ``'last-batch'`` ones.
    """
    from mmengine.hooks import Hook

    class StudyRecorder(Hook):
        # before CheckpointHook (VERY_LOW), so that a checkpoint holds the epoch's statistics
        priority = 'LOW'

        def __init__(self):
            self.val_curve: List[dict] = []
            self.ghm_stats: List[dict] = []
            self.ghm_stats_sampling: Optional[str] = None
            self.cls_grad_stats: List[dict] = []
            self.iter_times: List[float] = []
            self.resumed_at: List[int] = []
            self.earlier_wall_s = 0.0
            self.earlier_peak_rss_mib = 0.0
            self._seen: Dict[str, int] = {}
            self._t_last = None
            self._t0 = time.perf_counter()

        def wall_s(self) -> float:
            """Training time of this run so far, over all its attempts."""
            return self.earlier_wall_s + time.perf_counter() - self._t0

        def peak_rss_mib(self) -> float:
            """Peak resident memory of this run so far, over all its attempts."""
            own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            return max(own, self.earlier_peak_rss_mib)

        def before_save_checkpoint(self, runner, checkpoint):
            checkpoint[RECORDER_KEY] = dict(
                val_curve=self.val_curve, ghm_stats=self.ghm_stats,
                ghm_stats_sampling=self.ghm_stats_sampling, iter_times=self.iter_times,
                cls_grad_stats=self.cls_grad_stats,
                resumed_at=self.resumed_at, seen=self._seen, wall_s=self.wall_s(),
                peak_rss_mib=self.peak_rss_mib())

        def after_load_checkpoint(self, runner, checkpoint):
            state = checkpoint.get(RECORDER_KEY)
            if state is None:
                raise ValueError('the checkpoint to resume from was not written by a study run '
                                 f'(it has no {RECORDER_KEY!r})')
            self.val_curve = list(state['val_curve'])
            self.ghm_stats = list(state['ghm_stats'])
            self.ghm_stats_sampling = state.get(
                'ghm_stats_sampling', LAST_BATCH_SAMPLING if self.ghm_stats else None)
            self.iter_times = list(state['iter_times'])
            self.cls_grad_stats = list(state.get('cls_grad_stats', []))
            self._seen = dict(state['seen'])
            self.earlier_wall_s = float(state['wall_s'])
            self.earlier_peak_rss_mib = float(state['peak_rss_mib'])
            self.resumed_at = list(state['resumed_at']) + [int(checkpoint['meta']['epoch'])]

        def before_train(self, runner):
            """Validate the epoch a run resumed at, if it was killed before its validation.

            The checkpoint of an epoch is written before that epoch's
            validation; RNGStateHook keeps validation from moving the
            generators, so running it here changes nothing that follows.
            """
            loop = runner.train_loop
            epoch = runner.epoch
            if not self.resumed_at or runner.val_loop is None or epoch == 0:
                return
            due = epoch >= loop.val_begin and (epoch % loop.val_interval == 0
                                               or epoch == loop.max_epochs)
            if due and not any(point['epoch'] == epoch for point in self.val_curve):
                echo(f'[{tag}] validating epoch {epoch}, which the interrupted attempt had not')
                runner.val_loop.run()

        def before_train_epoch(self, runner):
            self._t_last = time.perf_counter()

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            now = time.perf_counter()
            self.iter_times.append(now - self._t_last)
            self._t_last = now
            if (runner.iter + 1) % 5 == 0 or runner.iter + 1 == runner.max_iters:
                write_json_atomic(progress_path, dict(
                    iter=runner.iter + 1, max_iters=runner.max_iters,
                    epoch=runner.epoch + 1, max_epochs=runner.max_epochs,
                    elapsed_s=now - self._t0, time=time.time()))

        def after_train_epoch(self, runner):
            stats = new_scalar_means(runner.message_hub, self._seen)
            if stats:  # runner.epoch counts finished epochs only after this hook
                self.ghm_stats.append(dict(epoch=runner.epoch + 1, **stats))
                self.ghm_stats_sampling = combine_sampling(self.ghm_stats_sampling,
                                                           ghm_stats_sampling(runner))
            shares = new_scalar_means(runner.message_hub, self._seen, CLS_GRAD_PREFIX)
            if shares:
                self.cls_grad_stats.append(dict(epoch=runner.epoch + 1, **shares))

        def after_val_epoch(self, runner, metrics=None):
            point = {name: float(metrics[key]) for name, key in METRICS
                     if metrics and key in metrics}
            point['epoch'] = runner.epoch
            self.val_curve.append(point)
            echo(f'[{tag}] epoch {runner.epoch}/{runner.max_epochs}: '
                 f'bbox mAP {point.get("bbox_mAP", float("nan")):.3f}')

    return StudyRecorder()


def add_cls_gradient_share_hook(runner) -> bool:
    """Register a :class:`ClsGradientShareHook` on a model with a sigmoid ``bbox_head.loss_cls``.

    Every study run trained since it logs how its classification loss splits
    the gradient (the record's ``cls_grad_stats``); the hook only observes.
    A config that has one already keeps its own. Returns whether one was added.
    """
    from mmdet_ghm.engine.hooks.cls_gradient_share_hook import (ClsGradientShareHook,
                                                                sigmoid_cls_loss)
    if any(isinstance(h, ClsGradientShareHook) for h in runner.hooks):
        return False
    if sigmoid_cls_loss(runner.model, CLS_LOSS_PATH) is None:
        return False
    runner.register_hook(ClsGradientShareHook(loss=CLS_LOSS_PATH))
    return True


def train_one(spec: dict, echo=print) -> dict:
    """Train the run described by ``spec``; write and return its record."""
    import torch
    torch.set_num_threads(spec['threads'])
    from mmengine.config import Config
    from mmengine.runner import Runner

    work_dir = spec['work_dir']
    cfg = Config.fromfile(spec['config'])
    cfg.merge_from_dict(spec['overrides'])
    if spec.get('epochs'):
        stretch_schedule(cfg, spec['epochs'])
    cfg.randomness = dict(seed=spec['seed'], deterministic=False)
    cfg.work_dir = work_dir
    # 'pytorch' when the runner started this process with torchrun (one per GPU)
    cfg.launcher = spec.get('launcher', 'none')
    from mmdet_ghm.utils.distributed import close_distributed, setup_cpu_distributed
    setup_cpu_distributed(cfg)  # gloo and no device ids without CUDA; else nothing
    resumable_run(cfg, spec.get('resume_from'))
    runner = Runner.from_cfg(cfg)
    recorder = make_recorder(osp.join(work_dir, 'progress.json'), spec['tag'], echo)
    runner.register_hook(recorder)
    add_cls_gradient_share_hook(runner)
    runner.train()
    from mmengine.dist import get_rank
    rank = get_rank()
    close_distributed(runner)
    if rank != 0:  # distributed: rank 0 writes the record
        return {}
    wall = recorder.wall_s()
    times = recorder.iter_times[1:] or recorder.iter_times  # skip start-up
    final = recorder.val_curve[-1] if recorder.val_curve else {}
    record = dict(
        schema=RECORD_SCHEMA,
        variant=spec['variant']['name'],
        variant_spec=spec['variant'],
        seed=spec['seed'],
        config=spec['config_rel'],
        overrides=spec.get('record_overrides', spec['overrides']),
        epochs=cfg.train_cfg.max_epochs,
        bbox_mAP=final.get('bbox_mAP'),
        final={k: v for k, v in final.items() if k != 'epoch'},
        val_curve=recorder.val_curve,
        ghm_stats=recorder.ghm_stats,
        cls_grad_stats=recorder.cls_grad_stats,
        iters=len(recorder.iter_times),
        s_per_iter=sum(times) / max(len(times), 1),
        train_wall_s=wall,
        resumed_at_epochs=recorder.resumed_at,
        peak_rss_mib=recorder.peak_rss_mib(),
        # this attempt's peak of GPU memory allocated by tensors (None on CPU)
        peak_gpu_mib=(torch.cuda.max_memory_allocated() / 2**20
                      if torch.cuda.is_available() else None),
        concurrent_jobs=spec['jobs'],
        data=spec['data'],
        code=spec['code'],
        env=environment(),
    )
    if recorder.ghm_stats and recorder.ghm_stats_sampling is not None:
        record[STATS_SAMPLING_FIELD] = recorder.ghm_stats_sampling
    write_json_atomic(spec['record_path'], record)
    return record


def main(argv=None) -> int:
    """Entry point: redirect MMEngine's output to ``train.log``, train, record."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print('usage: python -m mmdet_ghm.study.child <spec.json>', file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        spec = json.load(f)
    terminal = os.fdopen(os.dup(1), 'w', buffering=1)
    log_fd = os.open(osp.join(spec['work_dir'], 'train.log'),
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    sys.stdout = os.fdopen(1, 'w', buffering=1)
    sys.stderr = os.fdopen(2, 'w', buffering=1)
    train_one(spec, echo=lambda line: print(line, file=terminal))
    return 0


if __name__ == '__main__':
    sys.exit(main())
