"""A per-run lock, so that two runners on one records folder never train the same run.

The lock is the file ``<record>.lock`` beside the run's record, held with
``flock`` by the runner and by the training process it starts (the child
inherits the descriptor), and holding the owner's PID and host as JSON for
the messages. The kernel drops the ``flock`` when every holder has exited,
however it exited: a lock file whose ``flock`` is free is stale (its owner
died), and the next runner takes it over and says whose it was. A runner
killed while its training child goes on leaves the lock held by the child.
"""
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Optional, Union


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or held) a lock, as written in its file."""

    pid: int
    host: str
    since: float

    def describe(self) -> str:
        started = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.since))
        return f'PID {self.pid} on {self.host} (since {started})'


@dataclass
class RunLock:
    """A held lock: its open descriptor (pass it to the child) and its path."""

    fd: int
    path: str

    def release(self) -> None:
        """Remove the lock file and drop the lock (the child must have ended)."""
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)


def lock_path(record: str) -> str:
    """The lock file of the run whose record is ``record``."""
    return record + '.lock'


def _read_owner(fd: int) -> Optional[LockOwner]:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode(errors='replace')
    try:
        data = json.loads(text)
        return LockOwner(int(data['pid']), str(data['host']), float(data['since']))
    except (ValueError, KeyError, TypeError):
        return None  # empty (new file) or cut short by a killed writer


def try_lock(record: str, echo=print) -> Union[RunLock, LockOwner, None]:
    """Take the lock of the run whose record is ``record``.

    Returns:
        The :class:`RunLock` if it is now ours; else who holds it (a
        :class:`LockOwner`, or None when its file does not say yet).
    """
    path = lock_path(record)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            return owner
        try:
            same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(fd)  # the holder released (removed) it after our open: try again
    previous = _read_owner(fd)
    if previous is not None:
        echo(f'taking over the stale lock {path} of {previous.describe()}: that process is '
             'gone')
    me = dict(pid=os.getpid(), host=socket.gethostname(), since=time.time())
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(me).encode())
    os.fsync(fd)
    return RunLock(fd, path)
