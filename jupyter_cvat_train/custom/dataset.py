"""The export as the template's code reads it: ``<job>/data/datasets/<format>/``.

An export already in the template's dump format is placed as it is (its extracted
folder, files hard-linked where the file system allows, else copied). Another format is
converted with Datumaro's exporter for the dump format, from the items our reader loaded
and validation passed: boxes as ``Bbox``, polygons as ``Polygon``, the labels in the
export's order, the images saved with the media.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..datasets.model import Dataset
from ..jobs.runtime import JobError

# our format id -> Datumaro's exporter
EXPORTERS = {
    "coco": "coco_instances",
    "voc": "voc_detection",
    "yolo": "yolo",
    "mot": "mot_seq_gt",
    "labelme": "label_me",
    "cvat": "cvat",
    "tfrecord": "tf_detection_api",
}


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def place(ds: Dataset, dump_format: str, dest: Path) -> Path:
    """Write the export ``ds`` (loaded and validated) into the new folder ``dest`` in
    ``dump_format`` (our format id). Returns ``dest``. Raises JobError when the dump
    format needs what is not installed (TFRecord: TensorFlow) or the export fails."""
    if ds.format == dump_format:
        shutil.copytree(ds.root, dest, symlinks=False, copy_function=_link_or_copy)
        return dest
    if dump_format == "tfrecord":
        raise JobError(
            f"the template wants cvat_tfrecord, and the export is {ds.format}: converting to TFRecord "
            "needs TensorFlow, which is not installed here; export the task from CVAT as TFRecord, or "
            "change dump_format"
        )
    return _convert(ds, dump_format, dest)


def _convert(ds: Dataset, dump_format: str, dest: Path) -> Path:
    from datumaro.components.annotation import AnnotationType, Bbox, LabelCategories, Polygon
    from datumaro.components.dataset import Dataset as DmDataset
    from datumaro.components.dataset_base import DatasetItem
    from datumaro.components.media import Image

    index = {name: i for i, name in enumerate(ds.labels)}
    items = []
    for it in ds.items:
        anns = []
        for a in it.annotations:
            if a.label not in index:
                continue
            x1, y1, x2, y2 = a.bbox
            attrs = dict(a.attributes or {})
            if a.track_id is not None:
                attrs.setdefault("track_id", a.track_id)
            if a.polygons and dump_format in ("coco", "labelme", "cvat"):
                anns += [Polygon(list(poly), label=index[a.label], attributes=attrs) for poly in a.polygons]
            else:
                anns.append(Bbox(x1, y1, x2 - x1, y2 - y1, label=index[a.label], attributes=attrs))
        size = (it.height, it.width) if it.height and it.width else None
        media = Image.from_file(str(it.image_path), size=size) if it.image_path is not None else None
        items.append(DatasetItem(id=it.id, subset=it.subset or "default", media=media, annotations=anns))
    dm = DmDataset.from_iterable(items, categories={AnnotationType.label: LabelCategories.from_iterable(ds.labels)})
    try:
        dm.export(str(dest), EXPORTERS[dump_format], save_media=True)
    except Exception as e:  # noqa: BLE001 - an exporter's own error type means the same here
        raise JobError(f"converting the {ds.format} export to {dump_format} failed: {type(e).__name__}: {e}") from None
    return dest
