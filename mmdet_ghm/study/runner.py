"""Run a grid of variants x seeds, several at a time, resumably.

Each run trains in its own process (:mod:`mmdet_ghm.study.child`) with one
CPU thread by default. A run whose record exists is never redone. A run that
was interrupted (an attempt directory without a record) goes on from the
last checkpoint of its latest attempt with the same spec, in a new attempt
directory, so nothing an earlier attempt wrote is overwritten; the record
notes the epochs it resumed at. Right before a run starts, the runner looks
for its record again and takes the run's lock (:mod:`.run_lock`), so two
runners on one records folder never train the same run. A child that writes
no progress for ``stall_timeout`` seconds is killed and reported as failed;
the other runs go on.
"""
import datetime
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from .data_sets import (build_data_set, data_settings, describe_data, portable,
                        relative_paths, run_overrides)
from .records import code_state, read_record, record_path
from .run_lock import RunLock, try_lock
from .variants import CONFIG_DATA, Variant


class StudyError(Exception):
    """A problem the user can fix (bad data root, broken set-up); one clear message."""


@dataclass
class Run:
    """One (variant, seed) of the grid and where its record goes."""

    variant: Variant
    seed: int
    record: str
    done: bool = False
    proc: Optional[subprocess.Popen] = None
    attempt_dir: Optional[str] = None
    lock: Optional[RunLock] = None
    started: float = 0.0
    result: Optional[dict] = field(default=None, repr=False)

    @property
    def tag(self) -> str:
        return f'{self.variant.name} s{self.seed}'

    @property
    def weight(self) -> float:
        """Relative amount of work (epochs), for the ETA."""
        return float(self.variant.epochs or 30)


def plan(variants: Sequence[Variant], seeds: Sequence[int], records_dir: str) -> List[Run]:
    """The grid in order (seed-major, so early batches cover every variant)."""
    runs = []
    for seed in seeds:
        for variant in variants:
            path = record_path(records_dir, variant.name, seed)
            runs.append(Run(variant, seed, path, done=osp.isfile(path)))
    return runs


def prepare_data(runs: Sequence[Run], quick: bool, data_dir: Optional[str], echo) -> Dict:
    """Build (or check) every data set the pending runs need.

    Returns:
        dict: data root -> the record's ``data`` of that set (:func:`describe_data`).

    Raises:
        StudyError: a data root holds another set, is incomplete, or cannot
            be written or fetched.
    """
    described = {}
    for run in runs:
        if run.variant.dataset == CONFIG_DATA:  # the config's own data: the caller's
            continue
        set_id, root, params = data_settings(run.variant, quick, data_dir)
        if root in described or run.done:
            continue
        echo(f'data set {set_id} in {root} (built on first use) ...')
        try:
            meta = build_data_set(run.variant.dataset, root, params)
            described[root] = describe_data(set_id, root, params, meta.get('stats'))
        except (ValueError, FileExistsError, OSError) as error:
            raise StudyError(f'cannot prepare the data set {root}: {error}') from None
    return described


def new_attempt_dir(parent: str) -> str:
    """A fresh ``<parent>/<timestamp>[_n]`` directory."""
    os.makedirs(parent, exist_ok=True)
    stamp = datetime.datetime.now().strftime('%Y%m%d_%H%M%S')
    for n in range(1000):
        path = osp.join(parent, stamp if n == 0 else f'{stamp}_{n}')
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise StudyError(f'could not create a new attempt directory in {parent!r}')


#: Spec entries that must be equal for an attempt to go on from another's checkpoint.
SAME_RUN_KEYS = ('variant', 'seed', 'config_rel', 'overrides', 'epochs')


def resume_checkpoint(parent: str, spec: dict) -> Optional[str]:
    """The last checkpoint of the latest earlier attempt in ``parent`` with ``spec``'s run.

    An attempt qualifies when its ``spec.json`` agrees with ``spec`` on
    :data:`SAME_RUN_KEYS` and MMEngine's ``last_checkpoint`` names a file
    that exists. None when no attempt qualifies.
    """
    if not osp.isdir(parent):
        return None
    for name in sorted(os.listdir(parent), reverse=True):
        attempt = osp.join(parent, name)
        try:
            with open(osp.join(attempt, 'spec.json')) as f:
                earlier = json.load(f)
            with open(osp.join(attempt, 'last_checkpoint')) as f:
                checkpoint = f.read().strip()
        except (OSError, ValueError):
            continue
        if not osp.isabs(checkpoint):
            checkpoint = osp.join(attempt, osp.basename(checkpoint))
        same = all(earlier.get(key) == spec.get(key) for key in SAME_RUN_KEYS)
        if same and osp.isfile(checkpoint):
            return osp.abspath(checkpoint)
    return None


