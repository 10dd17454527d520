"""Opening an export given as a zip or a folder: safe, cached zip extraction.

A zip is extracted once per content into ``$CVAT_TRAIN_CACHE/exports/<sha256>/``
(default cache: ``~/.cache/jupyter_cvat_train``). Entries with an absolute path, a
``..`` component or a symlink mode are refused (an ``unsafe-archive-entry`` finding,
the entry is not written). Against zip bombs the total uncompressed size is capped
(:data:`MAX_TOTAL_BYTES`, env ``CVAT_TRAIN_MAX_UNZIPPED_BYTES``) and so is the ratio
of uncompressed to compressed bytes of the archive (:data:`MAX_RATIO`); the bytes
actually written are counted, so a header that lies about sizes does not help.
Zip format reference: PKWARE APPNOTE.TXT (https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT);
Unix mode bits sit in the high 16 bits of ``external_attr``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from .findings import ExportError, Finding, finding

MAX_TOTAL_BYTES = int(os.environ.get("CVAT_TRAIN_MAX_UNZIPPED_BYTES", 64 * 1024**3))
MAX_RATIO = 200.0  # uncompressed / compressed, for the archive as a whole
_CHUNK = 1 << 20


def cache_root() -> Path:
    """The cache folder: ``$CVAT_TRAIN_CACHE`` or ``~/.cache/jupyter_cvat_train``."""
    env = os.environ.get("CVAT_TRAIN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "jupyter_cvat_train"


def file_digest(path: Path) -> str:
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
        memo.write_text(digest)
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


def extract_zip(zip_path: Path, dest: Path) -> list[Finding]:
    """Extract ``zip_path`` into ``dest`` (which must not exist yet) safely.

    Returns ``unsafe-archive-entry`` findings for the refused entries.
    Raises ExportError for a file that is not a readable zip (truncated, corrupt,
    encrypted) or that exceeds the size / ratio caps.
    """
    findings: list[Finding] = []
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ExportError(f"{zip_path} is not a readable zip archive ({e}); it may be truncated by an "
                          "interrupted download. Expected a CVAT export zip: download it again.") from None
    with zf:
        infos = zf.infolist()
        compressed = max(1, sum(i.compress_size for i in infos))
        declared = sum(i.file_size for i in infos)
        if declared > MAX_TOTAL_BYTES:
            raise ExportError(f"{zip_path} would extract to {declared / 1e9:.1f} GB, over the limit of "
                              f"{MAX_TOTAL_BYTES / 1e9:.1f} GB (set CVAT_TRAIN_MAX_UNZIPPED_BYTES to raise it)")
        limit = min(MAX_TOTAL_BYTES, max(compressed * MAX_RATIO, 64 * 1024**2))
        written = 0
        dest.mkdir(parents=True)
        for info in infos:
            reason = unsafe_reason(info)
            if reason:
                findings.append(finding("unsafe-archive-entry", f"zip entry {info.filename!r} {reason}; it was "
                                        "not extracted", info.filename))
                continue
            target = dest / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        if written > limit:
                            raise ExportError(
                                f"{zip_path} expands to more than {limit / 1e6:.0f} MB from {compressed / 1e6:.1f} MB "
                                f"compressed (ratio cap {MAX_RATIO:.0f}x): refused as a possible zip bomb")
                        out.write(chunk)
            except ExportError:
                raise
            except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError) as e:
                raise ExportError(f"{zip_path}: entry {info.filename!r} cannot be read ({e}); the zip is "
                                  "truncated or corrupt. Download the export again.") from None
    return findings


def open_export(path: str | os.PathLike) -> tuple[Path, list[Finding]]:
    """The folder holding the export at ``path`` (a folder, or a zip extracted to the
    cache) and the findings of the extraction.

    A folder (or zip) whose only content is one sub-folder is descended into, as happens
    when an extracted export is zipped again with its folder.
    Raises ExportError when ``path`` does not exist or is neither a folder nor a zip.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ExportError(f"{path} does not exist. Expected a CVAT export: a .zip file or an extracted folder.")
    findings: list[Finding] = []
    if path.is_dir():
        root = path
    elif zipfile.is_zipfile(path) or path.suffix.lower() == ".zip":
        root = cache_root() / "exports" / file_digest(path)
        meta = root / ".cvat-train-extracted.json"
        if meta.exists():
            findings = [Finding(**f) for f in json.loads(meta.read_text())["findings"]]
        else:
            (cache_root() / "exports").mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache_root() / "exports"))
            try:
                findings = extract_zip(path, tmp / "x")
                (tmp / "x" / meta.name).write_text(json.dumps({"source": str(path), "findings":
                                                               [f.to_dict() for f in findings]}))
                try:
                    os.replace(tmp / "x", root)
                except OSError:  # another process extracted it meanwhile
                    if not meta.exists():
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    else:
        raise ExportError(f"{path} is neither a folder nor a zip archive. Expected a CVAT export: "
                          "the .zip CVAT downloads, or the folder it extracts to.")
    return descend_single_folder(root), findings


# Folder names that are part of a format's own layout: never descended into.
_LAYOUT_FOLDERS = {"annotations", "images", "jpegimages", "imagesets", "gt", "img1", "obj_train_data",
                   "obj_valid_data", "obj_test_data", "labels"}


def descend_single_folder(root: Path) -> Path:
    """``root``, or the folder below it while a folder holds only one sub-folder
    (hidden files aside) that is not part of a format's layout."""
    for _ in range(3):
        entries = [p for p in root.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
        if len(entries) == 1 and entries[0].is_dir() and entries[0].name.lower() not in _LAYOUT_FOLDERS:
            root = entries[0]
        else:
            break
    return root
