"""Writers produce zips that Datumaro (CVAT's import library) reads back; masks -> polygons."""

import json
import zipfile

import datumaro as dm
import numpy as np
import pytest

from jupyter_cvat_train.annotate.writers import AnnotatedImage, write_annotations
from jupyter_cvat_train.datasets.geometry import mask_to_polygons, polygon_area
from jupyter_cvat_train.datasets.model import Annotation

LABELS = ["RBC", "WBC", "Platelets"]


def _images():
    return [
        AnnotatedImage(
            "a.jpg",
            640,
            480,
            [
                Annotation("RBC", (10, 20, 110, 70), score=0.91),
                Annotation("WBC", (200, 100, 300, 220), score=0.55),
                Annotation("RBC", (5, 5, 50, 40)),  # an existing, human annotation (no score)
            ],
        ),
        AnnotatedImage(
            "sub/b.jpg",
            320,
            240,
            [
                Annotation("Platelets", (10, 10, 50, 50), polygons=[[10, 10, 50, 10, 50, 50, 10, 50]], score=0.7),
            ],
        ),
        AnnotatedImage("c.jpg", 100, 80, []),
    ]


def _import(tmp_path, fmt, zip_path, names=("a.jpg", "sub/b.jpg", "c.jpg")):
    """Datumaro import of an annotation-only zip (as CVAT takes it for a task that has
    the images). Datumaro's COCO reader wants an images/ folder, its CVAT reader an
    existing file per image name: give it empty placeholders."""
    out = tmp_path / f"x-{fmt}"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(out)
    (out / "images").mkdir(exist_ok=True)
    if fmt == "cvat":
        for n in names:
            (out / "images" / n).parent.mkdir(parents=True, exist_ok=True)
            (out / "images" / n).touch()
    return dm.Dataset.import_from(str(out), {"coco": "coco_instances", "cvat": "cvat", "yolo": "yolo"}[fmt])


def _label_names(ds):
    return [c.name for c in ds.categories()[dm.AnnotationType.label]]


@pytest.mark.parametrize("fmt", ["coco", "cvat", "yolo"])
def test_round_trip_through_datumaro(tmp_path, fmt):
    out = write_annotations(fmt, tmp_path / f"out-{fmt}.zip", _images(), LABELS)
    assert out.is_file() and not list(tmp_path.glob(".*tmp"))
    ds = _import(tmp_path, fmt, out)
    assert _label_names(ds) == LABELS
    assert len(ds) == 3
    names = _label_names(ds)
    anns = [a for it in ds for a in it.annotations]
    got = {(names[a.label], round(a.get_bbox()[0]), round(a.get_bbox()[1])) for a in anns}
    assert got == {("RBC", 10, 20), ("WBC", 200, 100), ("RBC", 5, 5), ("Platelets", 10, 10)}
    # a polygon comes back as Polygon (+ its Bbox from COCO); YOLO writes boxes only
    n_poly = {"coco": 1, "cvat": 1, "yolo": 0}[fmt]
    n_box = {"coco": 4, "cvat": 3, "yolo": 4}[fmt]
    assert sum(isinstance(a, dm.Polygon) for a in anns) == n_poly
    assert sum(isinstance(a, dm.Bbox) for a in anns) == n_box
    if fmt == "coco":
        scores = sorted(a.attributes.get("score", -1) for a in anns if isinstance(a, dm.Bbox))
        assert scores == [-1, 0.55, 0.7, 0.91]
        poly = [a for a in anns if isinstance(a, dm.Polygon)]
        assert poly[0].points == [10, 10, 50, 10, 50, 50, 10, 50]
        data = json.loads(zipfile.ZipFile(out).read("annotations/instances_default.json"))
        assert [(i["file_name"], i["width"], i["height"]) for i in data["images"]] == [
            ("a.jpg", 640, 480),
            ("sub/b.jpg", 320, 240),
            ("c.jpg", 100, 80),
        ]
    if fmt == "cvat":
        assert {it.media.size for it in ds} == {(480, 640), (240, 320), (80, 100)}


def test_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown output format"):
        write_annotations("voc", tmp_path / "x.zip", [], LABELS)


def test_mask_to_polygons_square_and_empty():
    m = np.zeros((60, 80), np.float32)
    m[10:30, 20:50] = 0.9
    polys = mask_to_polygons(m, scale=(2.0, 2.0))
    assert len(polys) == 1 and len(polys[0]) == 8
    assert polygon_area(polys[0]) == pytest.approx(29 * 19 * 4, rel=0.01)
    assert mask_to_polygons(np.zeros((10, 10), np.float32)) == []
    assert mask_to_polygons(np.full((10, 10), 0.49, np.float32)) == []
