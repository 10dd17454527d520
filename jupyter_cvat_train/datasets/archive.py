"""Opening an export given as a zip or a folder: safe, cached zip extraction.

A zip is extracted once per content into ``$CVAT_TRAIN_CACHE/exports/<sha256>/``
(default cache: ``~/.cache/jupyter_cvat_train``). Entries with an absolute path, a
``..`` component or a symlink mode are refused (an ``unsafe-archive-entry`` finding,
the entry is not written). A zip whose entries overlap (share data bytes, as in a
non-recursive zip bomb) or repeat a name is refused whole. Against zip bombs the bytes
really written while streaming are counted against caps set from the archive file's
real size on disk (:data:`MAX_RATIO` times it) and :data:`MAX_TOTAL_BYTES` (env
``CVAT_TRAIN_MAX_UNZIPPED_BYTES``); a size the archive declares can refuse it, never allow it.
The export path must be a regular file or folder (a FIFO or device is refused without
being opened), and the folder is scanned for links leading outside it and special files
before any reader runs (:mod:`.references`).
Zip format reference: PKWARE APPNOTE.TXT (https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT);
Unix mode bits sit in the high 16 bits of ``external_attr``.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import stat
import struct
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from ..fileio import atomic_write, cache_root
from .findings import ExportError, Finding, finding
from .references import UnsafeExport, check_regular, scan_export

MAX_TOTAL_BYTES = int(os.environ.get("CVAT_TRAIN_MAX_UNZIPPED_BYTES", 64 * 1024**3))
MAX_RATIO = 200.0  # uncompressed / compressed, for the archive as a whole
_CHUNK = 1 << 20


def cached_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file's content, remembered per (path, size, mtime) in the
    cache so a big zip is hashed once."""
    st = path.stat()
    index_dir = cache_root() / "digests"
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    memo = index_dir / key
    try:
        return memo.read_text().strip()
    except OSError:
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(memo, digest)  # a reader never sees a partial digest
    except OSError:
        pass
    return digest


def unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why a zip entry must not be extracted, or None when it is safe."""
    name = info.filename.replace("\\", "/")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "has a '..' path component"
    return None


def check_layout(zf: zipfile.ZipFile, fp, archive_size: int) -> None:
    """Refuse a zip whose entries share bytes or names. Each entry's local header is read
    (APPNOTE 4.3.7: 30 fixed bytes, then name and extra field) to find where its data
    really starts; data ranges [header, data end) must not overlap each other or the
    central directory (an overlap is how a non-recursive zip bomb expands one compressed
    kernel many times), and no two entries may have the same name.
    Raises ExportError naming the entries."""
    seen: dict[str, str] = {}
    spans = []
    for info in zf.infolist():
        key = posixpath.normpath(info.filename.replace("\\", "/"))
        if key in seen:
            raise ExportError(
                f"two zip entries are both named {key!r}: refused (a CVAT export never repeats a "
                "name; the archive may have been crafted). Export again from CVAT."
            )
        seen[key] = info.filename
        fp.seek(info.header_offset)
        head = fp.read(30)
        if len(head) < 30 or head[:4] != b"PK\x03\x04":
            raise ExportError(
                f"zip entry {info.filename!r} has no local header where the central directory "
                "says; the zip is corrupt. Download the export again."
            )
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        end = info.header_offset + 30 + name_len + extra_len + info.compress_size
        spans.append((info.header_offset, end, info.filename))
    spans.sort()
    directory = zf.start_dir if hasattr(zf, "start_dir") else archive_size
    for (_start, end, name), nxt in zip(spans, spans[1:] + [(directory, directory, "the central directory")]):
        if end > nxt[0] or end > archive_size:
            raise ExportError(
                f"zip entry {name!r} overlaps {nxt[2]!r} (its data runs to byte {end}, past byte "
                f"{nxt[0]}): refused as a possible zip bomb or a corrupt archive. Export again "
                "from CVAT."
            )


def extract_zip(zip_path: Path, dest: Path) -> list[Finding]:
    """Extract ``zip_path`` into ``dest`` (which must not exist yet) safely.

    Returns ``unsafe-archive-entry`` findings for the refused entries.
    Raises ExportError for a file that is not a readable zip (truncated, corrupt,
    encrypted), whose entries overlap or repeat a name (:func:`check_layout`), or that
    expands past the caps. The caps count the bytes really written while streaming,
    against the archive file's real size on disk: at most :data:`MAX_TOTAL_BYTES`, and at
    most :data:`MAX_RATIO` times the archive size (64 MB allowed in any case). The sizes
    the archive declares are not trusted.
    """
    findings: list[Finding] = []
    try:
        fp = open(zip_path, "rb")
    except OSError as e:
        raise ExportError(f"{zip_path} cannot be read ({e.strerror})") from None
    with fp:
        archive_size = os.fstat(fp.fileno()).st_size
        try:
            zf = zipfile.ZipFile(fp)
        except (zipfile.BadZipFile, OSError) as e:
            raise ExportError(
                f"{zip_path} is not a readable zip archive ({e}); it may be truncated by an "
                "interrupted download. Expected a CVAT export zip: download it again."
            ) from None
        with zf:
            check_layout(zf, fp, archive_size)
            infos = zf.infolist()
            declared = sum(i.file_size for i in infos)
            if declared > MAX_TOTAL_BYTES:
                raise ExportError(
                    f"{zip_path} would extract to {declared / 1e9:.1f} GB, over the limit of "
                    f"{MAX_TOTAL_BYTES / 1e9:.1f} GB (set CVAT_TRAIN_MAX_UNZIPPED_BYTES to raise it)"
                )
            limit = min(MAX_TOTAL_BYTES, max(archive_size * MAX_RATIO, 64 * 1024**2))
            written = 0
            dest.mkdir(parents=True)
            for info in infos:
                reason = unsafe_reason(info)
                if reason:
                    findings.append(
                        finding(
                            "unsafe-archive-entry",
                            f"zip entry {info.filename!r} {reason}; it was not extracted",
                            info.filename,
                        )
                    )
                    continue
                target = dest / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zf.open(info) as src, open(target, "xb") as out:
                        while chunk := src.read(_CHUNK):
                            written += len(chunk)
                            if written > limit:
                                raise ExportError(
                                    f"{zip_path} expands to more than {limit / 1e6:.0f} MB from a "
                                    f"{archive_size / 1e6:.1f} MB archive (caps: {MAX_RATIO:.0f}x the archive size, "
                                    f"{MAX_TOTAL_BYTES / 1e9:.0f} GB in all): refused as a possible zip bomb. Set "
                                    "CVAT_TRAIN_MAX_UNZIPPED_BYTES to raise the total cap"
                                )
                            out.write(chunk)
                except ExportError:
                    raise
                except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError) as e:
                    raise ExportError(
                        f"{zip_path}: entry {info.filename!r} cannot be read ({e}); the zip is "
                        "truncated or corrupt. Download the export again."
                    ) from None
    return findings


def open_export(path: str | os.PathLike) -> tuple[Path, list[Finding]]:
    """The folder holding the export at ``path`` (a folder, or a zip extracted to the
    cache) and the findings of the extraction.

    A folder (or zip) whose only content is one sub-folder is descended into, as happens
    when an extracted export is zipped again with its folder.
    Raises ExportError when ``path`` does not exist or is neither a folder nor a zip (a
    FIFO or device file is refused without being opened), and its subclass UnsafeExport
    when the folder holds links leading outside it or special files (:func:`.references.scan_export`).
    """
    path = Path(path).expanduser()
    st = check_regular(path)
    findings: list[Finding] = []
    if stat.S_ISDIR(st.st_mode):
        root = path
    elif path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        root = cache_root() / "exports" / cached_sha256(path)
        meta = root / ".cvat-train-extracted.json"
        if meta.exists():
            findings = [Finding(**f) for f in json.loads(meta.read_text())["findings"]]
        else:
            (cache_root() / "exports").mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache_root() / "exports"))
            try:
                findings = extract_zip(path, tmp / "x")
                (tmp / "x" / meta.name).write_text(
                    json.dumps({"source": str(path), "findings": [f.to_dict() for f in findings]})
                )
                try:
                    os.replace(tmp / "x", root)
                except OSError:  # another process extracted it meanwhile
                    if not meta.exists():
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    else:
        raise ExportError(
            f"{path} is neither a folder nor a zip archive. Expected a CVAT export: "
            "the .zip CVAT downloads, or the folder it extracts to."
        )
    refused = scan_export(root)
    if refused:
        raise UnsafeExport(refused)
    return descend_single_folder(Path(os.path.realpath(root))), findings


# Folder names that are part of a format's own layout: never descended into.
_LAYOUT_FOLDERS = {
    "annotations",
    "images",
    "jpegimages",
    "imagesets",
    "gt",
    "img1",
    "obj_train_data",
    "obj_valid_data",
    "obj_test_data",
    "labels",
}


def descend_single_folder(root: Path) -> Path:
    """``root``, or the folder below it while a folder holds only one sub-folder
    (hidden files aside) that is not part of a format's layout."""
    for _ in range(3):
        entries = [p for p in root.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
        if (
            len(entries) == 1
            and not entries[0].is_symlink()
            and entries[0].is_dir()
            and entries[0].name.lower() not in _LAYOUT_FOLDERS
        ):
            root = entries[0]
        else:
            break
    return root
