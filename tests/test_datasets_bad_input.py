"""Bad input: each case gives a clear message and the right exit status, never a traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from jupyter_cvat_train.datasets import ExportError, generate_sample, load_export, validate_export


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Small sample exports (folders), copied by each test before it damages them."""
    base = tmp_path_factory.mktemp("samples")
    return {
        fmt: generate_sample(base / fmt, format=fmt, images=4, seed=7, width=96, height=72)
        for fmt in ("coco", "cvat", "yolo")
    }


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def cli(path, *args) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train", "validate", str(path), *args], capture_output=True, text=True
    )
    assert "Traceback" not in r.stdout + r.stderr
    return r


def zip_folder(folder: Path, out: Path, extra: list[tuple[zipfile.ZipInfo, bytes]] = ()) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
        for info, data in extra:
            zf.writestr(info, data)
    return out


def test_malformed_json(samples, tmp_path):
    d = copy(samples["coco"], tmp_path / "e")
    ann = d / "annotations" / "instances_default.json"
    ann.write_text(ann.read_text()[:200])
    r = cli(d)
    assert r.returncode == 2
    assert "instances_default.json is not valid JSON" in r.stderr and "hint:" in r.stderr
    with pytest.raises(ExportError, match="not valid JSON"):
        load_export(d)


def test_malformed_xml(samples, tmp_path):
    d = copy(samples["cvat"], tmp_path / "e")
    xml = d / "default.xml"
    xml.write_text(xml.read_text().replace("</annotations>", "<image id=", 1))
    r = cli(d, "--json")
    assert r.returncode == 2
    data = json.loads(r.stdout)
    assert data["errors"][0]["code"] == "unreadable-export" and "cvat" in data["errors"][0]["message"]


def test_truncated_zip(samples, tmp_path):
    z = zip_folder(samples["coco"], tmp_path / "e.zip")
    z.write_bytes(z.read_bytes()[: z.stat().st_size // 2])
    r = cli(z)
    assert r.returncode == 2 and "not a readable zip archive" in r.stderr


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_unsafe_zip_entries_are_refused(samples, tmp_path, kind):
    name = {"dotdot": "../../escaped.txt", "absolute": "/tmp/escaped-abs.txt", "symlink": "images/link.jpg"}[kind]
    info = zipfile.ZipInfo(name)
    if kind == "symlink":
        info.external_attr = 0o120777 << 16
    z = zip_folder(samples["coco"], tmp_path / "e.zip", [(info, b"/etc/passwd")])
    report = validate_export(z)
    unsafe = [f for f in report.findings if f.code == "unsafe-archive-entry"]
    assert len(unsafe) == 1 and unsafe[0].item == name and unsafe[0].severity == "error"
    assert report.summary["images"] == 4  # the rest of the export is still read
    root = report.dataset.root
    assert not (root.parent / "escaped.txt").exists() and not (root.parent.parent / "escaped.txt").exists()
    assert not (root / "images" / "link.jpg").exists()
    assert cli(z).returncode == 1


def test_zip_bomb_is_refused(tmp_path):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("annotations/instances_default.json", b"{}")
        zf.writestr("images/default/big.jpg", b"\0" * (80 * 1024 * 1024))
    r = cli(z)
    assert r.returncode == 2 and "zip bomb" in r.stderr


def test_zip_is_extracted_once(samples, tmp_path):
    import os

    z = zip_folder(samples["coco"], tmp_path / "e.zip")
    first = validate_export(z).dataset.root
    stamp = (first / "annotations" / "instances_default.json").stat().st_mtime_ns
    exports = sorted(p.name for p in Path(os.environ["CVAT_TRAIN_CACHE"], "exports").iterdir())
    second = validate_export(z).dataset.root
    assert second == first
    assert (first / "annotations" / "instances_default.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in Path(os.environ["CVAT_TRAIN_CACHE"], "exports").iterdir()) == exports


def test_folder_that_is_no_export(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "photos").mkdir()
    r = cli(tmp_path)
    assert r.returncode == 2
    assert "not a CVAT export in a known format" in r.stderr and "coco: annotations/" in r.stderr
    r = cli(tmp_path / "missing.zip")
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_missing_images(samples, tmp_path):
    d = copy(samples["coco"], tmp_path / "e")
    for p in sorted((d / "images" / "default").glob("*.jpg"))[:2]:
        p.unlink()
    r = cli(d, "--json")
    assert r.returncode == 1
    missing = [e for e in json.loads(r.stdout)["errors"] if e["code"] == "missing-image"]
    assert len(missing) == 2 and "not in the export" in missing[0]["message"] and missing[0]["hint"]


def test_unreadable_image_and_size_mismatch(samples, tmp_path):
    from PIL import Image

    d = copy(samples["coco"], tmp_path / "e")
    images = sorted((d / "images" / "default").glob("*.jpg"))
    images[0].write_bytes(b"not an image")
    Image.new("RGB", (50, 40)).save(images[1])
    codes = [f.code for f in validate_export(d).errors]
    assert codes.count("unreadable-image") == 1 and codes.count("image-size-mismatch") == 1


def test_yolo_class_index_out_of_range(samples, tmp_path):
    d = copy(samples["yolo"], tmp_path / "e")
    label_file = sorted((d / "obj_train_data").glob("*.txt"))[0]
    label_file.write_text("7 0.5 0.5 0.2 0.2\n")
    r = cli(d, "--json")
    assert r.returncode == 1
    errors = json.loads(r.stdout)["errors"]
    assert [e["code"] for e in errors] == ["yolo-class-out-of-range"]
    assert "class index 7" in errors[0]["message"] and label_file.stem in errors[0]["item"]


def test_empty_export(tmp_path):
    d = tmp_path / "e"
    (d / "annotations").mkdir(parents=True)
    (d / "annotations" / "instances_default.json").write_text(
        json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "cat"}]})
    )
    r = cli(d)
    assert r.returncode == 1 and "empty-export" in r.stdout and "holds no images" in r.stdout
    empty_zip = tmp_path / "empty.zip"
    zipfile.ZipFile(empty_zip, "w").close()
    assert cli(empty_zip).returncode == 2


def test_box_problems_are_found(samples, tmp_path):
    d = copy(samples["coco"], tmp_path / "e")
    ann = d / "annotations" / "instances_default.json"
    data = json.loads(ann.read_text())
    a0 = data["annotations"][0]
    data["annotations"] += [
        {**a0, "id": 1001},  # duplicate
        {**a0, "id": 1002, "bbox": [80, 60, 40, 40]},  # out of bounds on a 96x72 image
        {**a0, "id": 1003, "bbox": [10, 10, 0, 5]},  # degenerate
        {**a0, "id": 1004, "category_id": 99},  # undeclared label
        {**a0, "id": 1005, "segmentation": [[1, 2, 3, 4]]},  # invalid polygon
    ]
    ann.write_text(json.dumps(data))
    codes = {f.code for f in validate_export(d).findings}
    assert {
        "duplicate-annotation",
        "box-out-of-bounds",
        "degenerate-box",
        "undeclared-label",
        "invalid-polygon",
        "few-annotations",
    } <= codes