def child_command(spec_path: str) -> List[str]:
    """The command that trains one run."""
    return [sys.executable, '-m', 'mmdet_ghm.study.child', spec_path]


def last_activity(run: Run) -> float:
    """Latest write to the run's progress or log file (or its start)."""
    times = [run.started]
    for name in ('progress.json', 'train.log'):
        try:
            times.append(os.path.getmtime(osp.join(run.attempt_dir, name)))
        except OSError:
            pass
    return max(times)


def progress_fraction(run: Run) -> float:
    """Share of a running run's iterations done, from its ``progress.json``."""
    try:
        with open(osp.join(run.attempt_dir, 'progress.json')) as f:
            progress = json.load(f)
        return progress['iter'] / max(progress['max_iters'], 1)
    except (OSError, ValueError, KeyError):
        return 0.0


def kill(proc: subprocess.Popen) -> None:
    """End a child and everything it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@dataclass
class GridOptions:
    """How :func:`run_grid` runs the children."""

    root: str
    work_dir: str
    jobs: int = 2
    threads: int = 1
    quick: bool = False
    #: train every run this many epochs (default: the variant's; 1 with ``quick``)
    epochs: Optional[int] = None
    data_dir: Optional[str] = None
    stall_timeout: float = 900.0
    status_every: float = 60.0
    command: Callable[[str], List[str]] = child_command
    #: the checkout whose commit the records give (default: ``root``)
    code_root: Optional[str] = None
    #: the record's ``data`` of runs on their config's own data (``CONFIG_DATA``)
    config_data: Optional[Dict] = None
    #: where that data lives (absolute): records write it ``data/<id>/``
    config_data_root: Optional[str] = None
    #: MMEngine's launcher in the training process (``none`` or ``pytorch``)
    launcher: str = 'none'
    #: what the progress line calls the grid (``[study] 2/9 runs done; ...``)
    label: str = 'study'


def _claim(run: Run, echo) -> bool:
    """Take ``run``'s lock unless it has a record or another runner has it."""
    if osp.isfile(run.record):
        run.done = True
        echo(f'[{run.tag}] recorded meanwhile (by another runner): skipped')
        return False
    held = try_lock(run.record, echo)
    if not isinstance(held, RunLock):
        who = held.describe() if held is not None else 'another runner'
        echo(f'[{run.tag}] being trained by {who}: skipped')
        return False
    if osp.isfile(run.record):  # finished between our look and the lock
        held.release()
        run.done = True
        echo(f'[{run.tag}] recorded meanwhile (by another runner): skipped')
        return False
    run.lock = held
    return True


def _start(run: Run, options: GridOptions, data: Dict, code: Dict, env: Dict, echo) -> None:
    parent = osp.join(options.work_dir, run.variant.name, f'seed{run.seed}')
    epochs = options.epochs or (1 if options.quick else run.variant.epochs)
    if run.variant.dataset == CONFIG_DATA:
        overrides = dict(run.variant.overrides)
        record_overrides = relative_paths(overrides, options.root)
        if options.config_data_root:
            record_overrides = portable(record_overrides, options.config_data_root,
                                        options.config_data['id'])
        run_data = options.config_data
    else:
        set_id, root, params = data_settings(run.variant, options.quick, options.data_dir)
        overrides = run_overrides(run.variant.dataset, root, params, options.quick)
        overrides.update(run.variant.overrides)
        record_overrides = portable(overrides, root, set_id)
        run_data = data[root]
    spec = dict(
        tag=run.tag, variant=run.variant.describe(), seed=run.seed,
        config=osp.join(options.root, run.variant.config), config_rel=run.variant.config,
        overrides=overrides, record_overrides=record_overrides,
        epochs=epochs, record_path=osp.abspath(run.record), threads=options.threads,
        jobs=options.jobs, data=run_data, code=code, launcher=options.launcher)
    spec['resume_from'] = resume_checkpoint(parent, spec)
    if spec['resume_from']:
        echo(f'[{run.tag}] resuming from {spec["resume_from"]}')
    elif osp.isdir(parent) and os.listdir(parent):
        echo(f'[{run.tag}] restarting: an earlier attempt in {parent} left no record '
             'and no checkpoint of this run')
    run.attempt_dir = spec['work_dir'] = new_attempt_dir(parent)
    spec_path = osp.join(run.attempt_dir, 'spec.json')
    with open(spec_path, 'w') as f:
        json.dump(spec, f, indent=1)
    echo(f'[{run.tag}] start ({run.variant.label}); log: {run.attempt_dir}/train.log')
    run.started = time.time()
    run.proc = subprocess.Popen(options.command(spec_path), env=env, cwd=options.root,
                                start_new_session=True, pass_fds=(run.lock.fd,))


