"""The CVAT export formats: detection from the folder layout, and one reader each.

Format ids and the CVAT format names they stand for:

========  ==========================================  ===============================
id        CVAT format                                  reader
========  ==========================================  ===============================
coco      COCO 1.0                                    our own (:mod:`.coco`), for speed
cvat      CVAT for images 1.1                         Datumaro ``cvat``
voc       Pascal VOC 1.1                              Datumaro ``voc``
yolo      YOLO 1.1                                    our own (:mod:`.yolo`): Datumaro's aborts on a bad class
tfrecord  TFRecord 1.0 (TF Object Detection API)      our own (:mod:`.tfrecord`): Datumaro's
                                                      needs TensorFlow, an optional extra
labelme   LabelMe 3.0                                 Datumaro ``label_me``
mot       MOT 1.1                                     Datumaro ``mot_seq``
========  ==========================================  ===============================

Every reader is ``load(root: Path) -> (Dataset, list[Finding])`` and raises ExportError
when the folder cannot be read in its format.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from ..findings import ExportError, Finding
from ..model import Dataset

FORMATS: dict[str, tuple[str, str]] = {
    # id: (module in this package, what the layout looks like)
    "coco": ("coco", "annotations/instances_<subset>.json + images/[<subset>/]"),
    "cvat": ("datumaro_formats", "<subset>.xml or annotations.xml with <annotations> + images/"),
    "voc": ("datumaro_formats", "Annotations/*.xml + JPEGImages/ + ImageSets/Main/<subset>.txt"),
    "yolo": ("yolo", "obj.data + obj.names + obj_<subset>_data/*.{jpg,txt}"),
    "tfrecord": ("tfrecord", "<subset>.tfrecord + label_map.pbtxt"),
    "labelme": ("datumaro_formats", "Annotations/<subset>/*.xml + Images/<subset>/"),
    "mot": ("datumaro_formats", "gt/gt.txt + gt/labels.txt + img1/"),
}

ALIASES = {
    "coco 1.0": "coco",
    "cvat for images 1.1": "cvat",
    "pascal voc 1.1": "voc",
    "pascal_voc": "voc",
    "yolo 1.1": "yolo",
    "tfrecord 1.0": "tfrecord",
    "tf_detection_api": "tfrecord",
    "labelme 3.0": "labelme",
    "label_me": "labelme",
    "mot 1.1": "mot",
    "mot_seq": "mot",
}


def expected_layouts() -> str:
    return "; ".join(f"{k}: {v[1]}" for k, v in FORMATS.items())


def normalize_format(name: str) -> str:
    """The format id for ``name`` (an id, or a CVAT format name like "COCO 1.0").
    Raises ExportError for an unknown name."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in FORMATS:
        raise ExportError(f"unknown format {name!r}; expected one of: {', '.join(FORMATS)}")
    return key


def _is_cvat_xml(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return b"<annotations" in head


def detect_format(root: Path) -> str:
    """The format id of the export in folder ``root``, from its layout (see
    :data:`FORMATS`). Raises ExportError naming the layouts expected when none fits."""
    root = Path(root)
    if not root.is_dir():
        raise ExportError(f"{root} is not a folder")
    names = {p.name for p in root.iterdir()}
    lower = {n.lower() for n in names}
    if (root / "annotations").is_dir() and any((root / "annotations").glob("*.json")):
        return "coco"
    if any(n.endswith(".tfrecord") for n in lower):
        return "tfrecord"
    if "obj.data" in lower or "obj.names" in lower:
        return "yolo"
    if (root / "gt" / "gt.txt").is_file():
        return "mot"
    if "annotations" in lower:
        ann = root / next(n for n in names if n.lower() == "annotations")
        if "jpegimages" in lower or "imagesets" in lower or "labelmap.txt" in lower:
            return "voc"
        if "images" in lower or any(p.is_dir() for p in ann.iterdir()):
            return "labelme"
        if any(ann.glob("*.xml")):
            return "voc"
    if any(p.suffix.lower() == ".xml" and _is_cvat_xml(p) for p in root.iterdir() if p.is_file()):
        return "cvat"
    shown = ", ".join(sorted(names)[:6]) + (", ..." if len(names) > 6 else "") if names else "nothing"
    raise ExportError(
        f"{root} is not a CVAT export in a known format (found: {shown}). Expected one of "
        f"these layouts: {expected_layouts()}"
    )


def reader(format_id: str) -> Callable[[Path], tuple[Dataset, list[Finding]]]:
    """The ``load(root)`` function of format ``format_id``."""
    module = importlib.import_module(f"{__name__}.{FORMATS[format_id][0]}")
    if format_id in ("coco", "tfrecord", "yolo"):
        return module.load
    return lambda root: module.load(root, format_id)
