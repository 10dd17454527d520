"""Files an export refers to: every one must resolve inside the export, or it is not read.

An export names files with strings it holds: YOLO ``obj.data`` and its list files,
COCO ``images[].file_name``, image names in CVAT XML, VOC ``filename``, LabelMe
``filename``, MOT ``imDir``. :class:`ExportRoot` turns such a string into a checked path
beneath the export folder, or None. Refused spellings: a non-string or empty value, NUL,
a percent-encoded dot, slash or NUL (``%2e``, ``%2f``, ``%5c``, ``%00``), an absolute path
(``/x``, ``\\x``, a drive letter ``C:``), a ``..`` component, and a path whose symbolic
links lead outside the export. Symbolic links are followed by hand, one component at a
time, and a link target outside the export is refused from its text, so no file outside
the export is ever opened or stat'ed (the answer would tell which outside files exist).

:func:`scan_export` walks the export folder once before any reader runs and refuses
symbolic links that lead outside it and anything that is neither a regular file nor a
folder (a FIFO blocks whoever opens it; a device file reads forever).

:func:`read_annotation_file` reads an annotation file with a size cap
(:data:`MAX_ANNOTATION_BYTES`, env ``CVAT_TRAIN_MAX_ANNOTATION_BYTES``).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from .findings import ExportError, Finding, finding

MAX_SYMLINKS = 40  # as Linux's path resolution
MAX_REFERENCE_CHARS = 4096  # PATH_MAX
# Parsing costs about 30x the file's size in memory (a 200 MB COCO JSON took 5.7 GB), and
# validation may run inside the Jupyter server: 256 MiB covers exports of some 500,000
# boxes with polygons. Raise it with the environment variable for bigger ones.
MAX_ANNOTATION_BYTES = int(os.environ.get("CVAT_TRAIN_MAX_ANNOTATION_BYTES", 256 * 1024**2))

_PERCENT = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeExport(ExportError):
    """The export folder holds something no reader may touch (a symbolic link leading
    outside it, a FIFO, a device file, a socket). ``findings`` names each one."""

    def __init__(self, findings: list[Finding]):
        self.findings = findings
        shown = "; ".join(f.message for f in findings[:3])
        more = f" (and {len(findings) - 3} more)" if len(findings) > 3 else ""
        super().__init__(f"the export was not read: {shown}{more}")


def show(ref: object, limit: int = 80) -> str:
    """``ref`` as a finding quotes it: repr, cut to ``limit`` characters."""
    text = repr(ref)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unsafe_reference(where: str, field: str, ref: object) -> Finding:
    """The ``unsafe-reference`` error for value ``ref`` of ``field`` in file / item ``where``."""
    return finding(
        "unsafe-reference",
        f"{where}: {field} {show(ref)} does not resolve inside the export; the file was not read",
        where,
    )


class ExportRoot:
    """The folder of an extracted export, resolving the references its files hold.

    path: the folder as given; real: its real path. Folder listings are read once and
    remembered (one ``scandir`` per folder instead of one ``lstat`` per file), so keep one
    ExportRoot per load.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.real = os.path.realpath(path)
        self._listings: dict[str, dict[str, bool] | None] = {}

    def resolve(self, ref: object, base: str = "") -> Path | None:
        """The real path that ``ref`` (a path relative to folder ``base`` inside the
        export, ``/`` or ``\\`` separated) names, or None when it is refused (module
        docstring). The file need not exist: a missing file inside the export is the
        reader's ``missing-image``. ``base`` is checked like ``ref``."""
        if not isinstance(ref, str) or not ref.strip() or len(ref) > MAX_REFERENCE_CHARS:
            return None
        parts = []
        for text in (base, ref):
            if "\x00" in text or _PERCENT.search(text):
                return None
            text = text.replace("\\", "/")
            if text.startswith("/") or _DRIVE.match(text):
                return None
            parts += [p for p in text.split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            return None
        real = self._beneath(parts)
        return Path(real) if real is not None else None

    def contains(self, path: str | os.PathLike) -> Path | None:
        """``path`` (absolute, e.g. from a library that joined it) checked as
        :meth:`resolve` checks a reference relative to the export; None if outside."""
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(self.path))
        if rel == ".." or rel.startswith("../"):
            rel = os.path.relpath(os.path.abspath(path), self.real)
        return self.resolve(rel)

    def kind(self, path: str | os.PathLike) -> str | None:
        """'file', 'dir', 'link' or 'other' (FIFO, device, socket) for a path from
        :meth:`resolve`, None when it does not exist; from the remembered listings."""
        path = os.fspath(path)
        return self._kind(os.path.dirname(path), os.path.basename(path))

    def relative(self, path: str | os.PathLike) -> str:
        """A path from :meth:`resolve`, relative to the export, with ``/``."""
        return Path(os.path.relpath(path, self.real)).as_posix()

    def _kind(self, folder: str, name: str) -> str | None:
        """'link', 'dir', 'file' or 'other' for ``folder/name`` (folder is a real path
        inside the export), None when it does not exist."""
        if folder not in self._listings:
            try:
                with os.scandir(folder) as it:  # kinds from d_type: no stat per entry
                    self._listings[folder] = {e.name: _entry_kind(e) for e in it}
            except OSError:
                self._listings[folder] = None
        listing = self._listings[folder]
        if listing is not None:
            return listing.get(name)
        try:
            mode = os.lstat(os.path.join(folder, name)).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return "link"
        return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"

    def _beneath(self, parts: list[str]) -> str | None:
        """Resolve ``parts`` from the real root, following links by hand; None as soon as
        a step would leave the root. Never stats a path outside the root."""
        root, cur = self.real, self.real
        todo = parts[::-1]
        links = 0
        while todo:
            part = todo.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if cur == root:
                    return None
                cur = os.path.dirname(cur)
                continue
            kind = self._kind(cur, part)
            nxt = os.path.join(cur, part)
            if kind is None:  # absent: nothing further can be a link
                rest = todo[::-1]
                return None if ".." in rest else os.path.join(nxt, *[p for p in rest if p not in ("", ".")])
            if kind != "link":
                cur = nxt
                continue
            links += 1
            if links > MAX_SYMLINKS:
                return None
            try:
                target = os.readlink(nxt)
            except OSError:
                return None
            if target.startswith("/"):
                if target != root and not target.startswith(root + "/"):
                    return None
                cur, target = root, target[len(root) :]
            todo.extend(target.split("/")[::-1])
        return cur


