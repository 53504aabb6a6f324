"""A comparison's work dir: what it holds, and the check that keeps two configs apart.

Layout of ``<work_dir>``::

    comparison.json          which config (with --cfg-options) the runs are of
    records/<loss>/seed<k>.json   one record per finished run (the study's schema)
    runs/<loss>/seed<k>/<attempt>/  MMEngine work dirs (checkpoints, logs)
    report.md, curves.png, results.json

``comparison.json`` is written by the first invocation. A later invocation
on the same work dir must compare the same config: the SHA-256 of the
resolved config (after ``--cfg-options``, before any loss is swapped in) must
match, so runs of two configs are never mixed into one report and nothing
of the earlier comparison is overwritten. More losses or seeds of the same
config are welcome: they extend it.
"""
import hashlib
import json
import os
import os.path as osp
from typing import Dict

from mmdet_ghm.study.records import write_json_atomic

IDENTITY = 'comparison.json'


class WorkDirError(ValueError):
    """The work dir holds another comparison (the message names both configs)."""


def config_digest(cfg) -> str:
    """SHA-256 of a resolved config (its dict, keys sorted)."""
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def claim(work_dir: str, identity: Dict) -> None:
    """Write ``identity`` into a new work dir, or check an existing one holds the same config.

    ``identity``: ``config`` (path as given), ``config_sha256``, ``cfg_options``.

    Raises:
        WorkDirError: the work dir holds runs of another config, or runs
            without a ``comparison.json`` (not a comparison's work dir).
    """
    path = osp.join(work_dir, IDENTITY)
    if osp.isfile(path):
        with open(path) as f:
            earlier = json.load(f)
        if earlier.get('config_sha256') != identity['config_sha256']:
            raise WorkDirError(
                f'{work_dir} holds the comparison of another config: {earlier.get("config")!r} '
                f'with --cfg-options {earlier.get("cfg_options") or "none"} '
                f'(sha256 {str(earlier.get("config_sha256"))[:12]}), not {identity["config"]!r} '
                f'with --cfg-options {identity.get("cfg_options") or "none"} '
                f'(sha256 {identity["config_sha256"][:12]}); nothing was changed. Give another '
                '--work-dir.')
        return
    if osp.isdir(work_dir) and any(name in os.listdir(work_dir) for name in ('records', 'runs')):
        raise WorkDirError(f'{work_dir} holds runs but no {IDENTITY}: it is not the work dir of '
                           'a comparison (or was damaged); nothing was changed. Give another '
                           '--work-dir.')
    os.makedirs(work_dir, exist_ok=True)
    write_json_atomic(path, identity)
