"""One sync at a time per (workspace folder, storage location) pair.

The pair is keyed by the workspace's real path and the storage's canonical URI
(:attr:`.location.StorageLocation.uri`, plus the normalized endpoint), so other
spellings of the same place (letter case of the scheme, a trailing slash, a symlink)
take the same lock.

A lock file per pair lives in ``sync-locks`` in the cache folder
(:func:`jupyter_cvat_train.fileio.cache_root`) and is held with ``fcntl.flock``: the kernel
releases it when the holder exits, however it exits, so a crash never leaves a stale
lock. The holder writes its pid, start time and direction into the file so that a
second sync can say who holds it. The second sync waits up to ``timeout`` seconds,
then is refused with a :class:`.backends.StorageError` naming the holder — never
silently dropped. (POSIX only: on systems without ``fcntl`` no lock is taken.)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from ..fileio import cache_root
from .backends import StorageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


def lock_dir() -> Path:
    """Folder of the lock files (created on demand)."""
    return cache_root() / "sync-locks"


class SyncLock:
    """Context manager holding the lock of ``(workspace, storage_id)``.

    ``storage_id`` identifies the location (URI plus endpoint). ``timeout``: seconds
    to wait for another holder (0 = refuse at once). Raises StorageError on refusal.
    """

    def __init__(self, workspace: str, storage_id: str, *, timeout: float = 0.0, direction: str = ""):
        self.workspace = os.path.realpath(workspace)
        self.storage_id = storage_id
        self.timeout = max(0.0, float(timeout))
        self.direction = direction
        digest = hashlib.sha256(f"{self.workspace}\0{storage_id}".encode()).hexdigest()[:32]
        self.path = lock_dir() / f"{digest}.lock"
        self._fd: int | None = None

    def __enter__(self) -> SyncLock:
        if fcntl is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self._holder(fd)
                    os.close(fd)
                    waited = f" after waiting {self.timeout:g} s" if self.timeout else ""
                    raise StorageError(
                        f"another sync of {self.workspace} <-> {self.storage_id.split(chr(0))[0]} is running{waited} "
                        f"({holder}); wait for it to finish, or retry with a longer wait (--wait SECONDS)"
                    ) from None
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        os.ftruncate(fd, 0)
        info = {
            "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "direction": self.direction,
        }
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            return f"pid {info.get('pid', '?')}, {info.get('direction', '')} since {info.get('since', '?')}"
        except (OSError, ValueError):
            return "holder unknown"

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
