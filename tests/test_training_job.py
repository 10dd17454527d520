"""Real training jobs on tiny data (CPU, few images, small image size, 1 epoch).

From the generated sample export and from the first images of a real BCCD export.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_cvat_train import models
from jupyter_cvat_train.jobs.runtime import JobDir, run_job
from jupyter_cvat_train.training import train_job

pytestmark = pytest.mark.slow
FAST = {
    "pretrained": False,
    "num_workers": 0,
    "image_size": 128,
    "batch_size": 2,
    "epochs": 1,
    "detections_per_img": 10,
}
RCNN_FAST = dict(FAST, max_proposals=50)


@pytest.fixture(scope="module")
def sample_zip(tmp_path_factory) -> Path:
    from jupyter_cvat_train.datasets import generate_sample

    return generate_sample(tmp_path_factory.mktemp("sample") / "shapes.zip", images=8, seed=1, width=160, height=120)


def write_coco_subset(src_zip: Path, out: Path, n: int) -> Path:
    """A COCO 1.0 export folder of the first ``n`` images of ``src_zip`` (boxes only)."""
    from jupyter_cvat_train.datasets import Annotation, load_export
    from jupyter_cvat_train.datasets.formats.coco import coco_document

    ds = load_export(src_zip)
    (out / "images" / "default").mkdir(parents=True)
    (out / "annotations").mkdir()
    images = []
    for it in ds.items[:n]:
        name = Path(it.image_path).name
        shutil.copy(it.image_path, out / "images" / "default" / name)
        images.append((name, it.width, it.height, [Annotation(a.label, a.bbox) for a in it.annotations]))
    (out / "annotations" / "instances_default.json").write_text(json.dumps(coco_document(images, ds.labels)))
    return out


@pytest.fixture(scope="module")
def bccd_small(bccd_dir, tmp_path_factory) -> Path:
    return write_coco_subset(bccd_dir / "bccd-coco-1.0.zip", tmp_path_factory.mktemp("bccd") / "bccd6", 6)


def run_train(job: Path, dataset: Path, template: str, params: dict | str, **spec) -> dict:
    JobDir(job).create({"kind": "train", "template": template, "dataset": str(dataset), "parameters": params, **spec})
    return run_job(job, train_job, handle_sigterm=False)


def assert_output_contract(job: Path, labels: list[str], epochs: int) -> dict:
    out = job / "output"
    for rel in (
        "model/model.pt",
        "model/classes.csv",
        "model/model.json",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "metrics.json",
    ):
        assert (out / rel).is_file(), rel
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert models.read_classes_csv(out / "model" / "classes.csv") == labels
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == list(range(1, epochs + 1))
    for h in metrics["history"]:
        assert 0.0 <= h["map"] <= 1.0 and 0.0 <= h["map_50"] <= 1.0 and set(h["per_label"]) == set(labels)
    events = JobDir(job).read_events()
    assert [e["epoch"] for e in events if e["type"] == "metrics"][-1] == epochs
    info = json.loads((out / "model" / "model.json").read_text())
    assert info["dataset_fingerprint"] and "map" in info["metrics"]
    return metrics


def test_default_model_on_sample_writes_the_output_contract_and_resumes(sample_zip, tmp_path):
    job = tmp_path / "run"
    status = run_train(job, sample_zip, "ssdlite320-mobilenet-v3", FAST)
    assert status["state"] == "succeeded", status["message"]
    assert "mAP@[.5:.95]" in status["message"]
    assert_output_contract(job, ["circle", "square", "triangle"], 1)
    tm = models.load_trained_model(job / "output" / "model")
    assert tm.labels == ["circle", "square", "triangle"] and tm.template == "ssdlite320-mobilenet-v3"

    # resume the same run and extend it to 2 epochs, as the CLI does (job.json rewritten)
    spec = JobDir(job).read_spec()
    spec.update(resume=True, epochs=2)
    (job / "job.json").write_text(json.dumps(spec))
    status = run_job(job, train_job, handle_sigterm=False)
    assert status["state"] == "succeeded", status["message"]
    metrics = assert_output_contract(job, ["circle", "square", "triangle"], 2)
    assert metrics["history"][1]["step"] == 2 * metrics["history"][0]["step"]  # continued, not restarted
    # a completed run cannot be resumed without extending it
    status = run_job(job, train_job, handle_sigterm=False)
    assert status["state"] == "failed" and "already completed 2 of 2 epochs" in status["message"]


@pytest.mark.parametrize(
    "template", ["fasterrcnn-mobilenet-v3-fpn", "retinanet-resnet50-fpn-v2", "fcos-resnet50-fpn", "ssd300-vgg16"]
)
def test_each_detection_family_trains_on_bccd(template, bccd_small, tmp_path):
    params = dict(RCNN_FAST if template.startswith("faster") else FAST, image_size=300 if "ssd300" in template else 128)
    status = run_train(tmp_path / "run", bccd_small, template, params)
    assert status["state"] == "succeeded", status["message"]
    assert_output_contract(tmp_path / "run", ["RBC", "WBC", "Platelets"], 1)


def test_fasterrcnn_on_sample_then_fine_tune_on_bccd_rebuilds_heads(sample_zip, bccd_small, tmp_path):
    t = "fasterrcnn-mobilenet-v3-fpn"
    assert run_train(tmp_path / "a", sample_zip, t, RCNN_FAST)["state"] == "succeeded"
    status = run_train(tmp_path / "b", bccd_small, t, RCNN_FAST, checkpoint=str(tmp_path / "a" / "output" / "model"))
    assert status["state"] == "succeeded", status["message"]
    warnings = [e["message"] for e in JobDir(tmp_path / "b").read_events() if e["type"] == "warning"]
    assert any("label heads were rebuilt" in w for w in warnings), warnings
    assert models.load_trained_model(tmp_path / "b" / "output" / "model").labels == ["RBC", "WBC", "Platelets"]


def test_mask_rcnn_stages_on_sample_and_refusal_without_polygons(sample_zip, bccd_small, tmp_path):
    t = "maskrcnn-resnet50-fpn-v2"
    params = dict(RCNN_FAST, epochs=None, stage_1_epochs=1, stage_2_epochs=1, stage_3_epochs=0, image_size=96)
    status = run_train(tmp_path / "m", sample_zip, t, params)
    assert status["state"] == "succeeded", status["message"]
    metrics = assert_output_contract(tmp_path / "m", ["circle", "square", "triangle"], 2)
    assert [h["stage"] for h in metrics["history"]] == [1, 2] and metrics["primary"] == "segm"
    assert "bbox" in metrics["history"][0]
    status = run_train(tmp_path / "refused", bccd_small, t, FAST)
    assert status["state"] == "failed" and "needs polygons or masks" in status["message"]
    assert not (tmp_path / "refused" / "output" / "checkpoints").exists()


def test_refusals_before_start(sample_zip, tmp_path):
    status = run_train(tmp_path / "bs", sample_zip, "ssdlite320-mobilenet-v3", dict(FAST, batch_size=7))
    assert status["state"] == "failed"
    assert "batch_size 7 is larger than the training split: it has 6 images" in status["message"]
    assert "at most 6" in status["message"]
    status = run_train(tmp_path / "ck", sample_zip, "ssdlite320-mobilenet-v3", FAST, checkpoint=str(tmp_path / "nope"))
    assert status["state"] == "failed" and "does not exist" in status["message"]
    status = run_train(tmp_path / "hp", sample_zip, "ssdlite320-mobilenet-v3", "bogus=1")
    assert status["state"] == "failed" and "Valid keys" in status["message"]
    for job in ("bs", "ck", "hp"):
        assert not (tmp_path / job / "output" / "checkpoints").exists()


def test_pretrained_weights_missing_fails_with_the_file_name(sample_zip, tmp_path, monkeypatch):
    from jupyter_cvat_train.models import builders

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    if builders._online():
        pytest.skip("online: torchvision would download the weights")
    status = run_train(tmp_path / "pt", sample_zip, "ssdlite320-mobilenet-v3", dict(FAST, pretrained=True))
    assert status["state"] == "failed"
    assert "ssdlite320_mobilenet_v3_large_coco" in status["message"] and "pretrained: false" in status["message"]


def test_tiny_dataset_keeps_both_splits_non_empty(tmp_path):
    from jupyter_cvat_train.datasets import generate_sample

    two = generate_sample(tmp_path / "two.zip", images=2, seed=3, width=96, height=96)
    status = run_train(tmp_path / "run", two, "fasterrcnn-mobilenet-v3-fpn", dict(RCNN_FAST, batch_size=1, val_split=0))
    assert status["state"] == "succeeded", status["message"]
    plan = [e for e in JobDir(tmp_path / "run").read_events() if e["type"] == "plan"][0]
    assert (plan["train_images"], plan["val_images"]) == (1, 1)


@pytest.mark.parametrize("delay", [0.0, 1.0, 2.5])  # lands in a step, at an epoch's end, in evaluation
def test_sigterm_cancels_a_real_job_process_and_saves_last_checkpoint(sample_zip, tmp_path, delay):
    job = tmp_path / "cancel"
    JobDir(job).create(
        {
            "kind": "train",
            "template": "ssdlite320-mobilenet-v3",
            "dataset": str(sample_zip),
            "parameters": dict(FAST, epochs=200, num_workers=1),
        }
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    with open(job / "job.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_cvat_train.training", str(job)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while not any(e["type"] == "progress" for e in JobDir(job).read_events()):
            assert proc.poll() is None, (job / "job.log").read_text()
            assert time.monotonic() < deadline, "no progress within 120 s"
            time.sleep(0.2)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGTERM)  # as the launcher does: the whole process group
        assert proc.wait(timeout=120) == 0, (job / "job.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    status = JobDir(job).read_status()
    assert status["state"] == "cancelled", status
    assert "last.pt saved" in status["message"]
    from jupyter_cvat_train.training.checkpoints import load_checkpoint

    ck = load_checkpoint(job / "output" / "checkpoints" / "last.pt")
    assert ck["step"] >= 1 and ck["epoch"] < 200
