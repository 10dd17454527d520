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
from ..references import ExportRoot, check_annotation_size, unsafe_reference

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
        return finding(
            "undeclared-label",
            f"{ref} uses label {cause.id!r}, which the export does not declare; the annotation was skipped",
            ref,
        )
    if isinstance(cause, ValueError) and (
        "escapes base directory" in str(cause) or "reference the parent directory" in str(cause)
    ):
        # datumaro.util.os_util.join_within_base refused a file name
        return finding(
            "unsafe-reference",
            f"{ref}: a file name does not resolve inside the export; the item was skipped and the file not read",
            ref,
        )
    what = "the item was skipped" if kind == "item" else "the annotation was skipped"
    return finding("invalid-annotation", f"{ref}: {type(cause).__name__}: {cause}; {what}", ref)


def _mask_polygons(mask) -> list[list[float]]:
    import numpy as np

    from ..geometry import mask_to_polygons

    m = np.ascontiguousarray(mask.image).astype(np.uint8)
    return mask_to_polygons(m, tolerance=0, min_area=0, largest_first=False)


def convert(
    dm_dataset, root: Path, format_id: str, policy=None, export: ExportRoot | None = None
) -> tuple[Dataset, list[Finding]]:
    """Our :class:`Dataset` from a Datumaro dataset (iterating it runs the import). An
    image path outside ``root`` is an ``unsafe-reference`` finding and its item is left out."""
    from datumaro.components.annotation import AnnotationType, Bbox, Mask, Polygon

    export = export or ExportRoot(root)
    label_cats = dm_dataset.categories().get(AnnotationType.label)
    labels = [c.name for c in label_cats] if label_cats else []
    findings: list[Finding] = []
    items: list[Item] = []
    for dm_item in dm_dataset:
        media = dm_item.media
        path = getattr(media, "path", None)
        image_path = None
        if path and os.path.isabs(path):  # a relative one was joined to no folder: no image
            image_path = export.contains(path)
            if image_path is None:
                findings.append(
                    unsafe_reference(
                        f"{dm_item.subset or 'default'}/{dm_item.id}", "image path", os.path.relpath(path, export.path)
                    )
                )
                continue
            if export.kind(image_path) != "file":
                image_path = None
        height = width = None
        if media is not None and getattr(media, "has_size", False):
            height, width = media.size
        item = Item(
            id=str(dm_item.id), image_path=image_path, width=width, height=height, subset=dm_item.subset or "default"
        )
        for ann in dm_item.annotations:
            if not isinstance(ann, (Bbox, Polygon, Mask)):
                continue
            if ann.label is None or not (0 <= ann.label < len(labels)):
                findings.append(
                    finding(
                        "undeclared-label",
                        f"an annotation on {item.subset}/{item.id} has label "
                        f"id {ann.label!r}, which the export does not declare",
                        item.id,
                    )
                )
                continue
            polygons: list[list[float]] = []
            if isinstance(ann, Polygon):
                polygons = [list(map(float, ann.points))]
            elif isinstance(ann, Mask):
                polygons = _mask_polygons(ann)
            x, y, w, h = ann.get_bbox()
            attrs = dict(ann.attributes)
            track_id = attrs.get("track_id")
            item.annotations.append(
                Annotation(
                    labels[ann.label],
                    (float(x), float(y), float(x + w), float(y + h)),
                    polygons,
                    attrs,
                    None,
                    int(track_id) if isinstance(track_id, (int, float)) else None,
                )
            )
        items.append(item)
    if format_id == "voc" and "background" in labels:
        # CVAT's VOC labelmap.txt lists VOC's implicit 'background' class; it is no label
        used = {a.label for it in items for a in it.annotations}
        if "background" not in used:
            labels.remove("background")
    if policy is not None:
        findings.extend(_error_finding(kind, e, format_id) for kind, e in policy.errors)
    return Dataset(format=format_id, root=root, labels=labels, items=items), findings


# Annotation files Datumaro parses, checked against the size cap before it opens them.
ANNOTATION_FILES = {
    "cvat": ("*.xml",),
    "voc": ("Annotations/**/*.xml", "ImageSets/**/*.txt", "labelmap.txt"),
    "labelme": ("**/*.xml",),
    "mot": ("**/gt/*.txt", "**/seqinfo.ini"),
}


def _checked_environment(export: ExportRoot, findings: list[Finding]):
    """A Datumaro plugin environment whose CVAT and MOT readers check the file names
    they take from the export (CVAT ``<image name>``, MOT ``imDir``) with ``export``
    before Datumaro joins and stats them; a refused name is an ``unsafe-reference``
    finding and its image is left out. (VOC and LabelMe names go through Datumaro's own
    ``join_within_base``; links were checked by the scan of the export.)"""
    from datumaro.components.environment import Environment
    from datumaro.plugins.data_formats.cvat.base import CvatBase
    from datumaro.plugins.data_formats.mot import MotSeqBase

    class CheckedCvatBase(CvatBase):
        def _load_items(self, parsed):
            if not self._images_dir:  # Datumaro would join the names to the working directory
                self._images_dir = os.path.join(os.path.dirname(self._path), "images")
            base = os.path.relpath(self._images_dir, export.path)
            where = os.path.relpath(self._path, export.path)
            for frame_id, desc in list(parsed.items()):
                name = desc.get("name", "frame_%06d.png" % int(frame_id))
                if export.resolve(name, base) is None or export.resolve(name, f"{base}/{self._subset or ''}") is None:
                    findings.append(unsafe_reference(where, f"<image id={frame_id}> name", name))
                    del parsed[frame_id]
            return super()._load_items(parsed)

    class CheckedMotSeqBase(MotSeqBase):
        @classmethod
        def _parse_seq_info(cls, path):
            fields = super()._parse_seq_info(path)
            if export.resolve(fields["imdir"], os.path.relpath(os.path.dirname(path), export.path)) is None:
                findings.append(unsafe_reference(os.path.relpath(path, export.path), "imDir", fields["imdir"]))
                fields["imdir"] = ".refused-imdir"  # a folder that does not exist, inside the export
            return fields

    env = Environment()
    env.extractors.register("cvat", CheckedCvatBase)
    env.extractors.register("mot_seq", CheckedMotSeqBase)
    return env


def load(root: Path, format_id: str) -> tuple[Dataset, list[Finding]]:
    """Read the export in folder ``root`` with Datumaro's importer for ``format_id``
    (see :data:`DATUMARO_FORMAT`). Raises ExportError when Datumaro cannot read it or an
    annotation file is over the size cap. An image name that does not resolve inside the
    export is an ``unsafe-reference`` finding, and that item is left out."""
    import datumaro as dm
    from datumaro.components.errors import DatumaroError

    export = ExportRoot(root)
    for pattern in ANNOTATION_FILES[format_id]:
        for path in root.glob(pattern):
            check_annotation_size(path, export.relative(path))
    policy = _collecting_policy()
    findings: list[Finding] = []
    try:
        dm_dataset = dm.Dataset.import_from(
            str(root), DATUMARO_FORMAT[format_id], error_policy=policy, env=_checked_environment(export, findings)
        )
        ds, more = convert(dm_dataset, root, format_id, policy, export)
        return ds, findings + more
    except ExportError:
        raise
    except (DatumaroError, ValueError, KeyError, OSError, SyntaxError) as e:
        # xml.etree.ElementTree.ParseError is a SyntaxError
        cause = e.__cause__ or e
        raise ExportError(
            f"{root} cannot be read as a {format_id} export: {type(cause).__name__}: {cause}. "
            f"Expected the layout CVAT writes for it."
        ) from None
