"""Files on the local disk: atomic writes and the cache folder.

The bottom of the package: it imports nothing of the project, so every layer (datasets,
models, training, annotate, storage, jobs and the job runtime) may use it.

An atomic write writes a new temp file in the destination's own folder and then renames
it onto the destination, so a reader sees the old file or the new one, never a partial
one, and an interrupted write leaves the destination as it was (the temp file is
removed on any error). The temp file:

- has a short name of fixed length (``.cvat-train-<16 hex>.tmp``), whatever the
  destination's name, so a destination with a 255-byte name still gets one;
- is created exclusively (``O_EXCL``, ``O_NOFOLLOW``) under a random name, so a file or
  symlink planted in the folder is never written through;
- gets ``mode`` (default: what ``open()`` would give, 0666 less the umask).
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path

TEMP_PREFIX = ".cvat-train-"
TEMP_SUFFIX = ".tmp"


def cache_root() -> Path:
    """The cache folder: ``$CVAT_TRAIN_CACHE`` or ``~/.cache/jupyter_cvat_train``. Not
    created here; callers create the sub-folder they use."""
    env = os.environ.get("CVAT_TRAIN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "jupyter_cvat_train"


def temp_name() -> str:
    """A new temp file name (no folder): :data:`TEMP_PREFIX`, 16 random hex digits,
    :data:`TEMP_SUFFIX` (32 bytes)."""
    return f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"


def _create_temp(folder: Path, mode: int | None, make_name: Callable[[], str]) -> Path:
    """Create a new empty temp file in ``folder`` (exclusively, not through a link) and
    return its path."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = folder / make_name()
        try:
            fd = os.open(tmp, flags, 0o600 if mode is not None else 0o666)
        except FileExistsError:
            continue
        try:
            if mode is not None:
                os.fchmod(fd, mode)
        except BaseException:
            os.unlink(tmp)
            raise
        finally:
            os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(folder))


def atomic_write_with(
    path: str | os.PathLike,
    write: Callable[[Path], object],
    *,
    mode: int | None = None,
    fsync: bool = False,
    publish: Callable[[Path, Path], object] = os.replace,
    make_name: Callable[[], str] = temp_name,
) -> Path:
    """Write ``path`` atomically through ``write(tmp)``, for writers that want a path
    (``torch.save``, zip writers, downloads).

    write: called with the path of a new, empty temp file beside ``path`` (created
    exclusively, see the module docstring); it writes the whole content there (it may
    truncate or replace the file, and set its times). mode: the temp file's mode.
    fsync: flush the file to disk before publishing it (for records that must survive a
    crash). publish: moves the finished temp file onto ``path``; ``os.replace``
    (default) replaces an existing file, ``os.link`` never does (FileExistsError when
    ``path`` exists). make_name: gives temp file names (no folder; default
    :func:`temp_name`). The temp file is removed whatever happens. Returns ``path`` as a
    Path. Raises what ``write`` or ``publish`` raise, and OSError (e.g. the folder is
    missing).
    """
    path = Path(path)
    tmp = _create_temp(path.parent, mode, make_name)
    try:
        write(tmp)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        publish(tmp, path)
    finally:
        try:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        except OSError:
            pass
    return path


def atomic_write(
    path: str | os.PathLike,
    data: bytes | str,
    *,
    mode: int | None = None,
    fsync: bool = False,
    publish: Callable[[Path, Path], object] = os.replace,
    encoding: str = "utf-8",
) -> Path:
    """Write ``data`` (bytes, or text encoded with ``encoding``) to ``path`` atomically.

    mode, fsync, publish: as in :func:`atomic_write_with`. Returns ``path`` as a Path.
    Raises OSError (e.g. when ``path`` is a folder or its folder is missing) and
    FileExistsError with ``publish=os.link`` when ``path`` exists.
    """
    if isinstance(data, str):
        data = data.encode(encoding)

    def write(tmp: Path) -> None:
        with open(os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC), "wb") as f:
            f.write(data)

    return atomic_write_with(path, write, mode=mode, fsync=fsync, publish=publish)
