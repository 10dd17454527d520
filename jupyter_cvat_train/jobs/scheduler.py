"""One scheduler per runs root: the lease that makes one process the one that starts jobs.

Several processes may work on one runs root: the Jupyter server, ``cvat-train jobs ...``
commands, a notebook. Any of them may enqueue a job (create its folder and its signed
queued record) and read; only the holder of the runs root's scheduler lease starts
queued jobs and fails those that may never start. The lease is an exclusive
``flock`` on ``<runs_root>/scheduler.lock``: the kernel releases it when the holder's
process ends, however it ends (SIGKILL included), and the next process that asks takes
it over. The server asks on every poll, a CLI command when it needs the queue advanced.

The lock file lies in the runs root, which any Contents API user can write: a symlink,
folder, FIFO or hard link in its place is moved aside (``scheduler.lock.bad-<time>``) and a plain
file made; a holder checks on each :meth:`SchedulerLease.acquire` that the file it locked
is still the one at the path (one deleted or replaced means the lease is lost, and asked
for again). What the file says about its holder (:meth:`SchedulerLease.holder`) is only
shown, never trusted.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import stat
import threading
import time
from pathlib import Path

from .runtime import RecordError, now_iso, read_json_record, valid_pid, valid_text, valid_time

LEASE_NAME = "scheduler.lock"
log = logging.getLogger(__name__)


class SchedulerLease:
    """The scheduler lease of ``runs_root`` for this process. ``owner``: a short text
    saying who holds it (e.g. ``"jupyter server"``, ``"cvat-train jobs cancel"``), written
    into the lock file for :meth:`holder`. Thread-safe; not inherited by child processes
    (the descriptor is close-on-exec)."""

    def __init__(self, runs_root: Path | str, owner: str = ""):
        self.path = Path(runs_root) / LEASE_NAME
        self.owner = owner
        self._fd: int | None = None
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        """True if this process holds the lease (as of the last :meth:`acquire`)."""
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lease if no other process holds it, or keep it if we hold it still.
        Never blocks. Returns True if this process holds it now."""
        with self._lock:
            if self._fd is not None:
                if self._still_ours():
                    return True
                log.warning(
                    "cvat-train: the scheduler lease %s was removed or replaced; asking for it again", self.path
                )
                self._close()
            fd = self._open()
            if fd is None:
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held by another process
                os.close(fd)
                return False
            self._fd = fd
            if not self._still_ours():  # replaced between our open and our lock: try again later
                self._close()
                return False
            self._write_holder()
            return True

    def release(self) -> None:
        """Give the lease up (another process may take it at once)."""
        with self._lock:
            self._close()

    def holder(self) -> dict | None:
        """What the lock file says about its holder: ``{pid, owner, acquired_at}`` (fields
        checked; for display only), or None when nobody holds the lease."""
        if self.held:
            return {"pid": os.getpid(), "owner": self.owner}
        fd = self._open(repair=False)
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # we could lock it: nobody holds it
        except OSError:
            pass
        finally:
            os.close(fd)
        try:
            data = read_json_record(self.path, limit=4096)
        except (FileNotFoundError, RecordError):
            return {}
        out = {}
        for key, check in (("pid", valid_pid), ("owner", lambda v: valid_text(v, 100)), ("acquired_at", valid_time)):
            try:
                out[key] = check(data.get(key))
            except ValueError:
                pass
        return out

    # -- internals ----------------------------------------------------------------------
    def _open(self, repair: bool = True) -> int | None:
        """A descriptor of the lock file (a plain file, made if missing), or None when it
        cannot be opened. With ``repair``, anything else at the path is moved aside once."""
        for attempt in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO) or not repair or attempt:
                    if repair:
                        log.warning("cvat-train: cannot open the scheduler lease %s: %s", self.path, e.strerror)
                    return None
                self._move_aside()
                continue
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:  # never a hard link to a file elsewhere
                return fd
            os.close(fd)
            if not repair or attempt:
                return None
            self._move_aside()
        return None

    def _move_aside(self) -> None:
        try:
            st = os.lstat(self.path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                return
            aside = self.path.with_name(f"{LEASE_NAME}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            os.rename(self.path, aside)
            log.warning("cvat-train: %s was not a plain file; moved to %s", self.path, aside.name)
        except OSError:
            pass

    def _still_ours(self) -> bool:
        try:
            st, ours = os.lstat(self.path), os.fstat(self._fd)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino)

    def _write_holder(self) -> None:
        data = json.dumps({"pid": os.getpid(), "owner": self.owner[:100], "acquired_at": now_iso()}).encode()
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError:
            pass  # only for display

    def _close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)  # releases the flock
            finally:
                self._fd = None
