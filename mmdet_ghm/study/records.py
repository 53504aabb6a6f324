"""One JSON record per finished training run, and where the runs came from.

A record is written once, atomically, when a run has finished; its presence
is what makes the runner skip that run on the next invocation. Records are
small (no loss curves) so that they can be committed and the study extended
later, on another machine, instead of repeated.
"""
import datetime
import json
import os
import os.path as osp
import platform
import subprocess
from typing import Dict, List, Optional

#: Bumped when a record's layout changes incompatibly.
RECORD_SCHEMA = 1


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


def environment() -> Dict:
    """Library versions and the machine (call in the training process)."""
    import mmcv
    import mmdet
    import mmengine
    import numpy
    import torch

    import mmdet_ghm
    return dict(
        python=platform.python_version(), torch=torch.__version__, mmcv=mmcv.__version__,
        mmdet=mmdet.__version__, mmengine=mmengine.__version__, numpy=numpy.__version__,
        mmdet_ghm_path=osp.dirname(mmdet_ghm.__file__),
        machine=dict(system=platform.system(), arch=platform.machine(), cpu=_cpu_model(),
                     cores=os.cpu_count(), torch_threads=torch.get_num_threads()),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
