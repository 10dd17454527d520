"""The formats read with Datumaro (the library CVAT exports with): CVAT for images 1.1,
Pascal VOC 1.1, LabelMe 3.0, MOT 1.1.

Datumaro's importers are run with an error policy that collects item and annotation
errors instead of stopping, so every broken item becomes a finding and the rest loads.
Datumaro annotations map to ours as: ``Bbox`` -> bbox; ``Polygon`` -> polygon + its
extents as bbox; ``Mask`` -> outer contours as polygons + the mask's extents; other
kinds (points, polylines, tags) are not detection annotations and are left out.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..findings import ExportError, Finding, finding
from ..model import Annotation, Dataset, Item

DATUMARO_FORMAT = {"cvat": "cvat", "voc": "voc_detection", "labelme": "label_me", "mot": "mot_seq"}


def _collecting_policy():
    from datumaro.components.contexts.importer import ImportErrorPolicy

    class Collect(ImportErrorPolicy):
        """Keeps every item / annotation error; the importer skips what failed."""

        def __init__(self):
            self.errors: list[tuple[str, Exception]] = []

        def _handle_item_error(self, error):
            self.errors.append(("item", error))

        def _handle_annotation_error(self, error):
            self.errors.append(("annotation", error))

    return Collect()


def _error_finding(kind: str, error: Exception, format_id: str) -> Finding:
    from datumaro.components.errors import UndeclaredLabelError

    cause = error.__cause__ or error
    item_id = getattr(error, "item_id", None)
    ref = f"{item_id[1] or 'default'}/{item_id[0]}" if isinstance(item_id, tuple) else None
    if isinstance(cause, UndeclaredLabelError):
        return finding("undeclared-label", f"{ref} uses label {cause.id!r}, which the export does not declare; "
                       "the annotation was skipped", ref)
    what = "the item was skipped" if kind == "item" else "the annotation was skipped"
    return finding("invalid-annotation", f"{ref}: {type(cause).__name__}: {cause}; {what}", ref)


def _mask_polygons(mask) -> list[list[float]]:
    import cv2
    import numpy as np

    m = np.ascontiguousarray(mask.image).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def convert(dm_dataset, root: Path, format_id: str, policy=None) -> tuple[Dataset, list[Finding]]:
    """Our :class:`Dataset` from a Datumaro dataset (iterating it runs the import)."""
    from datumaro.components.annotation import AnnotationType, Bbox, Mask, Polygon

    label_cats = dm_dataset.categories().get(AnnotationType.label)
    labels = [c.name for c in label_cats] if label_cats else []
    findings: list[Finding] = []
    items: list[Item] = []
    for dm_item in dm_dataset:
        media = dm_item.media
        path = getattr(media, "path", None)
        image_path = Path(path) if path and os.path.isfile(path) else None
        height = width = None
        if media is not None and getattr(media, "has_size", False):
            height, width = media.size
        item = Item(id=str(dm_item.id), image_path=image_path, width=width, height=height,
                    subset=dm_item.subset or "default")
        for ann in dm_item.annotations:
            if not isinstance(ann, (Bbox, Polygon, Mask)):
                continue
            if ann.label is None or not (0 <= ann.label < len(labels)):
                findings.append(finding("undeclared-label", f"an annotation on {item.subset}/{item.id} has label "
                                        f"id {ann.label!r}, which the export does not declare", item.id))
                continue
            polygons: list[list[float]] = []
            if isinstance(ann, Polygon):
                polygons = [list(map(float, ann.points))]
            elif isinstance(ann, Mask):
                polygons = _mask_polygons(ann)
            x, y, w, h = ann.get_bbox()
            attrs = dict(ann.attributes)
            track_id = attrs.get("track_id")
            item.annotations.append(Annotation(labels[ann.label], (float(x), float(y), float(x + w), float(y + h)),
                                               polygons, attrs, None,
                                               int(track_id) if isinstance(track_id, (int, float)) else None))
        items.append(item)
    if format_id == "voc" and "background" in labels:
        # CVAT's VOC labelmap.txt lists VOC's implicit 'background' class; it is no label
        used = {a.label for it in items for a in it.annotations}
        if "background" not in used:
            labels.remove("background")
    if policy is not None:
        findings.extend(_error_finding(kind, e, format_id) for kind, e in policy.errors)
    return Dataset(format=format_id, root=root, labels=labels, items=items), findings


def load(root: Path, format_id: str) -> tuple[Dataset, list[Finding]]:
    """Read the export in folder ``root`` with Datumaro's importer for ``format_id``
    (see :data:`DATUMARO_FORMAT`). Raises ExportError when Datumaro cannot read it."""
    import datumaro as dm
    from datumaro.components.errors import DatumaroError

    policy = _collecting_policy()
    try:
        dm_dataset = dm.Dataset.import_from(str(root), DATUMARO_FORMAT[format_id], error_policy=policy)
        return convert(dm_dataset, root, format_id, policy)
    except ExportError:
        raise
    except (DatumaroError, ValueError, KeyError, OSError, SyntaxError) as e:
        # xml.etree.ElementTree.ParseError is a SyntaxError
        cause = e.__cause__ or e
        raise ExportError(f"{root} cannot be read as a {format_id} export: {type(cause).__name__}: {cause}. "
                          f"Expected the layout CVAT writes for it.") from None