def _entry_kind(e: os.DirEntry) -> str:
    if e.is_symlink():
        return "link"
    return "dir" if e.is_dir(follow_symlinks=False) else "file" if e.is_file(follow_symlinks=False) else "other"


def scan_export(root: str | os.PathLike, max_entries: int = 5_000_000) -> list[Finding]:
    """Walk export folder ``root`` (links not followed) and return an ``unsafe-reference``
    finding for each symbolic link leading outside it and a ``special-file`` finding for
    each FIFO, device file or socket (a link to one included). One ``scandir`` per folder."""
    export = ExportRoot(root)
    out: list[Finding] = []
    todo = [""]
    seen = 0
    while todo and seen < max_entries:
        rel_dir = todo.pop()
        try:
            with os.scandir(os.path.join(export.real, rel_dir)) as it:
                entries = list(it)
        except OSError:
            continue
        for e in entries:
            seen += 1
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            kind = _entry_kind(e)
            if kind == "link":
                real = export.resolve(rel)
                if real is None:
                    out.append(
                        finding(
                            "unsafe-reference",
                            f"{rel} is a symbolic link that leads outside the export; it was not followed",
                            rel,
                        )
                    )
                elif export.kind(real) == "other":
                    out.append(
                        finding("special-file", f"{rel} links to a FIFO, device file or socket; it was not opened", rel)
                    )
            elif kind == "dir":
                todo.append(rel)
            elif kind == "other":
                out.append(
                    finding(
                        "special-file",
                        f"{rel} is a FIFO, device file or socket, not a regular file; it was not opened",
                        rel,
                    )
                )
    return out


def check_regular(path: str | os.PathLike, what: str = "export") -> os.stat_result:
    """The stat of ``path`` (links followed), which must be a regular file or a folder.
    Raises ExportError when it does not exist or is a FIFO, device file or socket (never
    opened, so a FIFO cannot block)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise ExportError(
            f"{path} does not exist or cannot be read ({e.strerror}). Expected a CVAT {what}: a .zip "
            "file or an extracted folder."
        ) from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise ExportError(
            f"{path} is a FIFO, device file or socket, not a regular file or folder; it was not "
            f"opened. Give the path of a CVAT {what}: a .zip file or an extracted folder."
        )
    return st


def open_regular(path: str | os.PathLike) -> int:
    """An O_RDONLY descriptor of regular file ``path``. Opened non-blocking (a FIFO does
    not block the open), then checked by fstat; raises OSError for anything else. The
    caller closes it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:  # O_NONBLOCK has no effect on regular files, so it can stay set
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _bytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n} bytes"


def _too_large(rel: str, size: int, limit: int) -> ExportError:
    return ExportError(
        f"{rel} is {_bytes(size)}, over the {_bytes(limit)} limit on annotation files (parsing "
        "takes some 30x that in memory); set CVAT_TRAIN_MAX_ANNOTATION_BYTES to a larger number of "
        "bytes to read it"
    )


def check_annotation_size(path: str | os.PathLike, rel: str | None = None, limit: int | None = None) -> None:
    """Raise ExportError when annotation file ``path`` is larger than ``limit`` (default
    :data:`MAX_ANNOTATION_BYTES`), for a library that opens the file itself."""
    limit = MAX_ANNOTATION_BYTES if limit is None else limit
    try:
        size = os.stat(path).st_size
    except OSError:
        return
    if size > limit:
        raise _too_large(rel or str(path), size, limit)


def read_annotation_file(path: str | os.PathLike, rel: str | None = None, limit: int | None = None) -> bytes:
    """The bytes of annotation file ``path`` (``rel``: how messages name it). Raises
    ExportError when it is not a regular file or is larger than ``limit`` (default
    :data:`MAX_ANNOTATION_BYTES`); the size is checked before anything is read, and the
    read stops at the cap even if the file grows meanwhile."""
    limit = MAX_ANNOTATION_BYTES if limit is None else limit
    rel = rel or str(path)
    try:
        fd = open_regular(path)
    except OSError as e:
        raise ExportError(f"{rel} cannot be read: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        data = f.read(limit + 1) if size <= limit else b""
    if size > limit or len(data) > limit:
        raise _too_large(rel, max(size, len(data)), limit)
    return data
