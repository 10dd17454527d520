"""The sample generator writes real CVAT export layouts that our readers load back."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest
from PIL import Image

from jupyter_cvat_train.datasets import detect_format, generate_sample, load_export, validate_export
from jupyter_cvat_train.datasets.sample import SAMPLE_FORMATS
from jupyter_cvat_train.jobs.runtime import JobDir


def test_coco_sample_has_boxes_polygons_and_real_jpegs(tmp_path):
    out = generate_sample(tmp_path / "s", images=6, seed=3)
    ds = load_export(out)
    assert ds.format == "coco" and ds.labels == ["circle", "square", "triangle"]
    assert len(ds.items) == 6 and ds.annotation_count >= 6
    for it in ds.items:
        with Image.open(it.image_path) as im:
            assert im.format == "JPEG" and im.size == (it.width, it.height) == (320, 240)
        for a in it.annotations:
            x1, y1, x2, y2 = a.bbox
            assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240
            xs, ys = a.polygons[0][0::2], a.polygons[0][1::2]
            assert (min(xs), min(ys), max(xs), max(ys)) == pytest.approx(a.bbox, abs=0.02)


def test_same_seed_same_zip_bytes(tmp_path):
    a = generate_sample(tmp_path / "a.zip", images=3, seed=1)
    b = generate_sample(tmp_path / "b.zip", images=3, seed=1)
    assert a.read_bytes() == b.read_bytes()
    c = generate_sample(tmp_path / "c.zip", images=3, seed=2)
    assert c.read_bytes() != a.read_bytes()


def test_refuses_to_overwrite_foreign_files(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        generate_sample(tmp_path / "mine", images=2)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    generate_sample(tmp_path / "again", images=2)
    generate_sample(tmp_path / "again", images=2)  # an earlier sample may be replaced


@pytest.mark.parametrize("fmt", [f for f in SAMPLE_FORMATS if f != "coco"])
def test_other_formats_round_trip(tmp_path, fmt):
    coco = load_export(generate_sample(tmp_path / "coco", images=4, seed=5, width=96, height=72))
    out = generate_sample(tmp_path / f"{fmt}.zip", format=fmt, images=4, seed=5, width=96, height=72)
    with zipfile.ZipFile(out) as zf:
        assert not any(n.startswith(("/", "..")) for n in zf.namelist())
    report = validate_export(out)
    assert report.format == fmt and report.readable
    ds = report.dataset
    assert len(ds.items) == 4
    assert ds.annotation_count == coco.annotation_count
    assert {k: v for k, v in ds.label_counts().items() if v} == {k: v for k, v in coco.label_counts().items() if v}
    assert not report.errors, report.errors
    if fmt in ("cvat", "labelme"):
        assert all(a.polygons for it in ds.items for a in it.annotations)


def test_cli_sample_then_validate_then_job(tmp_path):
    out = tmp_path / "demo.zip"
    r = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train", "sample-dataset", str(out), "--images", "5", "--size", "96x72"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert detect_format(load_export(out).root) == "coco"
    r = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train", "validate", str(out), "--json"], capture_output=True, text=True
    )
    data = json.loads(r.stdout)
    assert data["images"] == 5 and data["format"] == "coco" and data["subsets"] == {"default": 5}
    assert r.returncode == 0  # few-annotations is only a warning
    assert [w["code"] for w in data["warnings"]] == ["few-annotations"]

    job = JobDir(tmp_path / "job").create({"kind": "validate", "dataset": str(out), "format": None})
    r = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train.datasets", str(job.path)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    status = job.read_status()
    assert status["state"] == "succeeded" and status["outputs"]["images"] == 5
    assert json.loads((job.output_dir / "report.json").read_text())["annotations"] == data["annotations"]


def test_validate_job_fails_cleanly_on_no_export(tmp_path):
    job = JobDir(tmp_path / "job").create({"kind": "validate", "dataset": str(tmp_path / "nope.zip")})
    r = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train.datasets", str(job.path)], capture_output=True, text=True
    )
    assert r.returncode == 1
    status = job.read_status()
    assert status["state"] == "failed" and "does not exist" in status["message"]
    assert "Traceback" not in r.stderr
