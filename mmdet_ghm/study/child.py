"""Train and validate one run of the study; write its record.

Run by the study runner as ``python -m mmdet_ghm.study.child <spec.json>``,
one process per run (so peak memory and timings are the run's own). The spec
(written by :mod:`mmdet_ghm.study.runner`) names the config, the overrides,
the seed, the work dir and the record path. MMEngine's log goes to
``<work_dir>/train.log``; ``<work_dir>/progress.json`` is rewritten after
every few iterations so that the runner can show progress and spot a hang.
"""
import json
import os
import os.path as osp
import resource
import sys
import time
from typing import Dict, List

from .records import RECORD_SCHEMA, environment, write_json_atomic

#: COCO metric keys and the names the records use.
METRICS = (('bbox_mAP', 'coco/bbox_mAP'), ('AP50', 'coco/bbox_mAP_50'),
           ('AP75', 'coco/bbox_mAP_75'), ('AP_small', 'coco/bbox_mAP_s'),
           ('AP_medium', 'coco/bbox_mAP_m'), ('AP_large', 'coco/bbox_mAP_l'))
GHM_STATS_PREFIX = 'train/ghm_'


def stretch_schedule(cfg, epochs: int) -> None:
    """Set ``epochs`` and stretch epoch-based schedulers (e.g. cosine) to it."""
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs
    cfg.default_hooks.checkpoint.interval = epochs
    for scheduler in cfg.get('param_scheduler') or []:
        if scheduler.get('end') == old:
            scheduler['end'] = epochs
        if scheduler.get('T_max') == old:
            scheduler['T_max'] = epochs


def new_scalar_means(message_hub, seen: Dict[str, int]) -> Dict[str, float]:
    """Means of the GHM statistics logged since the last call (``seen`` is updated).

    :class:`~mmdet_ghm.engine.hooks.GHMStatsHook` logs ``train/ghm_<loss>/<key>``
    at the logger's interval; this averages what it logged during one epoch.
    """
    means = {}
    for key, buffer in message_hub.log_scalars.items():
        if not key.startswith(GHM_STATS_PREFIX):
            continue
        values = buffer.data[0]
        start = seen.get(key, 0)
        if len(values) > start:
            means[key[len(GHM_STATS_PREFIX):]] = float(values[start:].mean())
        seen[key] = len(values)
    return means


def make_recorder(progress_path: str, tag: str, echo):
    """A hook that records validation metrics, GHM statistics and timings."""
    from mmengine.hooks import Hook

    class StudyRecorder(Hook):
        priority = 'VERY_LOW'

        def __init__(self):
            self.val_curve: List[dict] = []
            self.ghm_stats: List[dict] = []
            self.iter_times: List[float] = []
            self._seen: Dict[str, int] = {}
            self._t_last = None
            self._t0 = time.perf_counter()

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

        def after_val_epoch(self, runner, metrics=None):
            point = {name: float(metrics[key]) for name, key in METRICS
                     if metrics and key in metrics}
            point['epoch'] = runner.epoch
            self.val_curve.append(point)
            echo(f'[{tag}] epoch {runner.epoch}/{runner.max_epochs}: '
                 f'bbox mAP {point.get("bbox_mAP", float("nan")):.3f}')

    return StudyRecorder()


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
    cfg.launcher = 'none'
    runner = Runner.from_cfg(cfg)
    recorder = make_recorder(osp.join(work_dir, 'progress.json'), spec['tag'], echo)
    runner.register_hook(recorder)
    start = time.perf_counter()
    runner.train()
    wall = time.perf_counter() - start
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
        iters=len(recorder.iter_times),
        s_per_iter=sum(times) / max(len(times), 1),
        train_wall_s=wall,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        concurrent_jobs=spec['jobs'],
        data=spec['data'],
        code=spec['code'],
        env=environment(),
    )
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
