"""Object storage locations: the interface the sync engine uses, ``file://`` storage,
and :func:`open_storage` that picks the implementation from a URI.

URIs:

- ``s3://bucket/prefix`` — S3 or an S3-compatible server (MinIO, Ceph, GCS interop)
  through boto3's standard credential chain; see :mod:`.s3`.
- ``file:///absolute/path`` — a local folder acting as object storage (the zero-config
  default). Objects are files; an object's key is its path relative to the folder.

Credentials never appear in a URI (one with ``user@`` is refused without echoing it),
in messages, or in any value returned here.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from typing import Callable, Iterator
from urllib.parse import unquote, urlsplit

from ..jobs.jobdir import JobError
from .local import Entry, ensure_parent, local_path, temp_path_for, walk

ProgressFn = Callable[[int], None]
"""Called with a number of bytes just transferred (from any thread)."""


class StorageError(JobError):
    """A storage problem the user can act on (bad URI, unreachable endpoint, refused
    credentials, missing bucket, another sync running). Its message is meant to be shown
    as is, without a traceback, and never contains credentials. ``summary`` holds the
    sync summary so far when the error stopped a sync midway."""

    summary: dict | None = None


class TransferError(Exception):
    """One object or file could not be transferred; the message says why (the sync
    records it and goes on with the others)."""


class Storage:
    """One object storage location (a bucket prefix or a folder).

    Keys are '/'-separated paths relative to the location. Implementations are safe to
    call from many threads at once.
    """

    uri: str
    """The location as given, for messages (never holds credentials)."""
    mtime_tolerance: float = 0.0
    """Seconds by which mtimes may differ and still count as equal (S3's LastModified
    has one-second resolution)."""

    def list(self, on_skip: Callable[[str, str], None] | None = None) -> Iterator[Entry]:
        """Every object under the location, as :class:`Entry` (size in bytes, mtime in
        epoch seconds, ETag if any). Keys are returned as stored: the caller checks them
        with :func:`.local.check_key` before writing anything locally. Raises
        StorageError when the location cannot be read."""
        raise NotImplementedError

    def get(self, obj: Entry, dest: str, on_bytes: ProgressFn) -> None:
        """Write the content of ``obj`` to the new file ``dest`` (a temporary file: the
        caller renames it into place). Raises on any failure; ``dest`` may then hold
        partial data, which the caller removes."""
        raise NotImplementedError

    def put(self, src: Entry, key: str, on_bytes: ProgressFn) -> None:
        """Store local file ``src.path`` as ``key`` atomically: readers see the old
        object or the whole new one, never a part."""
        raise NotImplementedError

    def delete(self, keys: list[str]) -> dict[str, str]:
        """Delete ``keys``; return ``{key: error message}`` for those that failed."""
        raise NotImplementedError

    def same_content(self, obj: Entry, local: Entry) -> bool:
        """Whether object ``obj`` holds the same bytes as local file ``local.path``
        (by content hash: MD5, or SHA-256 where stored). Sizes are already equal."""
        raise NotImplementedError

    def cleanup(self) -> int:
        """Remove leftovers of interrupted syncs that this location may hold; return
        how many were removed."""
        return 0

    def close(self) -> None:
        """Release connections and threads."""


def file_digest(path: str, algorithm: str = "md5") -> str:
    """Hex digest of a file's content (1 MiB reads; hashlib releases the GIL)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class FileStorage(Storage):
    """``file:///path``: a local folder acting as object storage.

    put copies to a temporary file in the destination folder, sets the source's mtime,
    and renames it into place; so a stored file's mtime equals its source's and the
    size + mtime comparison is exact (``mtime_tolerance`` 0).
    """

    mtime_tolerance = 0.0

    def __init__(self, uri: str, root: str):
        self.uri = uri
        self.root = os.path.abspath(root)
        self._temp_files: list[str] = []

    def list(self, on_skip=None):
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise StorageError(f"storage {self.uri} is not a folder")
        self._temp_files = []
        return walk(self.root, on_skip=on_skip, temp_files=self._temp_files)

    def get(self, obj, dest, on_bytes):
        src = local_path(self.root, obj.key)
        shutil.copyfile(src, dest)
        on_bytes(os.path.getsize(dest))

    def put(self, src, key, on_bytes):
        final = local_path(self.root, key)
        ensure_parent(final)
        tmp = temp_path_for(final)
        try:
            shutil.copyfile(src.path, tmp)
            os.utime(tmp, ns=(int(src.mtime * 1e9), int(src.mtime * 1e9)))
            os.replace(tmp, final)
        except BaseException:
            _remove_quietly(tmp)
            raise
        on_bytes(src.size)

    def delete(self, keys):
        failed = {}
        for key in keys:
            try:
                os.remove(local_path(self.root, key))
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as e:
                failed[key] = str(e)
        return failed

    def same_content(self, obj, local):
        return file_digest(local_path(self.root, obj.key)) == file_digest(local.path)

    def cleanup(self):
        from .local import remove_stale_temp_files

        return remove_stale_temp_files(self._temp_files)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def open_storage(uri: str, *, endpoint_url: str | None = None, **s3_options) -> Storage:
    """The :class:`Storage` for ``uri`` (``s3://bucket[/prefix]`` or
    ``file:///abs/path``). ``endpoint_url`` and ``s3_options`` (see
    :class:`.s3.S3Storage`) apply to ``s3://`` only. Raises StorageError for a URI
    that is malformed, has another scheme, or embeds credentials."""
    if not isinstance(uri, str) or "://" not in uri:
        raise StorageError("storage URI must look like s3://bucket/prefix or file:///absolute/path")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if "@" in parts.netloc:
        raise StorageError("storage URI must not contain credentials (user@ / user:secret@): "
                           "use environment variables, a profile or an instance role")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageError(f"file URI must be file:///absolute/path (three slashes), not {uri}")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise StorageError(f"file URI must hold an absolute path: {uri}")
        return FileStorage(uri, path)
    if scheme == "s3":
        from .s3 import S3Storage

        if not parts.netloc:
            raise StorageError(f"S3 URI needs a bucket: s3://bucket/prefix, not {uri}")
        return S3Storage(uri, parts.netloc, parts.path.lstrip("/"), endpoint_url=endpoint_url, **s3_options)
    raise StorageError(f"unsupported storage URI scheme {scheme!r}: use s3://bucket/prefix or file:///absolute/path")
