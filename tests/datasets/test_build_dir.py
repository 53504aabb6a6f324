"""Building a data set directory atomically, under a lock."""
import json
import os

import pytest

from mmdet_ghm.datasets.build_dir import build_atomically, file_sha256


def test_a_set_appears_complete_or_not_at_all(tmp_path):
    root = tmp_path / 'set'

    def write(tmp):
        assert os.path.isdir(os.path.join(tmp, 'annotations'))
        with open(os.path.join(tmp, 'annotations', 'a.json'), 'w') as f:
            f.write('{}')
        return dict(n=1)

    assert build_atomically(str(root), 'meta.json', write) == dict(n=1)
    assert json.loads((root / 'meta.json').read_text()) == dict(n=1)
    assert sorted(os.listdir(tmp_path)) == ['set']

    def broken(tmp):
        raise RuntimeError('disk full')

    with pytest.raises(RuntimeError, match='disk full'):
        build_atomically(str(tmp_path / 'other'), 'meta.json', broken)
    assert sorted(os.listdir(tmp_path)) == ['set']  # no half-written set, no temporary left
    with pytest.raises(FileExistsError, match='refusing to overwrite'):
        build_atomically(str(root), 'meta.json', write)


def test_file_sha256(tmp_path):
    path = tmp_path / 'x'
    path.write_bytes(b'abc')
    assert file_sha256(str(path)) == (
        'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
