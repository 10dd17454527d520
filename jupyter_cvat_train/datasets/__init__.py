"""CVAT export I/O: open (zip or folder), detect the format, load, validate; sample data.

Public API::

    load_export(path, format=None) -> Dataset        raises ExportError
    validate_export(path, format=None) -> ValidationReport   never raises on bad input
    detect_format(root) -> str
    generate_sample(out, format="coco", images=200, seed=0) -> Path
    ExportError, Finding, ValidationReport

The normalized types (Dataset, Item, Annotation) are in :mod:`.model`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .findings import CODES, ExportError, Finding
from .model import Annotation, Dataset, Item

__all__ = [
    "Annotation",
    "CODES",
    "Dataset",
    "ExportError",
    "Finding",
    "Item",
    "ValidationReport",
    "detect_format",
    "generate_sample",
    "load_export",
    "validate_export",
]


def load_export(path: str | os.PathLike, format: str | None = None) -> Dataset:
    """Load the CVAT export at ``path`` (a zip, extracted safely to the cache, or a folder).

    format: ``coco``, ``cvat``, ``voc``, ``yolo``, ``tfrecord``, ``labelme``, ``mot`` (or
    a CVAT format name such as "COCO 1.0"); None detects it from the layout.
    Every Item.image_path that is not None is a file on disk (TFRecord images are written
    to the cache). Problems inside the export (missing images, bad boxes) do not raise:
    use :func:`validate_export` to find them.
    Raises ExportError when the input cannot be read as an export at all.
    """
    from . import formats
    from .archive import open_export
    from .validate import gc_paused

    root, _ = open_export(path)
    fmt = formats.normalize_format(format) if format else formats.detect_format(root)
    try:
        with gc_paused():
            ds, _ = formats.reader(fmt)(root)
    except ExportError:
        raise
    except Exception as e:  # noqa: BLE001 - a parser's own error type means the same to callers
        raise ExportError(f"{path} could not be read as a {fmt} export: {type(e).__name__}: {e}") from None
    return ds


def detect_format(root: str | os.PathLike) -> str:
    """The format id of the extracted export in folder ``root``; raises ExportError when
    the layout is none of the known ones (the message lists them)."""
    from .formats import detect_format as _detect

    return _detect(Path(root))


def validate_export(path: str | os.PathLike, format: str | None = None):
    """See :func:`.validate.validate_export`."""
    from .validate import validate_export as _validate

    return _validate(path, format)


def generate_sample(out: str | os.PathLike, format: str = "coco", images: int = 200, seed: int = 0, **kwargs) -> Path:
    """See :func:`.sample.generate_sample`."""
    from .sample import generate_sample as _generate

    return _generate(out, format=format, images=images, seed=seed, **kwargs)


def __getattr__(name):
    if name == "ValidationReport":
        from .validate import ValidationReport

        return ValidationReport
    raise AttributeError(name)
