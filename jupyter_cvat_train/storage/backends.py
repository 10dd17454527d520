"""Object storage locations: the interface the sync engine uses and ``file://`` storage
(:func:`.opener.open_storage` picks the implementation from a parsed location;
:mod:`.location` parses and checks URIs; the errors live in :mod:`.errors` and are
re-exported here).

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
from collections.abc import Callable, Iterator

from ..fileio import atomic_write_with
from .errors import SourceChanged, StorageError, TransferError  # noqa: F401 - re-exported
from .local import Entry, ensure_parent, local_path, temp_name, unchanged, walk
from .location import StorageLocation

ProgressFn = Callable[[int], None]
"""Called with a number of bytes just transferred (from any thread)."""


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

    def list(
        self, on_skip: Callable[[str, str], None] | None = None, unreadable: list[str] | None = None
    ) -> Iterator[Entry]:
        """Every object under the location, as :class:`Entry` (size in bytes, mtime in
        epoch seconds, ETag if any). Keys are returned as stored: the caller checks them
        with :func:`.local.check_key` before writing anything locally. Keys of parts
        that could not be read (so the listing is incomplete) are appended to
        ``unreadable``. Raises StorageError when the location does not exist or cannot
        be read at all."""
        raise NotImplementedError

    def get(self, obj: Entry, dest: str, on_bytes: ProgressFn) -> None:
        """Write the content of ``obj`` to the new file ``dest`` (a temporary file: the
        caller renames it into place). Raises on any failure; ``dest`` may then hold
        partial data, which the caller removes."""
        raise NotImplementedError

    def put(self, src: Entry, key: str, on_bytes: ProgressFn) -> None:
        """Store local file ``src.path`` as ``key`` atomically: readers see the old
        object or the whole new one, never a part. ``src.size``/``src.mtime`` are the
        file's stat taken before reading; when the file no longer has them after it was
        read, nothing is stored (an object already completed is removed again) and
        :class:`.errors.SourceChanged` is raised. The stored object records ``src.mtime``."""
        raise NotImplementedError

    def delete(self, keys: list[str]) -> dict[str, str]:
        """Delete ``keys``; return ``{key: error message}`` for those that failed."""
        raise NotImplementedError

    def same_content(self, obj: Entry, local: Entry) -> bool:
        """Whether object ``obj`` holds the same bytes as local file ``local.path``
        (by content hash: MD5, or SHA-256 where stored). Sizes are already equal."""
        raise NotImplementedError

    records_mtime: bool = False
    """Whether listed mtimes may differ from the stored files' own (S3: the listing
    gives LastModified, the upload time) while the object records its source's mtime,
    which :meth:`stored_mtime` reads."""

    def stored_mtime(self, obj: Entry) -> float | None:
        """The mtime (epoch seconds) object ``obj`` records in its metadata (the
        source file's, set by :meth:`put`), or None when it has none or it cannot be
        read. Raises StorageError only for errors that stop the whole sync."""
        return None

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

    The folder must exist (as a bucket must). put copies to a temporary file in the
    destination folder, checks that the source did not change meanwhile, sets the
    source's mtime, and renames it into place; so a stored file's mtime equals its
    source's and the size + mtime comparison is exact (``mtime_tolerance`` 0).
    """

    mtime_tolerance = 0.0

    def __init__(self, location: StorageLocation):
        self.location = location
        self.uri = location.uri
        self.root = str(location.path)
        self._temp_files: list[str] = []

    def list(self, on_skip=None, unreadable=None):
        if not os.path.isdir(self.root):
            if os.path.exists(self.root):
                raise StorageError(f"storage {self.uri} is not a folder")
            raise StorageError(
                f"storage folder {self.uri} does not exist: create it first (as a bucket must be), "
                "or check the URI for a typo"
            )
        self._temp_files = []
        return walk(self.root, on_skip=on_skip, temp_files=self._temp_files, unreadable=unreadable)

    def get(self, obj, dest, on_bytes):
        src = local_path(self.root, obj.key)
        shutil.copyfile(src, dest)
        if not unchanged(Entry(obj.key, obj.size, obj.mtime, path=src)):
            raise SourceChanged("the stored file changed while it was being read; sync again")
        on_bytes(os.path.getsize(dest))

    def put(self, src, key, on_bytes):
        final = local_path(self.root, key)
        ensure_parent(final)

        def write(tmp) -> None:
            shutil.copyfile(src.path, tmp)
            if not unchanged(src):
                raise SourceChanged("changed while it was being copied")
            os.utime(tmp, ns=(int(src.mtime * 1e9), int(src.mtime * 1e9)))

        atomic_write_with(final, write, make_name=temp_name)
        on_bytes(src.size)

    def delete(self, keys):
        failed = {}
        for key in keys:
            try:
                os.remove(local_path(self.root, key))
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as e:
                failed[key] = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        return failed

    def same_content(self, obj, local):
        return file_digest(local_path(self.root, obj.key)) == file_digest(local.path)

    def cleanup(self):
        from .local import remove_stale_temp_files

        return remove_stale_temp_files(self._temp_files)
