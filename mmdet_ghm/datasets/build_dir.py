"""Building a data set directory once, atomically, under an inter-process lock.

Shared by the generated (:mod:`.synthetic_shapes`) and converted
(:mod:`.tree_crowns`) sets: a set is written into a temporary sibling of its
``data_root`` and renamed into place, so a crash never leaves a half-written
set, and concurrent builders serialise on ``<parent>/.<name>.lock``.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Callable, Iterator


@contextlib.contextmanager
def dataset_lock(data_root: str) -> Iterator[None]:
    """Exclusive inter-process lock on ``<parent>/.<name>.lock``."""
    root = osp.abspath(data_root)
    parent, name = osp.split(root.rstrip(os.sep))
    os.makedirs(parent, exist_ok=True)
    with open(osp.join(parent, f'.{name}.lock'), 'a') as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def build_atomically(data_root: str, meta_file: str, write: Callable[[str], dict]) -> dict:
    """Build a set with ``write(tmp_dir) -> meta`` and move it to ``data_root``.

    ``tmp_dir`` already holds an ``annotations/`` folder. The meta dict is
    written last, as ``meta_file``: its presence marks a complete set. Call
    under :func:`dataset_lock`.

    Raises:
        FileExistsError: ``data_root`` exists and is not an empty directory.
    """
    root = osp.abspath(data_root).rstrip(os.sep)
    if osp.exists(root) and (not osp.isdir(root) or os.listdir(root)):
        raise FileExistsError(
            f'{data_root!r} already exists and is not empty; refusing to '
            'overwrite it. Remove it yourself or choose another data_root.')
    parent, name = osp.split(root)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{name}.tmp-', dir=parent)
    try:
        os.makedirs(osp.join(tmp, 'annotations'))
        meta = write(tmp)
        with open(osp.join(tmp, meta_file), 'w') as f:
            json.dump(meta, f, indent=2, sort_keys=True)
        if osp.isdir(root):
            os.rmdir(root)  # empty (checked above); rename needs it gone
        os.rename(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
