"""Tests of the per-run lock: one holder, stale locks taken over, children keep it."""
import json
import os
import socket
import subprocess
import sys

from mmdet_ghm.study.run_lock import LockOwner, RunLock, lock_path, try_lock


def test_second_taker_gets_the_owner_until_release(tmp_path):
    record = str(tmp_path / 'fl' / 'seed0.json')
    lock = try_lock(record, echo=None)
    assert isinstance(lock, RunLock) and lock.path == lock_path(record)
    held = try_lock(record, echo=None)  # another open file description: refused
    assert held == LockOwner(os.getpid(), socket.gethostname(), held.since)
    assert f'PID {os.getpid()} on {socket.gethostname()}' in held.describe()
    lock.release()
    assert not os.path.exists(lock_path(record))
    again = try_lock(record, echo=None)
    assert isinstance(again, RunLock)
    again.release()


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_message(tmp_path):
    record = str(tmp_path / 'seed0.json')
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    with open(lock_path(record), 'w') as f:
        json.dump(dict(pid=pid, host=socket.gethostname(), since=0.0), f)
    messages = []
    lock = try_lock(record, echo=messages.append)
    assert isinstance(lock, RunLock)
    assert len(messages) == 1 and f'stale lock {lock_path(record)} of PID {pid}' in messages[0]
    with open(lock_path(record)) as f:
        assert json.load(f)['pid'] == os.getpid()
    lock.release()


def test_a_child_holding_the_descriptor_keeps_the_lock(tmp_path):
    record = str(tmp_path / 'seed0.json')
    lock = try_lock(record, echo=None)
    child = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],
                             stdin=subprocess.PIPE, pass_fds=(lock.fd,))
    os.close(lock.fd)  # the runner is gone; its child trains on
    try:
        assert isinstance(try_lock(record, echo=None), LockOwner)
    finally:
        child.communicate(b'')
    messages = []
    taken = try_lock(record, echo=messages.append)  # every holder has exited: stale
    assert isinstance(taken, RunLock) and 'stale lock' in messages[0]
    taken.release()
