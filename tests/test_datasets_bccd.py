"""Every shared BCCD export validates to the same counts and reports the 2 degenerate boxes."""

from __future__ import annotations

import pytest
from conftest import BCCD_FORMATS

from jupyter_cvat_train.datasets import load_export, validate_export


@pytest.mark.shared
@pytest.mark.parametrize("fmt", sorted(BCCD_FORMATS))
def test_bccd_export_validates(bccd_dir, fmt):
    path = bccd_dir / BCCD_FORMATS[fmt]
    report = validate_export(path)
    assert report.format == fmt  # detected from the layout
    s = report.summary
    assert s["images"] == 364
    assert s["annotations"] == 4888
    assert s["labels"] == {"RBC": 4155, "WBC": 372, "Platelets": 361} or (
        fmt == "labelme" and sorted(s["labels"].items()) == sorted({"RBC": 4155, "WBC": 372, "Platelets": 361}.items())
    )
    assert sum(s["subsets"].values()) == 364
    degenerate = [f for f in report.findings if f.code == "degenerate-box"]
    assert len(degenerate) == 2, report.findings
    assert {f.item.rsplit("/", 1)[-1] for f in degenerate} == {"BloodImage_00338.jpg", "BloodImage_00343.jpg"}
    assert report.ok, report.errors  # degenerate boxes are warnings: training skips them
    assert set(report.to_dict()) >= {
        "path",
        "format",
        "images",
        "annotations",
        "labels",
        "subsets",
        "errors",
        "warnings",
    }
    for item in report.dataset.items:
        assert item.image_path is not None and item.image_path.is_file()


@pytest.mark.shared
def test_bccd_tfrecord_images_are_files_with_declared_sizes(bccd_dir):
    ds = load_export(bccd_dir / BCCD_FORMATS["tfrecord"])
    assert len(ds.items) == 364 and ds.labels == ["RBC", "WBC", "Platelets"]
    from PIL import Image

    with Image.open(ds.items[0].image_path) as im:
        assert im.size == (ds.items[0].width, ds.items[0].height) == (640, 480)
    first = ds.items[0].annotations[0]
    assert first.label == "WBC" and first.bbox == (260.0, 177.0, 491.0, 376.0)
