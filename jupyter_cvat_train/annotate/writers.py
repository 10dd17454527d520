"""Writers of CVAT-importable annotation zips (annotations only, no images).

Each writer takes the annotated images and the label list and writes one zip,
atomically: to a temp file in the output's folder, then published (:func:`.outputs.publish`:
replaced only with ``overwrite``). Layouts follow what CVAT itself exports (and imports)
for each format:

- ``coco``: COCO 1.0, ``annotations/instances_default.json``
  (https://cocodataset.org/#format-data). bbox is xywh pixels; each predicted
  annotation has ``score`` (the COCO results field) and ``attributes.source = "auto"``;
  images are listed with ``file_name``, ``width``, ``height``; category ids 1..M in label order.
- ``cvat``: CVAT for images 1.1, ``annotations.xml``
  (https://docs.cvat.ai/docs/manual/advanced/xml_format/): ``<box xtl ytl xbr ybr>``
  or ``<polygon points="x,y;x,y">`` per object, ``source="auto"`` for predictions.
- ``yolo``: YOLO 1.1 (darknet): ``obj.data``, ``obj.names``, ``train.txt``,
  ``obj_train_data/<image stem>.txt`` with ``class cx cy w h`` normalized to [0, 1]
  (class is 0-based), plus ``images.meta`` (``name height width`` per line) so that
  readers without the images (Datumaro) know the image sizes. Boxes only.
"""

from __future__ import annotations

import functools
import json
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..datasets.formats.coco import coco_document
from ..datasets.model import Annotation
from ..fileio import atomic_write_with
from .outputs import publish

FORMATS = ("coco", "cvat", "yolo")


@dataclass
class AnnotatedImage:
    """One image with the annotations to write; width and height in pixels."""

    name: str
    width: int
    height: int
    annotations: list[Annotation] = field(default_factory=list)
    subset: str = "default"


def _atomic_zip(output: Path, files: dict[str, bytes], overwrite: bool = True) -> Path:
    """Write ``files`` {member name: bytes} as a zip to ``output``: to a temp file in the
    same (existing) folder, then published with :func:`.outputs.publish` (which, without
    ``overwrite``, never replaces a file that exists by then)."""

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for member, data in files.items():
                zf.writestr(member, data)

    return atomic_write_with(output, write, publish=functools.partial(publish, overwrite=overwrite))


def _round(v: float) -> float:
    return round(float(v), 2)


def write_coco(
    output: Path, images: list[AnnotatedImage], labels: list[str], *, description: str = "", overwrite: bool = True
) -> Path:
    """Write a COCO 1.0 zip (``annotations/instances_default.json``) to ``output``."""
    doc = coco_document(
        [(im.name, im.width, im.height, im.annotations) for im in images], labels, description=description
    )
    data = json.dumps(doc, separators=(",", ":")).encode()
    return _atomic_zip(output, {"annotations/instances_default.json": data}, overwrite)


def cvat_xml(images: list[AnnotatedImage], labels: list[str], *, description: str = "") -> bytes:
    """The CVAT for images 1.1 XML document for ``images`` (see the module docstring)."""
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(root, "meta")
    task = ET.SubElement(meta, "task")
    ET.SubElement(task, "name").text = description or "auto-annotation"
    ET.SubElement(task, "size").text = str(len(images))
    ET.SubElement(task, "mode").text = "annotation"
    xl = ET.SubElement(task, "labels")
    for name in labels:
        le = ET.SubElement(xl, "label")
        ET.SubElement(le, "name").text = name
        ET.SubElement(le, "attributes")
    for idx, im in enumerate(images):
        ie = ET.SubElement(
            root, "image", {"id": str(idx), "name": im.name, "width": str(im.width), "height": str(im.height)}
        )
        for a in im.annotations:
            common = {
                "label": a.label,
                "source": "auto" if a.score is not None else "manual",
                "occluded": "1" if a.attributes.get("occluded") else "0",
                "z_order": "0",
            }
            if a.polygons:
                for poly in a.polygons:
                    pts = ";".join(f"{_round(poly[i])},{_round(poly[i + 1])}" for i in range(0, len(poly), 2))
                    ET.SubElement(ie, "polygon", {**common, "points": pts})
            else:
                x1, y1, x2, y2 = a.bbox
                ET.SubElement(
                    ie,
                    "box",
                    {
                        **common,
                        "xtl": str(_round(x1)),
                        "ytl": str(_round(y1)),
                        "xbr": str(_round(x2)),
                        "ybr": str(_round(y2)),
                    },
                )
    ET.indent(root)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")


def write_cvat(
    output: Path, images: list[AnnotatedImage], labels: list[str], *, description: str = "", overwrite: bool = True
) -> Path:
    """Write a CVAT for images 1.1 zip (``annotations.xml``) to ``output``."""
    return _atomic_zip(output, {"annotations.xml": cvat_xml(images, labels, description=description)}, overwrite)


def write_yolo(
    output: Path, images: list[AnnotatedImage], labels: list[str], *, description: str = "", overwrite: bool = True
) -> Path:
    """Write a YOLO 1.1 zip to ``output`` (boxes only; polygons are written as their bbox)."""
    cls = {name: i for i, name in enumerate(labels)}
    files: dict[str, bytes] = {
        "obj.names": "".join(f"{n}\n" for n in labels).encode(),
        "obj.data": (
            f"classes = {len(labels)}\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n"
        ).encode(),
    }
    train, meta = [], []
    for im in images:
        rel = PurePosixPath(im.name)
        train.append(f"data/obj_train_data/{rel}\n")
        meta.append(f"{json.dumps(str(rel.with_suffix('')))} {im.height} {im.width}\n")
        lines = []
        for a in im.annotations:
            x1, y1, x2, y2 = a.bbox
            lines.append(
                f"{cls[a.label]} {(x1 + x2) / 2 / im.width:.6f} {(y1 + y2) / 2 / im.height:.6f} "
                f"{(x2 - x1) / im.width:.6f} {(y2 - y1) / im.height:.6f}\n"
            )
        files[f"obj_train_data/{rel.with_suffix('.txt')}"] = "".join(lines).encode()
    files["train.txt"] = "".join(train).encode()
    files["images.meta"] = "".join(meta).encode()
    return _atomic_zip(output, files, overwrite)


WRITERS = {"coco": write_coco, "cvat": write_cvat, "yolo": write_yolo}


def write_annotations(
    fmt: str,
    output: Path,
    images: list[AnnotatedImage],
    labels: list[str],
    *,
    description: str = "",
    overwrite: bool = True,
) -> Path:
    """Write ``images`` in format ``fmt`` (one of :data:`FORMATS`) to the zip ``output``
    (its folder must exist). Without ``overwrite`` an existing ``output`` is left alone
    (OutputError). Raises ValueError for an unknown format."""
    try:
        writer = WRITERS[fmt]
    except KeyError:
        raise ValueError(f"unknown output format {fmt!r}: choose one of {', '.join(FORMATS)}") from None
    return writer(Path(output), images, labels, description=description, overwrite=overwrite)
