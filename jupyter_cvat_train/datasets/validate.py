"""Validation of a CVAT export: the report, and the checks every format shares.

The checks run on the normalized :class:`~.model.Dataset` with numpy over all boxes at
once, and read image sizes from file headers (no decoding), so a 20,000-image export
validates in about the time its annotation file takes to parse
(benchmarks/bench_validate.py).
"""

from __future__ import annotations

import gc
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .findings import ExportError, Finding, finding
from .geometry import polygon_area
from .imagefiles import MAX_IMAGE_PIXELS, image_sizes
from .model import Dataset, Item
from .references import UnsafeExport

FEW_ANNOTATIONS = 100  # Onepanel warned below this many annotations in total
BOUNDS_TOLERANCE = 1.0  # pixels a box may reach past the image edge before it is reported


@dataclass
class ValidationReport:
    """The result of :func:`validate_export`.

    path: the export as given. format: the format id, or None if unreadable.
    dataset: the loaded dataset, or None when the input is no readable export.
    findings: every problem found, errors first.
    readable: False when the input could not be read as an export at all (CLI exit 2).
    """

    path: str
    format: str | None
    dataset: Dataset | None
    findings: list[Finding] = field(default_factory=list)
    readable: bool = True
    box_size: dict = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed): the export can be trained on."""
        return self.readable and not self.errors

    @property
    def summary(self) -> dict:
        """format, subsets {name: images}, images, annotations, labels {name: annotations},
        box_size {width, height, area: {min, p5, median, mean, p95, max} in pixels}."""
        ds = self.dataset
        return {
            "format": self.format,
            "subsets": ds.subset_counts() if ds else {},
            "images": len(ds.items) if ds else 0,
            "annotations": ds.annotation_count if ds else 0,
            "labels": ds.label_counts() if ds else {},
            "box_size": self.box_size,
        }

    def to_dict(self) -> dict:
        """The ``cvat-train validate --json`` object: path, format, images, annotations,
        labels, subsets, errors, warnings (lists of finding objects), box_size, ok."""
        s = self.summary
        return {
            "path": self.path,
            "format": self.format,
            "images": s["images"],
            "annotations": s["annotations"],
            "labels": s["labels"],
            "subsets": s["subsets"],
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "box_size": s["box_size"],
            "ok": self.ok,
        }


def item_ref(item: Item, root: Path) -> str:
    """How a finding names an item: its image path inside the export, else subset/id."""
    if item.image_path is not None:
        try:
            return Path(item.image_path).relative_to(root).as_posix()
        except ValueError:  # e.g. an image from a TFRecord, written to the cache
            return f"{item.subset}/{Path(item.image_path).name}"
    return f"{item.subset}/{item.id}"


def _stats(values: np.ndarray) -> dict:
    if values.size == 0:
        return {}
    q = np.percentile(values, [0, 5, 50, 95, 100])
    return {
        "min": round(float(q[0]), 2),
        "p5": round(float(q[1]), 2),
        "median": round(float(q[2]), 2),
        "mean": round(float(values.mean()), 2),
        "p95": round(float(q[3]), 2),
        "max": round(float(q[4]), 2),
    }


def _polygon_problem(poly) -> str | None:
    if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
        return "has fewer than 3 points or an odd number of coordinates"
    try:
        area = polygon_area(poly)
    except TypeError:
        return "has non-numeric coordinates"
    if not math.isfinite(area):
        return "has non-finite coordinates"
    if 2 * area < 1e-6:
        return "has zero area"
    return None


def check_dataset(ds: Dataset, threads: int = 8) -> tuple[list[Finding], dict]:
    """The checks shared by all formats. Returns (findings, box size statistics).

    Finds, in this order: empty-export, no-labels (:func:`_check_declared`);
    missing-image, unreadable-image, image-too-large, image-size-mismatch
    (:func:`_check_images`); undeclared-label, degenerate-box, box-out-of-bounds,
    duplicate-annotation (:func:`_check_boxes`, over all boxes at once);
    image-without-annotations, label-without-annotations, few-annotations
    (:func:`_check_coverage`); invalid-polygon (:func:`_check_polygons`).
    Image sizes are read from file headers by ``threads`` threads.
    """
    out = _check_declared(ds)
    image_findings, widths, heights = _check_images(ds, threads)
    out += image_findings
    boxes = _Boxes.of(ds)
    out += _check_boxes(ds, boxes, widths, heights)
    out += _check_coverage(ds, boxes)
    out += _check_polygons(ds)
    ok = ~boxes.degenerate
    box_size = {
        "width": _stats(boxes.width[ok]),
        "height": _stats(boxes.height[ok]),
        "area": _stats((boxes.width * boxes.height)[ok]),
    }
    return out, box_size


def _check_declared(ds: Dataset) -> list[Finding]:
    """An export with no images or no labels."""
    out = []
    if not ds.items:
        out.append(finding("empty-export", f"the export at {ds.root} holds no images ({ds.format} layout found)"))
    if not ds.labels:
        out.append(finding("no-labels", "the export declares no labels"))
    return out


def _check_images(ds: Dataset, threads: int) -> tuple[list[Finding], np.ndarray, np.ndarray]:
    """Images present, readable, within MAX_IMAGE_PIXELS and of the declared size.
    Returns (findings, widths, heights): the frame each item's boxes were drawn in
    (the declared size where given, else the header's; NaN when neither is known)."""
    out: list[Finding] = []
    root, items = ds.root, ds.items
    sizes = image_sizes([it.image_path for it in items], threads=threads)
    n = len(items)
    widths = np.full(n, np.nan)
    heights = np.full(n, np.nan)
    for i, (it, size) in enumerate(zip(items, sizes, strict=True)):
        if size is None:
            if it.image_path is None or not os.path.exists(it.image_path):
                out.append(
                    finding(
                        "missing-image", f"image of item {it.subset}/{it.id} is not in the export", item_ref(it, root)
                    )
                )
            else:
                out.append(
                    finding("unreadable-image", f"{item_ref(it, root)} cannot be read as an image", item_ref(it, root))
                )
            w, h = it.width, it.height
        else:
            w, h = size
            if w * h > MAX_IMAGE_PIXELS:
                out.append(
                    finding(
                        "image-too-large",
                        f"{item_ref(it, root)} declares {w}x{h} pixels in its header, "
                        f"over the limit of {MAX_IMAGE_PIXELS} pixels that training decodes",
                        item_ref(it, root),
                    )
                )
            if it.width is not None and it.height is not None and (it.width, it.height) != (w, h):
                out.append(
                    finding(
                        "image-size-mismatch",
                        f"{item_ref(it, root)} is {w}x{h} pixels but the annotation file says {it.width}x{it.height}",
                        item_ref(it, root),
                    )
                )
                w, h = it.width, it.height  # boxes were drawn in the declared frame
        if w is not None and h is not None:
            widths[i], heights[i] = w, h
    return out, widths, heights


@dataclass
class _Boxes:
    """Every annotation box of a dataset as arrays, in item order (N boxes, n items)."""

    boxes: np.ndarray  # (N, 4) xyxy in pixels
    labels: np.ndarray  # (N,) index into ds.labels, -1 for an undeclared label
    owner: np.ndarray  # (N,) index of the item holding the box
    counts: np.ndarray  # (n,) annotations per item
    width: np.ndarray  # (N,) x2 - x1
    height: np.ndarray  # (N,) y2 - y1
    finite: np.ndarray  # (N,) all four coordinates finite
    degenerate: np.ndarray  # (N,) not finite, or no width or height

    @classmethod
    def of(cls, ds: Dataset) -> _Boxes:
        items = ds.items
        n = len(items)
        counts = np.fromiter((len(it.annotations) for it in items), dtype=np.int64, count=n)
        total = int(counts.sum())
        label_index = {name: k for k, name in enumerate(ds.labels)}
        boxes = np.array([a.bbox for it in items for a in it.annotations], dtype=np.float64).reshape(total, 4)
        labels = np.fromiter(
            (label_index.get(a.label, -1) for it in items for a in it.annotations), dtype=np.int64, count=total
        )
        owner = np.repeat(np.arange(n), counts)
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        finite = np.isfinite(boxes).all(axis=1)
        degenerate = ~finite | (bw <= 0) | (bh <= 0)
        return cls(boxes, labels, owner, counts, bw, bh, finite, degenerate)

    @property
    def total(self) -> int:
        return len(self.boxes)

    def label_name(self, ds: Dataset, j: int) -> str:
        """The label of box ``j`` for a message."""
        k = self.labels[j]
        return ds.labels[k] if k >= 0 else "(undeclared label)"


def _check_boxes(ds: Dataset, t: _Boxes, widths: np.ndarray, heights: np.ndarray) -> list[Finding]:
    """Boxes with an undeclared label, without area, reaching more than BOUNDS_TOLERANCE
    pixels outside their image (``widths``/``heights`` per item), or repeated."""
    out: list[Finding] = []
    root, items, boxes = ds.root, ds.items, t.boxes
    for j in np.flatnonzero(t.labels < 0):
        it = items[t.owner[j]]
        out.append(
            finding(
                "undeclared-label",
                f"an annotation uses label "
                f"{it.annotations[j - int(t.counts[: t.owner[j]].sum())].label!r}, "
                "which the export does not declare",
                item_ref(it, root),
            )
        )
    for j in np.flatnonzero(t.degenerate):
        it = items[t.owner[j]]
        x1, y1, x2, y2 = boxes[j]
        out.append(
            finding(
                "degenerate-box",
                f"a {t.label_name(ds, j)} box on "
                f"{item_ref(it, root)} has width {x2 - x1:g} and height {y2 - y1:g} pixels "
                f"(xyxy {x1:g},{y1:g},{x2:g},{y2:g})",
                item_ref(it, root),
            )
        )
    iw, ih = widths[t.owner], heights[t.owner]
    with np.errstate(invalid="ignore"):
        oob = t.finite & (
            (boxes[:, 0] < -BOUNDS_TOLERANCE)
            | (boxes[:, 1] < -BOUNDS_TOLERANCE)
            | (boxes[:, 2] > iw + BOUNDS_TOLERANCE)
            | (boxes[:, 3] > ih + BOUNDS_TOLERANCE)
        )
    for j in np.flatnonzero(oob):
        it = items[t.owner[j]]
        x1, y1, x2, y2 = boxes[j]
        out.append(
            finding(
                "box-out-of-bounds",
                f"a {t.label_name(ds, j)} box on "
                f"{item_ref(it, root)} (xyxy {x1:g},{y1:g},{x2:g},{y2:g}) reaches outside the "
                f"{iw[j]:g}x{ih[j]:g} image",
                item_ref(it, root),
            )
        )
    return out + _check_duplicates(ds, t)


def _check_duplicates(ds: Dataset, t: _Boxes) -> list[Finding]:
    """Boxes of the same label on the same item at the same place (to 0.1 pixel); the
    first of each group is kept, the others are reported."""
    out: list[Finding] = []
    if not t.total:
        return out
    key = np.column_stack([t.owner, t.labels, np.round(np.nan_to_num(t.boxes), 1) * 10]).astype(np.int64)
    order = np.lexsort(key.T[::-1])
    sk = key[order]
    same = np.flatnonzero((sk[1:] == sk[:-1]).all(axis=1))
    for j in order[same + 1]:
        it = ds.items[t.owner[j]]
        out.append(
            finding(
                "duplicate-annotation",
                f"{item_ref(it, ds.root)} has two "
                f"{t.label_name(ds, j)} boxes at xyxy "
                f"{','.join(f'{v:g}' for v in t.boxes[j])}",
                item_ref(it, ds.root),
            )
        )
    return out


def _check_coverage(ds: Dataset, t: _Boxes) -> list[Finding]:
    """Images and labels without annotations, and too few annotations in all."""
    out: list[Finding] = []
    for i in np.flatnonzero(t.counts == 0):
        it = ds.items[i]
        out.append(
            finding("image-without-annotations", f"{item_ref(it, ds.root)} has no annotations", item_ref(it, ds.root))
        )
    per_label = np.bincount(t.labels[t.labels >= 0], minlength=len(ds.labels))
    for name, c in zip(ds.labels, per_label, strict=True):
        if c == 0:
            out.append(finding("label-without-annotations", f"label {name!r} has no annotations", name))
    if 0 < t.total < FEW_ANNOTATIONS or (t.total == 0 and ds.items):
        out.append(finding("few-annotations", f"only {t.total} annotations in total (fewer than {FEW_ANNOTATIONS})"))
    return out


def _check_polygons(ds: Dataset) -> list[Finding]:
    """Polygons that are not a valid ring (see :func:`_polygon_problem`)."""
    out: list[Finding] = []
    for it in ds.items:
        for a in it.annotations:
            for poly in a.polygons or ():
                problem = _polygon_problem(poly)
                if problem:
                    out.append(
                        finding(
                            "invalid-polygon",
                            f"a {a.label} polygon on {item_ref(it, ds.root)} {problem}",
                            item_ref(it, ds.root),
                        )
                    )
    return out


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while building many objects that are all kept
    (parsed JSON, items, annotations): with it on, Python re-scans the growing heap again
    and again, which doubles the load time of a large export."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def validate_export(path: str | os.PathLike, format: str | None = None, *, threads: int = 8) -> ValidationReport:
    """Open, load and check the CVAT export at ``path`` (zip or folder).

    format: a format id (see :mod:`.formats`) or None to detect it from the layout.
    Never raises for bad input: an input that is no readable export gives a report with
    ``readable=False``, ``dataset=None`` and one ``unreadable-export`` error saying why.
    A folder holding links that lead outside it or special files gives ``dataset=None``
    and one ``unsafe-reference`` / ``special-file`` / ``annotation-file-too-large`` error
    per entry; nothing in it was read.
    """
    with gc_paused():
        return _validate(path, format, threads)


def _validate(path, format, threads) -> ValidationReport:
    from . import formats
    from .archive import open_export

    report = ValidationReport(path=str(path), format=None, dataset=None)
    try:
        root, archive_findings = open_export(path)
        report.findings.extend(archive_findings)
        fmt = formats.normalize_format(format) if format else formats.detect_format(root)
        report.format = fmt
        ds, load_findings = formats.reader(fmt)(root)
        report.findings.extend(load_findings)
    except UnsafeExport as e:  # readable, but not to be read: the findings say what to remove
        report.findings.extend(e.findings)
        return report
    except ExportError as e:
        report.readable = False
        report.findings.append(finding("unreadable-export", str(e), str(path)))
        return report
    except Exception as e:  # noqa: BLE001 - a parser's unexpected failure is still "unreadable"
        report.readable = False
        report.findings.append(
            finding(
                "unreadable-export",
                f"{path} could not be read as a {report.format or 'CVAT'} export: {type(e).__name__}: {e}",
                str(path),
            )
        )
        return report
    report.dataset = ds
    checks, report.box_size = check_dataset(ds, threads=threads)
    report.findings.extend(checks)
    report.findings.sort(key=lambda f: f.severity != "error")
    return report
