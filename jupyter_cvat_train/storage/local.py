"""Local folders as sync endpoints: walking a tree, checking keys, temporary files.

A *key* is a path relative to a sync root, with ``/`` as separator on every platform
(the S3 convention). Walking a folder yields one :class:`Entry` per regular file.

Safety rules enforced here:

- Symlinks are followed only when their target lies inside the root; others are
  reported through ``on_skip`` and not followed (a workspace must not leak, or be
  written through, a link to ``/etc``).
- Keys that would land outside the root (``..`` parts, absolute paths, backslashes,
  NUL) are refused by :func:`check_key`.
- Files being written are named ``.<pid>.<random>.cvat-sync-tmp`` in the destination
  folder (short whatever the final name, so a 255-byte name still gets a temp file);
  walks ignore them, and :func:`remove_stale_temp_files` deletes those whose writer
  process is gone (so an interrupted sync leaves nothing behind after the next run).
- A walk reports what it could not read (``unreadable``), so that a sync never deletes
  on the strength of an incomplete listing.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

TEMP_MARK = ".cvat-sync-tmp"


@dataclass(frozen=True)
class Entry:
    """One file of a tree (local file or stored object).

    ``key``: '/'-separated path relative to the root. ``size``: bytes. ``mtime``: seconds
    since the epoch (float; for S3, the object's LastModified). ``etag``: the S3 ETag
    without quotes, or None for local files. ``path``: the local path (None for objects).
    """

    key: str
    size: int
    mtime: float
    etag: str | None = None
    path: str | None = None


class UnsafeKeyError(ValueError):
    """A key that would resolve outside the sync root."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative '/'-separated path, else raise
    :class:`UnsafeKeyError` with the reason. Refused: empty keys, absolute keys
    (leading ``/``), ``.`` or ``..`` parts, empty parts (``a//b``), backslashes and NUL
    (which would be separators or terminators on some systems), and keys ending in
    ``/`` (folder markers, which carry no file)."""
    if not key:
        raise UnsafeKeyError("empty key")
    if key.startswith("/"):
        raise UnsafeKeyError("absolute key")
    if "\\" in key or "\x00" in key:
        raise UnsafeKeyError("backslash or NUL in key")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise UnsafeKeyError("'..', '.' or empty path part")
    if TEMP_MARK in key.rsplit("/", 1)[-1]:
        raise UnsafeKeyError(f"name uses the reserved temporary-file mark {TEMP_MARK}")
    return key


def is_temp_name(name: str) -> bool:
    """True for names of our temporary files (including s3transfer's suffixes on them)."""
    return TEMP_MARK in name


def temp_name() -> str:
    """A fresh temporary file name ``.<pid>.<16 hex>{TEMP_MARK}``, for write-then-rename
    (:func:`jupyter_cvat_train.fileio.atomic_write_with`'s ``make_name``). Not the
    generic temp name: walks must recognise and skip these files, and the pid lets
    :func:`remove_stale_temp_files` delete those of a writer that is gone. Its length is
    fixed and short (about 35 bytes), not derived from the final name's."""
    return f".{os.getpid()}.{secrets.token_hex(8)}{TEMP_MARK}"


def temp_path_for(final: str | os.PathLike) -> str:
    """A fresh temporary path (:func:`temp_name`) in the same folder as ``final``."""
    return os.path.join(os.path.dirname(os.fspath(final)), temp_name())


def unchanged(entry: Entry) -> bool:
    """Whether file ``entry.path`` still has ``entry.size`` and ``entry.mtime`` (False
    also when it is gone)."""
    try:
        st = os.stat(entry.path)
    except OSError:
        return False
    return st.st_size == entry.size and st.st_mtime_ns / 1e9 == entry.mtime


def _writer_alive(name: str) -> bool:
    """Whether the process that owns temp file ``name`` still runs (pid from the name)."""
    try:
        pid = int(name[: name.index(TEMP_MARK)].rsplit(".", 2)[-2])
    except (ValueError, IndexError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_files(paths: list[str]) -> int:
    """Delete the temporary files in ``paths`` whose writer process is gone; return how
    many were removed. Temp files of live processes (another sync) are kept."""
    removed = 0
    for p in paths:
        if not _writer_alive(os.path.basename(p)):
            try:
                os.remove(p)
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def walk(
    root: str | os.PathLike,
    *,
    on_skip: Callable[[str, str], None] | None = None,
    temp_files: list[str] | None = None,
    unreadable: list[str] | None = None,
) -> Iterator[Entry]:
    """Yield an :class:`Entry` for each regular file under ``root`` (recursively, with
    ``os.scandir``; order unspecified).

    Symlinks whose resolved target is inside ``root`` are followed (each real folder is
    visited once, so link cycles end); others, and special files, are passed to
    ``on_skip(key, reason)`` and skipped. Folders that cannot be listed and entries that
    cannot be stat'ed (permission denied, a dangling or looping link, an entry that
    vanished) go to ``on_skip`` too, and their keys (``"."`` for the root) are appended
    to ``unreadable``: the listing is then incomplete. Our temporary files are not
    yielded; their paths are appended to ``temp_files`` when given. A missing root
    yields nothing.
    """

    def cannot_read(key: str, reason: str) -> None:
        if unreadable is not None:
            unreadable.append(key)
        if on_skip:
            on_skip(key, reason)

    root = os.path.abspath(os.fspath(root))
    real_root = os.path.realpath(root)
    seen_dirs = {real_root}
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            it = os.scandir(folder)
        except FileNotFoundError:
            if prefix:  # a folder seen in its parent's listing is gone
                cannot_read(prefix.rstrip("/"), "folder vanished while being listed")
            continue
        except OSError as e:
            cannot_read(prefix.rstrip("/") or ".", f"cannot read folder: {e.strerror}")
            continue
        with it:
            for de in it:
                name = de.name
                if is_temp_name(name):
                    if temp_files is not None:
                        temp_files.append(de.path)
                    continue
                key = prefix + name
                try:
                    if de.is_symlink():
                        target = os.path.realpath(de.path)
                        if not _inside(target, real_root):
                            if on_skip:
                                on_skip(key, "symlink to outside the folder, not followed")
                            continue
                        st = os.stat(de.path)
                        if os.path.isdir(target):
                            if target not in seen_dirs:
                                seen_dirs.add(target)
                                stack.append((de.path, key + "/"))
                            continue
                    elif de.is_dir(follow_symlinks=False):
                        seen_dirs.add(os.path.realpath(de.path))
                        stack.append((de.path, key + "/"))
                        continue
                    else:
                        st = de.stat(follow_symlinks=False)
                except OSError as e:
                    cannot_read(key, f"cannot read: {e.strerror}")
                    continue
                if not de.is_file():
                    if on_skip:
                        on_skip(key, "not a regular file")
                    continue
                yield Entry(key=key, size=st.st_size, mtime=st.st_mtime_ns / 1e9, path=de.path)


def local_path(root: str, key: str) -> str:
    """The path of ``key`` under ``root`` after :func:`check_key`; raises UnsafeKeyError
    also when an existing folder on the way is a symlink leading outside ``root``."""
    check_key(key)
    path = os.path.join(root, *key.split("/"))
    parent = os.path.dirname(path)
    real_root = os.path.realpath(root)
    # Resolve the deepest existing ancestor: a link there must not lead out of the root.
    probe = parent
    while not os.path.exists(probe) and len(probe) > len(root):
        probe = os.path.dirname(probe)
    if not _inside(os.path.realpath(probe), real_root):
        raise UnsafeKeyError("a folder on its path is a symlink to outside the folder")
    return path


def ensure_parent(path: str) -> None:
    """Create the parent folders of ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
