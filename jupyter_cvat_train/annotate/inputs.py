"""The images to annotate: a folder of images, a zip of images, or a CVAT export.

A folder or zip that holds annotation files (``*.json``, ``*.xml``, ``obj.names``,
``*.tfrecord``, ``*.pbtxt``) is treated as a CVAT export and loaded with
:func:`jupyter_cvat_train.datasets.load_export`: its images are annotated, its labels
become the target label set, and its annotations are kept (``keep_existing``) or
replaced. Anything else is a plain collection of images (subfolders included).

Images in a zip are read from the archive directly (no extraction).
"""

from __future__ import annotations

import io
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..datasets.imagefiles import IMAGE_EXTENSIONS
from ..datasets.model import Annotation

ANNOTATION_MARKERS = (".json", ".xml", ".names", ".tfrecord", ".pbtxt")


class InputError(ValueError):
    """The input cannot be used (missing, empty, unreadable); the message says why."""


@dataclass
class ImageSource:
    """One image to annotate.

    name: the image's name in the output files (relative path with extension, ``/``
        separators), e.g. ``BloodImage_00001.jpg``; CVAT matches annotations to task
        images by this name.
    path: the file on disk, or None when the image is a member of ``zip_path``.
    member: the zip member name when the image is read from a zip.
    width, height: pixels, if known before decoding (from an export), else None.
    existing: annotations already on the image (kept with ``keep_existing``).
    """

    name: str
    path: Path | None = None
    zip_path: Path | None = None
    member: str | None = None
    subset: str = "default"
    width: int | None = None
    height: int | None = None
    existing: list[Annotation] = field(default_factory=list)

    def open(self) -> io.BufferedIOBase:
        """A binary file object on the image bytes. Raises OSError if unreadable."""
        if self.path is not None:
            return open(self.path, "rb")
        return io.BytesIO(_zip_read(self.zip_path, self.member))


_zip_local = threading.local()


def _zip_read(zip_path: Path, member: str) -> bytes:
    # One ZipFile per thread and archive: decode workers read members concurrently.
    cache = getattr(_zip_local, "files", None)
    if cache is None:
        cache = _zip_local.files = {}
    zf = cache.get(zip_path)
    if zf is None:
        zf = cache[zip_path] = zipfile.ZipFile(zip_path)
    return zf.read(member)


@dataclass
class AnnotateInput:
    """What :func:`open_input` found.

    kind: ``folder``, ``zip`` or ``export``.
    labels: the export's labels (the target label set), or None for plain images.
    export_format: the export's format id (``coco``, ``cvat``, ...) or None.
    """

    kind: str
    path: Path
    images: list[ImageSource]
    labels: list[str] | None = None
    export_format: str | None = None


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _is_annotation_file(name: str) -> bool:
    low = name.lower()
    return low.endswith(ANNOTATION_MARKERS) and not PurePosixPath(low).name.startswith(".")


def open_input(path: Path | str, *, keep_existing: bool = False) -> AnnotateInput:
    """Find the images under ``path`` (folder, zip of images or CVAT export).

    Images are sorted by name. Raises InputError when the path does not exist, is not
    a folder or zip, holds no image, or is an export that cannot be loaded.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist: give a folder of images, a zip of images or a CVAT export")
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        rel = [p.relative_to(path).as_posix() for p in files]
        if any(_is_annotation_file(r) for r in rel):
            return _open_export(path, keep_existing)
        images = [ImageSource(name=r, path=p) for r, p in zip(rel, files) if _is_image(r)]
        kind = "folder"
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/"))
        if any(_is_annotation_file(n) for n in names):
            return _open_export(path, keep_existing)
        images = [ImageSource(name=n, zip_path=path, member=n) for n in names if _is_image(n)]
        kind = "zip"
    else:
        raise InputError(
            f"{path} is neither a folder nor a zip file: give a folder of images, a zip of images or a CVAT export"
        )
    if not images:
        raise InputError(f"no images found in {path} (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return AnnotateInput(kind, path, images)


def _open_export(path: Path, keep_existing: bool) -> AnnotateInput:
    try:
        from ..datasets import load_export
    except ImportError:
        raise InputError(
            f"{path} looks like a CVAT export (it holds annotation files), but this version cannot "
            "read CVAT exports yet; give a folder or zip of images only"
        ) from None
    try:
        ds = load_export(path)
    except Exception as e:  # noqa: BLE001 - ExportError and whatever a broken export raises
        raise InputError(f"{path} looks like a CVAT export but could not be loaded: {e}") from None
    images = []
    for it in ds.items:
        if it.image_path is None or not Path(it.image_path).is_file():
            continue
        suffix = Path(it.image_path).suffix
        name = it.id if it.id.lower().endswith(IMAGE_EXTENSIONS) else it.id + suffix
        images.append(
            ImageSource(
                name=name,
                path=Path(it.image_path),
                subset=it.subset,
                width=it.width,
                height=it.height,
                existing=list(it.annotations) if keep_existing else [],
            )
        )
    if not images:
        raise InputError(f"the CVAT export {path} contains no images (export it from CVAT with 'Save images' on)")
    images.sort(key=lambda s: s.name)
    return AnnotateInput("export", path, images, labels=list(ds.labels), export_format=ds.format)
