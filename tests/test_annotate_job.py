"""The annotate job end to end: real model folder (a few real training steps on BCCD),
real images, outputs imported back with Datumaro, bad input, SIGTERM of the real process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import datumaro as dm
import pytest

from jupyter_cvat_train.annotate import run_annotate
from jupyter_cvat_train.jobs.runtime import JobDir, run_job

BCCD_LABELS = ["RBC", "WBC", "Platelets"]
N_IMAGES = 6


@pytest.fixture(scope="module")
def bccd_small(bccd_dir, tmp_path_factory) -> Path:
    """A CVAT for images 1.1 export of the first 6 BCCD images (XML + images)."""
    src = bccd_dir / "bccd-cvat-for-images-1.1.zip"
    out = tmp_path_factory.mktemp("bccd-small") / "bccd-small-cvat.zip"
    with zipfile.ZipFile(src) as zf:
        root = ET.fromstring(zf.read("default.xml"))
        images = sorted(root.findall("image"), key=lambda e: e.get("name"))
        for e in images[N_IMAGES:]:
            root.remove(e)
        keep = [e.get("name") for e in images[:N_IMAGES]]
        with zipfile.ZipFile(out, "w") as zo:
            zo.writestr("default.xml", ET.tostring(root, encoding="utf-8"))
            for name in keep:
                zo.writestr(f"images/{name}", zf.read(f"images/{name}"))
    return out


def _tiny_trained_model(
    model_dir: Path, export: Path, template: str = "ssdlite320-mobilenet-v3", image_size: int = 128, steps: int = 2
) -> Path:
    """A model folder after ``steps`` real SGD steps on ``export`` (tiny input size)."""
    import torch
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    from jupyter_cvat_train.datasets import load_export
    from jupyter_cvat_train.models import build_model, save_model_dir

    torch.manual_seed(0)
    ds = load_export(export)
    params = {"pretrained": False, "image_size": image_size}
    model = build_model(template, len(ds.labels) + 1, params)
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.001)
    items = [it for it in ds.items if it.annotations][:2]
    images = [pil_to_tensor(Image.open(it.image_path).convert("RGB")).float() / 255 for it in items]
    targets = [
        {
            "boxes": torch.tensor([a.bbox for a in it.annotations if a.bbox[2] > a.bbox[0] and a.bbox[3] > a.bbox[1]]),
            "labels": torch.tensor(
                [
                    ds.labels.index(a.label) + 1
                    for a in it.annotations
                    if a.bbox[2] > a.bbox[0] and a.bbox[3] > a.bbox[1]
                ]
            ),
        }
        for it in items
    ]
    for _ in range(steps):
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return save_model_dir(model_dir, model.eval(), template, ds.labels, params)


@pytest.fixture(scope="module")
def model_dir(bccd_small, tmp_path_factory) -> Path:
    return _tiny_trained_model(tmp_path_factory.mktemp("model") / "model", bccd_small)


def _run(tmp_path, name="job", **spec):
    jd = JobDir(tmp_path / name).create({"kind": "annotate", **spec})
    return run_job(jd.path, run_annotate), jd


def _import(zip_path: Path, fmt: str, image_names: list[str]):
    out = zip_path.with_suffix("")
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(out)
    (out / "images").mkdir(exist_ok=True)  # Datumaro's readers want the task's images; CVAT does not
    for n in image_names:
        (out / "images" / n).touch()
    return dm.Dataset.import_from(str(out), {"coco": "coco_instances", "cvat": "cvat"}[fmt])


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["coco", "cvat"])
def test_round_trip_bccd(tmp_path, bccd_small, model_dir, fmt):
    out = tmp_path / f"pred-{fmt}.zip"
    status, jd = _run(
        tmp_path,
        images=str(bccd_small),
        model_dir=str(model_dir),
        format=fmt,
        threshold=0.0,
        max_detections=7,
        mapping={"Platelets": "RBC"},
        output=str(out),
        preview=2,
    )
    assert status["state"] == "succeeded", status
    s = status["outputs"]
    assert s["images_done"] == N_IMAGES and s["images_failed"] == 0 and not s["partial"]
    assert s["labels"] == BCCD_LABELS  # the export's labels are the target set
    assert s["mapping"] == {"RBC": "RBC", "WBC": "WBC", "Platelets": "RBC"}
    assert s["counts"]["Platelets"] == 0  # many-to-one: Platelets predictions are written as RBC
    assert s["annotations"] == sum(s["counts"].values()) == N_IMAGES * 7  # threshold 0: the 7 best each
    assert len(s["previews"]) == 2 and all(Path(p).stat().st_size > 0 for p in s["previews"])
    assert json.loads(Path(s["summary_path"]).read_text())["annotations"] == s["annotations"]

    with zipfile.ZipFile(bccd_small) as zf:
        names = [n.split("/", 1)[1] for n in zf.namelist() if n.startswith("images/") and n.endswith(".jpg")]
    ds = _import(out, fmt, names)
    labels = [c.name for c in ds.categories()[dm.AnnotationType.label]]
    assert labels == BCCD_LABELS
    assert len(ds) == N_IMAGES
    got = {}
    for it in ds:
        assert it.media.size == (480, 640)
        for a in it.annotations:
            got[labels[a.label]] = got.get(labels[a.label], 0) + 1
            x, y, w, h = a.get_bbox()
            assert 0 <= x and 0 <= y and x + w <= 640.01 and y + h <= 480.01
            if fmt == "coco":
                assert 0.0 <= a.attributes["score"] <= 1.0
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in s["counts"].items() if v}
    events = jd.read_events()
    assert any(e["type"] == "progress" and e["done"] == N_IMAGES for e in events)
    assert any(e["type"] == "summary" for e in events)


@pytest.mark.slow
def test_keep_existing_and_threshold(tmp_path, bccd_small, model_dir):
    out = tmp_path / "keep.zip"
    status, _ = _run(
        tmp_path, images=str(bccd_small), model_dir=str(model_dir), threshold=1.0, keep_existing=True, output=str(out)
    )
    assert status["state"] == "succeeded", status
    assert status["outputs"]["annotations"] == 0  # nothing scores 1.0
    data = json.loads(zipfile.ZipFile(out).read("annotations/instances_default.json"))
    from jupyter_cvat_train.datasets import load_export

    assert len(data["annotations"]) == load_export(bccd_small).annotation_count > 0  # human ones kept, no score
    assert all("score" not in a for a in data["annotations"])


def _images_folder(tmp_path, n=3, size=(160, 120)) -> Path:
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(n):
        Image.new("RGB", size, (40 * i, 100, 200)).save(folder / f"img{i}.jpg")
    return folder


@pytest.mark.slow
def test_corrupt_jpeg_is_reported_and_run_goes_on(tmp_path, model_dir):
    folder = _images_folder(tmp_path)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    good = (folder / "img0.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    out = tmp_path / "out.zip"
    status, jd = _run(
        tmp_path, images=str(folder), model_dir=str(model_dir), format="yolo", threshold=0.0, output=str(out)
    )
    assert status["state"] == "succeeded", status
    s = status["outputs"]
    assert s["images_total"] == 5 and s["images_done"] == 3 and s["images_failed"] == 2
    assert sorted(f["image"] for f in s["failed"]) == ["broken.jpg", "truncated.jpg"]
    failed_events = [e for e in jd.read_events() if e.get("kind") == "image_failed"]
    assert sorted(e["image"] for e in failed_events) == ["broken.jpg", "truncated.jpg"]
    assert zipfile.ZipFile(out).read("train.txt").decode().count("\n") == 3


def test_mapping_to_unknown_label_fails_before_start(tmp_path, model_dir):
    folder = _images_folder(tmp_path, n=1)
    out = tmp_path / "out.zip"
    status, jd = _run(
        tmp_path, images=str(folder), model_dir=str(model_dir), mapping={"Neutrophil": "WBC"}, output=str(out)
    )
    assert status["state"] == "failed"
    assert "model has no label 'Neutrophil'" in status["message"] and "RBC, WBC, Platelets" in status["message"]
    assert not out.exists()
    assert not any(e["type"] == "progress" for e in jd.read_events())


def test_empty_image_folder(tmp_path, model_dir):
    (tmp_path / "empty").mkdir()
    status, _ = _run(tmp_path, images=str(tmp_path / "empty"), model_dir=str(model_dir))
    assert status["state"] == "failed" and "no images found" in status["message"]


def test_model_folder_without_classes_csv(tmp_path, model_dir):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    (broken / "classes.csv").unlink()
    status, _ = _run(tmp_path, images=str(_images_folder(tmp_path, n=1)), model_dir=str(broken))
    assert status["state"] == "failed" and "classes.csv" in status["message"]


@pytest.mark.slow
def test_sigterm_writes_a_partial_result(tmp_path, bccd_small):
    """SIGTERM to the real job process mid-run: it stops cleanly (state cancelled) and
    writes the images done so far to a zip named *.partial.zip whose summary says so."""
    from jupyter_cvat_train.datasets import generate_sample

    model = _tiny_trained_model(tmp_path / "model-frcnn", bccd_small, "fasterrcnn-mobilenet-v3-fpn", 320, steps=1)
    images = generate_sample(tmp_path / "many", format="coco", images=120, seed=1)
    out = tmp_path / "big.zip"
    jd = JobDir(tmp_path / "job").create(
        {
            "kind": "annotate",
            "images": str(images),
            "model_dir": str(model),
            "output": str(out),
            "threshold": 0.0,
            "batch_size": 1,
            "mapping": {"RBC": "circle", "WBC": "square", "Platelets": "triangle"},
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_cvat_train.annotate", str(jd.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if any(e["type"] == "progress" and e["done"] >= 3 for e in jd.read_events()):
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read().decode()
    proc.send_signal(signal.SIGTERM)
    log = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 0, log
    status = jd.read_status()
    assert status["state"] == "cancelled", (status, log)
    s = status["outputs"]
    partial = tmp_path / "big.partial.zip"
    assert s["partial"] is True and s["output"] == str(partial) and not out.exists()
    assert 3 <= s["images_done"] < 120
    data = json.loads(zipfile.ZipFile(partial).read("annotations/instances_default.json"))
    assert len(data["images"]) == s["images_done"]
    assert data["info"]["description"].startswith("PARTIAL")
    assert json.loads((tmp_path / "big.partial.summary.json").read_text())["partial"] is True


@pytest.mark.slow
def test_cli_foreground(tmp_path, model_dir):
    folder = _images_folder(tmp_path, n=2)
    out = tmp_path / "cli.zip"
    exe = [str(Path(sys.executable).parent / "cvat-train")]
    r = subprocess.run(
        exe
        + [
            "annotate",
            str(folder),
            "--model-dir",
            str(model_dir),
            "-o",
            str(out),
            "--format",
            "cvat",
            "--threshold",
            "0",
            "--max-detections",
            "3",
            "--map",
            "WBC=RBC",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "2 of 2 images annotated" in r.stdout and out.is_file()
    root = ET.fromstring(zipfile.ZipFile(out).read("annotations.xml"))
    assert len(root.findall("image")) == 2 and len(root.findall("image/box")) == 6
    assert {b.get("label") for b in root.findall("image/box")} <= {"RBC", "Platelets"}
    r = subprocess.run(
        exe
        + [
            "annotate",
            str(folder),
            "--model-dir",
            str(model_dir),
            "-o",
            str(tmp_path / "cli2.zip"),
            "--map",
            "Neutrophil=RBC",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr and "no label 'Neutrophil'" in r.stderr
