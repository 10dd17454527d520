"""A decompression bomb (a header-only PNG whose IHDR says 100000 x 100000 pixels) in an
export: validation refuses it before any training, and a training job that meets it
anyway (the file replaced after validation) fails in one line naming the file, and its
process exits with its DataLoader workers (num_workers=2)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from jupyter_cvat_train.datasets import generate_sample, validate_export
from jupyter_cvat_train.jobs.runtime import JobDir


def header_only_png(width: int, height: int) -> bytes:
    """A PNG with an IHDR for width x height RGB and no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def coco_export(tmp_path: Path) -> Path:
    return generate_sample(tmp_path / "export", format="coco", images=8, seed=1, width=160, height=120)


def plant_bomb(root: Path) -> str:
    """Replace the first image with the bomb (the annotation file declares its size, so
    no size-mismatch finding hides the point). Returns the image's path in the export."""
    ann = root / "annotations" / "instances_default.json"
    coco = json.loads(ann.read_text())
    first = coco["images"][0]
    first["width"] = first["height"] = 100000
    ann.write_text(json.dumps(coco))
    rel = f"images/default/{first['file_name']}"
    (root / rel).write_bytes(header_only_png(100000, 100000))
    return rel


def test_validation_refuses_an_absurd_image_size_naming_the_image_and_the_limit(tmp_path):
    root = coco_export(tmp_path)
    rel = plant_bomb(root)
    report = validate_export(root)
    found = [f for f in report.errors if f.code == "image-too-large"]
    assert len(found) == 1 and found[0].item == rel
    assert "100000x100000" in found[0].message and "178956970" in found[0].message
    assert not report.ok
    r = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train", "validate", str(root)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 1 and "image-too-large" in r.stdout + r.stderr and "Traceback" not in r.stdout + r.stderr


@pytest.mark.slow
def test_bomb_met_during_training_fails_in_one_line_and_the_process_exits(tmp_path):
    """The export is valid when the job starts; after the first epoch's metrics the image
    is replaced by the bomb, which the next epoch's DataLoader workers read."""
    root = coco_export(tmp_path)
    victim = sorted((root / "images" / "default").iterdir())[0]
    job = tmp_path / "job"
    JobDir(job).create(
        {
            "kind": "train",
            "template": "ssdlite320-mobilenet-v3",
            "dataset": str(root),
            "parameters": {
                "pretrained": False,
                "num_workers": 2,
                "image_size": 96,
                "batch_size": 2,
                "epochs": 500,
                "detections_per_img": 10,
            },
        }
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_cvat_train.training", str(job)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not any(e["type"] == "metrics" for e in JobDir(job).read_events()):
            assert proc.poll() is None, JobDir(job).read_status()
            assert time.monotonic() < deadline, "no epoch finished within 10 minutes"
            time.sleep(0.5)
        tmp = victim.with_name(".bomb.tmp")
        tmp.write_bytes(header_only_png(100000, 100000))
        tmp.replace(victim)
        assert proc.wait(timeout=600) != 0  # exits: no hang on its workers
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    status = JobDir(job).read_status()
    assert status["state"] == "failed"
    message = status["message"]
    assert str(victim) in message and "pixels" in message
    assert "\n" not in message.strip() and "Traceback" not in message and "worker process" not in message
    # no worker outlived the job: nothing left in its session
    left = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert not left, left