def _release(run: Run) -> None:
    if run.lock is not None:
        run.lock.release()
        run.lock = None


def _finish(run: Run, failed: List[Run], echo) -> None:
    code = run.proc.returncode
    run.proc = None
    _release(run)
    if code == 0 and osp.isfile(run.record):
        run.done = True
        run.result = read_record(run.record)
        echo(f'[{run.tag}] done in {(time.time() - run.started) / 60:.1f} min: '
             f'bbox mAP {run.result["bbox_mAP"]:.3f}')
        return
    failed.append(run)
    echo(f'[{run.tag}] FAILED (exit code {code}); last lines of {run.attempt_dir}/train.log:')
    try:
        with open(osp.join(run.attempt_dir, 'train.log'), errors='replace') as f:
            echo(''.join(f.readlines()[-20:]).rstrip())
    except OSError:
        echo('  (no log)')


def status_line(runs: Sequence[Run], running: Sequence[Run], todo_weight: float,
                elapsed: float, label: str = 'study') -> str:
    """``k/n runs done, running: ..., ETA`` for the runs of this invocation."""
    done_now = sum(r.weight for r in runs if r.done and r.started) + sum(
        r.weight * progress_fraction(r) for r in running)
    finished = sum(1 for r in runs if r.done)
    parts = [f'{finished}/{len(runs)} runs done']
    if running:
        parts.append('running: ' + ', '.join(
            f'{r.tag} {100 * progress_fraction(r):.0f}%' for r in running))
    eta = ''
    if done_now > 0:
        eta = f', ETA {(todo_weight - done_now) * elapsed / done_now / 60:.0f} min'
    return f'[{label}] {"; ".join(parts)}; elapsed {elapsed / 60:.1f} min{eta}'


def run_grid(runs: Sequence[Run], options: GridOptions, echo=print) -> List[Run]:
    """Train every run that has no record; return the failed runs.

    Raises:
        StudyError: a data set cannot be prepared.
    """
    pending = [r for r in runs if not r.done]
    skipped = len(runs) - len(pending)
    if skipped:
        echo(f'{skipped} run(s) already recorded: skipped')
    if not pending:
        return []
    data = prepare_data(pending, options.quick, options.data_dir, echo)
    code = code_state(options.code_root or options.root)
    if code.get('dirty'):
        echo('warning: mmdet_ghm/, configs/ or tools/ have uncommitted changes; the records '
             'will say so (dirty: true)')
    env = dict(os.environ)
    env['PYTHONPATH'] = options.root + os.pathsep + env.get('PYTHONPATH', '')
    env['OMP_NUM_THREADS'] = str(options.threads)
    todo_weight = sum(r.weight for r in pending)
    echo(f'training {len(pending)} run(s), {options.jobs} at a time, '
         f'{options.threads} thread(s) each')
    queue, running, failed = list(pending), [], []
    start = last_status = time.time()
    try:
        while queue or running:
            while queue and len(running) < options.jobs:
                run = queue.pop(0)
                if _claim(run, echo):
                    _start(run, options, data, code, env, echo)
                    running.append(run)
            time.sleep(0.5)
            now = time.time()
            for run in list(running):
                if run.proc.poll() is None and now - last_activity(run) > options.stall_timeout:
                    echo(f'[{run.tag}] no progress for {options.stall_timeout:.0f} s: killed')
                    kill(run.proc)
                if run.proc.poll() is not None:
                    running.remove(run)
                    _finish(run, failed, echo)
            if now - last_status >= options.status_every and (queue or running):
                last_status = now
                echo(status_line(pending, running, todo_weight, now - start, options.label))
    finally:
        for run in running:  # interrupted: leave no orphan behind
            kill(run.proc)
            _release(run)
    return failed
