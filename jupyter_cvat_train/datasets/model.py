"""The normalized in-memory dataset that every other part of the project uses.

Whatever the CVAT export format, loading gives a :class:`Dataset`: items (one per
image) with their annotations, and the labels in export order. Coordinates are pixels
in the image's own frame, origin at the top-left corner.

- bbox: ``(x1, y1, x2, y2)`` = xyxy, pixels, floats. COCO's xywh is converted on load.
- polygons: a list of polygons, each a flat ``[x1, y1, x2, y2, ...]`` list in pixels
  (COCO's ``segmentation`` layout). Masks (COCO RLE, CVAT masks) are converted to
  polygons on load where a format carries them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Annotation:
    """One object on one image.

    label: the label name (one of ``Dataset.labels``, unless the export is broken).
    bbox: xyxy in pixels.
    polygons: instance outline(s), flat xy lists in pixels; empty for box-only data.
    attributes: CVAT attributes (e.g. ``occluded``), passed through.
    score: confidence in [0, 1] for predictions; None for human annotations.
    track_id: MOT / CVAT track id, else None.
    """

    label: str
    bbox: tuple[float, float, float, float]
    polygons: list[list[float]] = field(default_factory=list)
    attributes: dict = field(default_factory=dict)
    score: float | None = None
    track_id: int | None = None


@dataclass
class Item:
    """One image and its annotations.

    id: the item id within its subset (usually the file name without extension).
    image_path: the image file on disk (extracted from a zip or TFRecord if needed),
        or None when the export does not contain it.
    width, height: the size the annotation file declares, in pixels, or None if unknown.
    subset: CVAT subset name ("default", "train", "val", ...).
    """

    id: str
    image_path: Path | None
    width: int | None
    height: int | None
    subset: str = "default"
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class Dataset:
    """A loaded CVAT export.

    format: the format id (``coco``, ``cvat``, ``voc``, ``yolo``, ``tfrecord``,
        ``labelme``, ``mot``), see :mod:`jupyter_cvat_train.datasets.formats`.
    root: the folder the export was read from (the extraction folder for a zip).
    labels: label names in export order; training maps them to ids 1..N (0 = background).
    """

    format: str
    root: Path
    labels: list[str]
    items: list[Item] = field(default_factory=list)

    @property
    def annotation_count(self) -> int:
        return sum(len(it.annotations) for it in self.items)

    def label_counts(self) -> dict[str, int]:
        """Annotations per label, in label order (labels without annotations give 0)."""
        counts = {name: 0 for name in self.labels}
        for it in self.items:
            for a in it.annotations:
                counts[a.label] = counts.get(a.label, 0) + 1
        return counts

    def subset_counts(self) -> dict[str, int]:
        """Images per subset."""
        counts: dict[str, int] = {}
        for it in self.items:
            counts[it.subset] = counts.get(it.subset, 0) + 1
        return counts
