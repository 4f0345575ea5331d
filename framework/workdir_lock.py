"""One run per workdir: WORKDIR/run.lock, held by process 0 of the job while it trains.

The lock is an exclusive `flock` on the file, so the operating system releases it when the
holder dies (even by SIGKILL); the file's content (host, pid, start time) names the holder.
A second run on the same workdir refuses with that name. A lock file left by a process that
is gone is taken over with a warning. Every process of a multi-process job learns process
0's answer, so the whole job refuses or starts together.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time

import jax
import numpy as np

from framework.registry import ConfigError

log = logging.getLogger(__name__)

LOCK_FILE = "run.lock"


class WorkdirInUseError(ConfigError):
    """Another run holds the workdir (the message names its host, pid and start time)."""


class WorkdirLock:
    """Context manager: holds WORKDIR/run.lock (process 0) for the duration of a run."""

    def __init__(self, workdir: str):
        """Remembers the workdir; nothing is locked before `acquire` / `__enter__`."""
        self.path = os.path.join(workdir, LOCK_FILE)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock (process 0; the others wait for its answer).

        Raises WorkdirInUseError on every process when another run holds it.
        """
        error = self._try_acquire() if jax.process_index() == 0 else None
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            refused = multihost_utils.broadcast_one_to_all(np.int32(error is not None))
            if int(refused) and error is None:
                error = "process 0 found the workdir in use by another run (see its error)"
        if error is not None:
            raise WorkdirInUseError(error)

    def _try_acquire(self) -> str | None:
        """Returns None when locked, else the message naming the holder."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe(_read(fd))
                os.close(fd)
                return (f"--workdir {os.path.dirname(self.path)} is in use by another run "
                        f"({holder}; lock file {self.path}). Wait for it to finish or stop "
                        "it, or use another --workdir.")
            # The file may have been removed by its previous holder between open and flock.
            if os.path.exists(self.path) and os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                break
            os.close(fd)
        previous = _read(fd)
        if previous:
            log.warning("Taking over the lock %s left by a run that is gone (%s).", self.path,
                        _describe(previous))
        mine = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
                "processes": jax.process_count()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(mine).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return None

    def release(self) -> None:
        """Removes the lock file and unlocks it (process 0); a no-op when not held."""
        if self._fd is None:
            return
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read(fd: int) -> dict:
    data = os.pread(fd, 4096, 0)
    try:
        return json.loads(data) if data else {}
    except ValueError:
        return {"unreadable": data[:80].decode(errors="replace")}


def _describe(holder: dict) -> str:
    if "pid" not in holder:
        return "holder unknown"
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.get("since", 0)))
    processes = holder.get("processes", 1)
    job = f", a job of {processes} processes" if processes > 1 else ""
    return f"host {holder.get('host')}, pid {holder['pid']}, since {since}{job}"
