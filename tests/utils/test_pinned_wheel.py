"""A pinned wheel: verified by SHA-256, downloaded once, never kept when wrong."""
import hashlib
import os

import pytest

from mmdet_ghm.utils import pinned_wheel
from mmdet_ghm.utils.pinned_wheel import PinnedWheel

CONTENT = b'not really a zip, but bytes with a known hash'
SHA = hashlib.sha256(CONTENT).hexdigest()
WHEEL = PinnedWheel('some-data', '1.2.3', 'some_data-1.2.3-py3-none-any.whl', SHA,
                    what='the some-data wheel')


def fake_pip(calls, name=WHEEL.filename, content=CONTENT):
    def run(cmd, check):
        calls.append(cmd)
        with open(os.path.join(cmd[cmd.index('-d') + 1], name), 'wb') as f:
            f.write(content)
    return run


def test_verify_names_both_hashes_and_the_wheel(tmp_path):
    path = tmp_path / WHEEL.filename
    path.write_bytes(CONTENT)
    assert WHEEL.verify(str(path)) == str(path)
    path.write_bytes(CONTENT + b'!')
    with pytest.raises(ValueError, match=f'has sha256 [0-9a-f]{{64}}, expected {SHA}; '
                                         'not the some-data wheel'):
        WHEEL.verify(str(path))


def test_fetch_downloads_once_with_the_pinned_version(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pinned_wheel.subprocess, 'run', fake_pip(calls))
    cache = tmp_path / 'cache'
    assert WHEEL.fetch(str(cache)) == str(cache / WHEEL.filename)
    assert WHEEL.fetch(str(cache)) == str(cache / WHEEL.filename)
    assert len(calls) == 1 and 'some-data==1.2.3' in calls[0] and '--no-deps' in calls[0]
    assert os.listdir(cache) == [WHEEL.filename]


@pytest.mark.parametrize('name, content, error', [
    ('other-1.0-py3-none-any.whl', CONTENT, FileNotFoundError),
    (WHEEL.filename, b'tampered', ValueError)])
def test_a_wrong_download_leaves_the_cache_empty(tmp_path, monkeypatch, name, content, error):
    monkeypatch.setattr(pinned_wheel.subprocess, 'run', fake_pip([], name, content))
    with pytest.raises(error):
        WHEEL.fetch(str(tmp_path))
    assert os.listdir(tmp_path) == []
