"""One JSON record per finished training run, and where the runs came from.

A record is written once, atomically, when a run has finished; its presence
is what makes the runner skip that run on the next invocation. Records are
small (no loss curves) so that they can be committed and the study extended
later, on another machine, instead of repeated.

A GHM run's record has ``ghm_stats`` (per epoch, the means of the statistics
``GHMStatsHook`` logged) and ``ghm_stats_sampling``, which says what each
logged value covers (:func:`stats_sampling`): ``'window'``, every training
iteration of its logging window, pooled; ``'mixed'``, a run resumed across
the change, with epochs of both kinds. Records written before the field
existed have none: their hook logged the one batch of each logging
iteration (``'last-batch'``).
"""
import datetime
import json
import os
import os.path as osp
import platform
import subprocess
from typing import Dict, List, Optional

from .data_sets import build_data_set, describe_data, portable

#: Bumped when a record's layout changes incompatibly. 2: no absolute paths
#: (data sets by id and annotation hashes; see :func:`migrate_record`).
RECORD_SCHEMA = 2

#: The record field that says how ``ghm_stats`` were sampled, and its values.
STATS_SAMPLING_FIELD = 'ghm_stats_sampling'
WINDOW_SAMPLING = 'window'         # GHMStatsHook.SAMPLING: every iteration of each window
LAST_BATCH_SAMPLING = 'last-batch'  # older records (no field): one batch per logging iteration
MIXED_SAMPLING = 'mixed'           # resumed across the change: epochs of both kinds
STATS_SAMPLINGS = (WINDOW_SAMPLING, MIXED_SAMPLING, LAST_BATCH_SAMPLING)


def stats_sampling(record: dict) -> str:
    """How the record's ``ghm_stats`` were sampled (one of :data:`STATS_SAMPLINGS`).

    ``'last-batch'`` for a record without the field (written before it
    existed). ``ValueError`` naming the value when it is none of these.
    """
    value = record.get(STATS_SAMPLING_FIELD, LAST_BATCH_SAMPLING)
    if value not in STATS_SAMPLINGS:
        raise ValueError(f'{STATS_SAMPLING_FIELD} must be one of {STATS_SAMPLINGS}, got '
                         f'{value!r} (record of {record.get("variant")} seed '
                         f'{record.get("seed")})')
    return value


def combine_sampling(earlier: Optional[str], current: Optional[str]) -> Optional[str]:
    """The sampling of a run's statistics when epochs sampled ``current`` follow
    epochs sampled ``earlier`` (``None``: no statistics)."""
    if earlier is None or earlier == current:
        return current
    if current is None:
        return earlier
    return MIXED_SAMPLING


def record_path(records_dir: str, variant: str, seed: int) -> str:
    """``<records_dir>/<variant>/seed<k>.json``."""
    return osp.join(records_dir, variant, f'seed{seed}.json')


def write_json_atomic(path: str, data) -> None:
    """Write ``data`` as JSON through a temporary file and a rename."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write('\n')
    os.replace(tmp, path)


def read_record(path: str) -> dict:
    """A record; ``ValueError`` naming the file when it is not one."""
    with open(path) as f:
        try:
            record = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f'{path} is not valid JSON: {error}') from None
    missing = [k for k in ('variant', 'seed', 'bbox_mAP', 'val_curve') if k not in record]
    if missing:
        raise ValueError(f'{path} is not a study record (missing {missing})')
    return record


def load_records(records_dir: str) -> List[dict]:
    """Every record under ``records_dir``, sorted by variant and seed."""
    records = []
    if not osp.isdir(records_dir):
        return records
    for variant in sorted(os.listdir(records_dir)):
        folder = osp.join(records_dir, variant)
        if not osp.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.endswith('.json'):
                record = read_record(osp.join(folder, name))
                record['record'] = osp.join(variant, name)
                records.append(record)
    return sorted(records, key=lambda r: (r['variant'], r['seed']))


def _git(root: str, *args: str) -> Optional[str]:
    try:
        out = subprocess.run(['git', '-C', root, *args], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_state(root: str) -> Dict:
    """Commit of ``root`` and whether the code a run depends on has local changes."""
    commit = _git(root, 'rev-parse', 'HEAD')
    status = _git(root, 'status', '--porcelain', '--', 'mmdet_ghm', 'configs', 'tools')
    return dict(commit=commit, dirty=bool(status) if status is not None else None)


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def _same_dir(a: str, b: str) -> bool:
    return osp.isdir(a) and osp.isdir(b) and osp.samefile(a, b)


def environment(root: Optional[str] = None) -> Dict:
    """Library versions and the machine (call in the training process).

    ``mmdet_ghm_from_checkout`` says whether the package was imported from the
    checkout at ``root`` (default: the working directory, where the runner
    starts its children), whose commit the record's ``code`` gives.
    """
    import mmcv
    import mmdet
    import mmengine
    import numpy
    import torch

    import mmdet_ghm
    return dict(
        python=platform.python_version(), torch=torch.__version__, mmcv=mmcv.__version__,
        mmdet=mmdet.__version__, mmengine=mmengine.__version__, numpy=numpy.__version__,
        mmdet_ghm_from_checkout=_same_dir(osp.dirname(mmdet_ghm.__file__),
                                          osp.join(root or os.getcwd(), 'mmdet_ghm')),
        machine=dict(system=platform.system(), arch=platform.machine(), cpu=_cpu_model(),
                     cores=os.cpu_count(), torch_threads=torch.get_num_threads()),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))


def migrate_record(record: dict, data_dir: str) -> dict:
    """A schema-1 record made portable (schema 2); schema-2 records come back as they are.

    Schema 1 kept the machine's paths: ``data.data_root`` (absolute, also in
    the data-location overrides) and ``env.mmdet_ghm_path``. The set is now
    named by its id (the root's last component, as
    :func:`~mmdet_ghm.study.data_sets.data_settings` names sets) and
    the SHA-256 of its annotation files, read from ``<data_dir>/<id>/`` (built
    there from the recorded generator parameters if missing) after checking
    that the set has the recorded stats; the overrides say
    ``data/<id>/``; ``env.mmdet_ghm_from_checkout`` replaces the package path
    (a path outside ``site-packages`` was a checkout).

    Raises:
        ValueError: the set in ``data_dir`` has other parameters or stats.
    """
    if record.get('schema', 1) >= 2:
        return record
    record = json.loads(json.dumps(record))
    old = record['data']
    root = old['data_root'] if old['data_root'].endswith('/') else old['data_root'] + '/'
    set_id = osp.basename(root.rstrip('/'))
    local = osp.join(osp.abspath(data_dir), set_id) + '/'
    # schema-1 records are of the synthetic set, which is deterministic: a
    # missing set is generated again from the recorded parameters
    stats = build_data_set('shapes', local, old.get('generator_cfg') or {}).get('stats')
    if stats != old.get('stats'):
        raise ValueError(f'cannot migrate the record of {record["variant"]} seed '
                         f'{record["seed"]}: the set in {local} has other stats than the '
                         f'recorded set {set_id!r}')
    record['data'] = describe_data(set_id, local, old.get('generator_cfg'), old.get('stats'))
    record['overrides'] = portable(record['overrides'], root, set_id)
    env = record.get('env') or {}
    path = env.pop('mmdet_ghm_path', None)
    if path is not None:
        env['mmdet_ghm_from_checkout'] = 'site-packages' not in path.split(os.sep)
    record['schema'] = RECORD_SCHEMA
    return record
