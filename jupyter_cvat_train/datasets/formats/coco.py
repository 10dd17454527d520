"""COCO 1.0 as CVAT exports it — our own reader, for speed.

Layout (CVAT "COCO 1.0"): ``annotations/instances_<subset>.json`` and the images under
``images/<subset>/`` (current CVAT) or directly under ``images/`` (older CVAT).
File format: https://cocodataset.org/#format-data (object detection): ``bbox`` is
``[x, y, width, height]`` in pixels (converted here to xyxy); ``segmentation`` is a list
of flat polygons, or an RLE dict when ``iscrowd`` is 1 (converted to polygons).

Why not Datumaro here: on an export of 20,000 images x 10 boxes, Datumaro's COCO
import alone takes several times the JSON parse (see benchmarks/bench_validate.py);
this reader is a single pass over the parsed JSON.

:func:`coco_document` builds the same document for writing (the annotate job's COCO
output, the sample generator).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..findings import ExportError, Finding, finding
from ..geometry import polygon_area
from ..model import Annotation, Dataset, Item
from ..references import ExportRoot, read_annotation_file, unsafe_reference

try:  # orjson (a Datumaro dependency) parses 2-3x faster than the standard library
    import orjson as _json

    _loads = _json.loads
except ImportError:  # pragma: no cover
    import json as _json

    _loads = _json.loads


def _round(v: float) -> float:
    return round(float(v), 2)


def coco_document(
    images: Iterable[tuple[str, int, int, Iterable[Annotation]]], labels: Sequence[str], *, description: str = ""
) -> dict:
    """The COCO 1.0 instances document CVAT exports (and imports) for ``images``.

    images: ``(file_name, width, height, annotations)`` per image, in pixels; image ids
    1..N in this order, annotation ids 1..M. labels: category ids 1..K in this order;
    every annotation's label must be one of them (KeyError otherwise).
    Each annotation: ``bbox`` xywh and ``area`` (of its polygons, else of its box) in
    pixels rounded to 0.01; ``segmentation`` its polygons; ``attributes.occluded``; a
    prediction (``score`` not None) also gets ``score`` and ``attributes.source = "auto"``.
    """
    cat_id = {name: i for i, name in enumerate(labels, start=1)}
    out_images, out_anns = [], []
    ann_id = 0
    for image_id, (name, width, height, anns) in enumerate(images, start=1):
        out_images.append(
            {
                "id": image_id,
                "width": width,
                "height": height,
                "file_name": name,
                "license": 0,
                "flickr_url": "",
                "coco_url": "",
                "date_captured": 0,
            }
        )
        for a in anns:
            ann_id += 1
            x1, y1, x2, y2 = a.bbox
            area = sum(polygon_area(p) for p in a.polygons) if a.polygons else (x2 - x1) * (y2 - y1)
            attributes = {"occluded": bool(a.attributes.get("occluded", False))}
            if a.score is not None:
                attributes["source"] = "auto"
            ann = {
                "id": ann_id,
                "image_id": image_id,
                "category_id": cat_id[a.label],
                "segmentation": [list(p) for p in a.polygons],
                "area": _round(area),
                "bbox": [_round(x1), _round(y1), _round(x2 - x1), _round(y2 - y1)],
                "iscrowd": 0,
                "attributes": attributes,
            }
            if a.score is not None:
                ann["score"] = round(float(a.score), 5)
            out_anns.append(ann)
    return {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {
            "contributor": "",
            "date_created": "",
            "description": description,
            "url": "",
            "version": "",
            "year": "",
        },
        "categories": [{"id": i, "name": n, "supercategory": ""} for n, i in cat_id.items()],
        "images": out_images,
        "annotations": out_anns,
    }


def annotation_files(root: Path) -> list[Path]:
    """The COCO instance files of an export: ``annotations/instances_*.json``, else any
    ``annotations/*.json``."""
    folder = root / "annotations"
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("instances_*.json"))
    return files or sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))


def subset_name(path: Path) -> str:
    stem = path.stem
    for prefix in ("instances_", "person_keypoints_"):
        if stem.startswith(prefix):
            return stem[len(prefix) :] or "default"
    return stem or "default"


def read_json(path: Path) -> dict:
    """The JSON object in ``path``. Raises ExportError (with line and column) when it does
    not parse or is not an object, and when it is larger than the annotation file cap
    (:func:`..references.read_annotation_file`)."""
    data = read_annotation_file(path)
    try:
        data = _loads(data)
    except ValueError as e:
        raise ExportError(
            f"{path} is not valid JSON ({e}). Expected a COCO annotation file as CVAT "
            "exports it; the file may be truncated: export again."
        ) from None
    if not isinstance(data, dict):
        raise ExportError(
            f"{path} holds a JSON {type(data).__name__}, expected a COCO object with "
            "'images', 'annotations' and 'categories'"
        )
    return data


def rle_to_polygons(segm: dict, height: int, width: int) -> list[list[float]]:
    """Outer contours of a COCO RLE mask (compressed or not) as flat xy polygons, as
    traced (:func:`..geometry.mask_to_polygons` without simplification or filtering)."""
    import numpy as np
    from pycocotools import mask as mask_utils

    from ..geometry import mask_to_polygons

    if isinstance(segm.get("counts"), list):
        segm = mask_utils.frPyObjects(segm, segm["size"][0], segm["size"][1])
    m = np.ascontiguousarray(mask_utils.decode(segm)).astype(np.uint8)
    return mask_to_polygons(m, tolerance=0, min_area=0, largest_first=False)


def load(root: Path) -> tuple[Dataset, list[Finding]]:
    """Read a COCO 1.0 export in folder ``root``.

    Returns the dataset and the findings met while reading (``undeclared-label``,
    ``unknown-image``, ``invalid-annotation``, ``unsafe-reference`` for a ``file_name``
    that does not resolve inside the export: that image and its annotations are left out). Raises ExportError when there is no
    annotation file or one does not parse.
    """
    files = annotation_files(root)
    if not files:
        raise ExportError(f"{root} has no annotations/instances_<subset>.json: not a COCO export")
    findings: list[Finding] = []
    labels: list[str] = []
    items: list[Item] = []
    export = ExportRoot(root)
    for path in files:
        subset = subset_name(path)
        rel = f"annotations/{path.name}"
        data = read_json(path)
        images, anns, cats = data.get("images"), data.get("annotations", []), data.get("categories", [])
        if not isinstance(images, list) or not isinstance(anns, list) or not isinstance(cats, list):
            raise ExportError(
                f"{path}: 'images', 'annotations' and 'categories' must be lists; expected a "
                "COCO instances file as CVAT exports it"
            )
        cat_names: dict = {}
        for c in cats:
            try:
                name = str(c["name"])
                cat_names[c["id"]] = name
            except (TypeError, KeyError):
                findings.append(finding("invalid-annotation", f"{rel}: category {c!r} lacks 'id' or 'name'", rel))
                continue
            if name not in labels:
                labels.append(name)

        by_id: dict = {}
        unsafe_ids: set = set()
        for n, im in enumerate(images):
            try:
                file_name = im["file_name"]
                image_id = im["id"]
            except (TypeError, KeyError):
                findings.append(
                    finding("invalid-annotation", f"{rel}: image entry {str(im)[:80]} lacks 'id' or 'file_name'", rel)
                )
                continue
            # images/<subset>/<file_name> (current CVAT), else images/<file_name> (older CVAT)
            image_path = export.resolve(file_name, f"images/{subset}")
            if image_path is None:
                findings.append(unsafe_reference(rel, f"images[{n}].file_name", file_name))
                unsafe_ids.add(_hashable(image_id))
                continue
            if export.kind(image_path) != "file":
                fallback = export.resolve(file_name, "images")
                if fallback is not None and export.kind(fallback) == "file":
                    image_path = fallback
            file_name = str(file_name)
            w, h = im.get("width"), im.get("height")
            item = Item(
                id=os.path.splitext(file_name)[0],
                image_path=image_path,
                width=int(w) if isinstance(w, (int, float)) else None,
                height=int(h) if isinstance(h, (int, float)) else None,
                subset=subset,
            )
            by_id[image_id] = item
            items.append(item)

        for a in anns:
            try:
                item = by_id.get(a["image_id"])
                x, y, w, h = a["bbox"]
                x, y = float(x), float(y)
                bbox = (x, y, x + float(w), y + float(h))
                cid = a["category_id"]
            except (TypeError, KeyError, ValueError):
                findings.append(
                    finding(
                        "invalid-annotation",
                        f"{rel}: annotation id {_aid(a)} has no valid "
                        "'image_id', 'category_id' and 'bbox' [x, y, w, h]",
                        rel,
                    )
                )
                continue
            if item is None:
                if _hashable(a["image_id"]) in unsafe_ids:
                    continue  # its image was refused and reported
                findings.append(
                    finding(
                        "unknown-image",
                        f"{rel}: annotation id {_aid(a)} refers to image_id "
                        f"{a['image_id']!r}, which is not in 'images'",
                        rel,
                    )
                )
                continue
            label = cat_names.get(cid)
            if label is None:
                findings.append(
                    finding(
                        "undeclared-label",
                        f"annotation id {_aid(a)} has category_id {cid!r}, "
                        f"which {rel} does not declare in 'categories'",
                        item.id,
                    )
                )
                continue
            segm = a.get("segmentation")
            if not segm:
                polygons = []
            elif isinstance(segm, list):
                polygons = segm if isinstance(segm[0], list) else [segm]
            elif isinstance(segm, dict) and item.width and item.height:
                try:
                    polygons = rle_to_polygons(segm, item.height, item.width)
                except Exception:  # noqa: BLE001 - a broken mask keeps its box
                    findings.append(
                        finding(
                            "invalid-polygon",
                            f"annotation id {_aid(a)}: the RLE mask cannot be decoded; its box is kept",
                            item.id,
                        )
                    )
                    polygons = []
            else:
                polygons = []
            attributes = a.get("attributes") or {}
            if a.get("iscrowd"):
                attributes = {**attributes, "iscrowd": 1}
            item.annotations.append(Annotation(label, bbox, polygons, attributes, a.get("score"), a.get("track_id")))
    return Dataset(format="coco", root=root, labels=labels, items=items), findings


def _hashable(value):
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def _aid(a) -> str:
    return repr(a.get("id")) if isinstance(a, dict) else repr(a)[:40]
