"""Reading a job's log files from a byte offset, safely.

job.log and events.jsonl live in the runs root, which clients can write to: they are
opened without following a symlink and read only when they are regular files (a planted
link, FIFO or device reads as empty). Used by the server's log tailing
(:mod:`jupyter_cvat_train.jobs.tail`) and by the DDP launcher, which follows its ranks'
event files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_CHUNK = 1 << 20  # bytes read per call, so a huge log is sent in pieces


def open_regular(path: Path):
    """``path`` opened for binary reading, or None when it is missing, a symlink, or not
    a regular file (a FIFO is never opened in blocking mode, so it cannot hang us)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def read_from(path: Path, offset: int, *, whole_lines: bool = True, max_bytes: int = MAX_CHUNK) -> tuple[bytes, int]:
    """Bytes of ``path`` from ``offset`` (at most ``max_bytes``) and the next offset.

    With ``whole_lines`` the data ends at the last line end (``\n``, or ``\r`` as progress
    bars such as tqdm rewrite their line), nothing if none yet; a missing file reads as empty. An offset past the end (file truncated) restarts at 0.
    """
    f = open_regular(path)
    if f is None:
        return b"", offset
    with f:
        size = f.seek(0, 2)
        if offset > size:
            offset = 0
        f.seek(offset)
        data = f.read(max_bytes)
    if whole_lines and len(data) > 0:
        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
        if cut < 0:
            # a line longer than max_bytes is sent in pieces; a short partial one waits
            return (data, offset + len(data)) if len(data) >= max_bytes else (b"", offset)
        data = data[: cut + 1]
    return data, offset + len(data)
