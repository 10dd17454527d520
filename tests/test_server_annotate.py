"""The Auto-annotate routes on a real Jupyter server (pytest-jupyter), each reply checked
against the API contract: a model folder's labels (GET models/labels), what an annotate
job would find at a path (GET annotate/images), and the files of a job's output folder
(GET jobs/{id}/files/{path}), with a real annotate job whose previews are served."""

from __future__ import annotations

import asyncio
import json
import os
import time
import zipfile
from pathlib import Path

import pytest
from test_api_contract import call, check_reply
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from jupyter_cvat_train.datasets import generate_sample

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True}},
            "CvatTrainApp": {"cancel_grace_seconds": 1.0, "poll_interval": 0.1},
        }
    )


def _images(folder: Path, n: int = 3, size=(64, 48)) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, (60 * i, 120, 200)).save(folder / f"img{i}.jpg")
    return folder


def _model_folder(folder: Path, labels: list[str]) -> Path:
    """A real model folder (untrained SSDlite at 64 px): enough for labels and a real run."""
    from jupyter_cvat_train.models import build_model, save_model_dir

    template, params = "ssdlite320-mobilenet-v3", {"pretrained": False, "image_size": 64}
    model = build_model(template, len(labels) + 1, params)
    return save_model_dir(folder, model.eval(), template, labels, params)


async def _raw(jp_fetch, *parts, params=None):
    """The raw reply (HTTP errors returned, not raised)."""
    try:
        return await jp_fetch("cvat-train", "api", *parts, params=params, request_timeout=120)
    except HTTPClientError as e:
        assert e.response is not None, e
        return e.response


async def test_model_labels(jp_fetch, jp_root_dir):
    model = jp_root_dir / "models" / "m1"
    model.mkdir(parents=True)
    (model / "classes.csv").write_text("labels,id\nWBC,1\nRBC,2\nPlatelets,3\n")
    code, reply = await call(jp_fetch, "get", "/models/labels", params={"path": "models/m1"})
    assert code == 200 and reply == {"path": "models/m1", "labels": ["WBC", "RBC", "Platelets"]}

    # bad input: a folder without classes.csv, a file, a broken classes.csv, outside the root, missing
    (jp_root_dir / "models" / "empty").mkdir()
    code, err = await call(jp_fetch, "get", "/models/labels", params={"path": "models/empty"})
    assert code == 422 and "has no classes.csv" in err["message"] and "models/empty" in err["message"]
    assert str(jp_root_dir) not in err["message"]
    code, err = await call(jp_fetch, "get", "/models/labels", params={"path": "models/m1/classes.csv"})
    assert code == 422 and "is not a folder" in err["message"]
    bad = jp_root_dir / "models" / "bad"
    bad.mkdir()
    (bad / "classes.csv").write_text("labels,id\nA,1\nB,3\n")
    code, err = await call(jp_fetch, "get", "/models/labels", params={"path": "models/bad"})
    assert code == 422 and "models/bad/classes.csv" in err["message"] and "without gaps" in err["message"]
    (jp_root_dir.parent / "outside").mkdir(exist_ok=True)
    for path, status in (("../outside", 403), (str(jp_root_dir.parent / "outside"), 403), ("nope", 404), ("", 400)):
        code, err = await call(jp_fetch, "get", "/models/labels", params={"path": path})
        assert code == status, (path, err)
    os.symlink(jp_root_dir.parent / "outside", jp_root_dir / "models" / "link-out")
    assert (await call(jp_fetch, "get", "/models/labels", params={"path": "models/link-out"}))[0] == 403


async def test_annotate_images(jp_fetch, jp_root_dir):
    _images(jp_root_dir / "batch", n=3)
    code, reply = await call(jp_fetch, "get", "/annotate/images", params={"path": "batch"})
    assert code == 200 and reply == {"path": "batch", "kind": "folder", "images": 3, "labels": None, "format": None}
    with zipfile.ZipFile(jp_root_dir / "batch.zip", "w") as zf:
        for p in sorted((jp_root_dir / "batch").iterdir()):
            zf.write(p, p.name)
    code, reply = await call(jp_fetch, "get", "/annotate/images", params={"path": "batch.zip"})
    assert (code, reply["kind"], reply["images"]) == (200, "zip", 3)
    generate_sample(jp_root_dir / "export.zip", images=3, width=64, height=48)
    code, reply = await call(jp_fetch, "get", "/annotate/images", params={"path": "export.zip"})
    assert code == 200 and reply["kind"] == "export" and reply["format"] == "coco"
    assert reply["labels"] == ["circle", "square", "triangle"] and reply["images"] == 3

    # an images folder with no image: 422 naming the folder, not the server's own path
    (jp_root_dir / "no-images").mkdir()
    (jp_root_dir / "no-images" / "notes.txt").write_text("x")
    code, err = await call(jp_fetch, "get", "/annotate/images", params={"path": "no-images"})
    assert code == 422 and "no images found in no-images" in err["message"]
    assert str(jp_root_dir) not in err["message"]
    (jp_root_dir / "file.txt").write_text("x")
    code, err = await call(jp_fetch, "get", "/annotate/images", params={"path": "file.txt"})
    assert code == 422 and "neither a folder nor a zip" in err["message"]
    for path, status in (("../x", 403), ("missing", 404)):
        assert (await call(jp_fetch, "get", "/annotate/images", params={"path": path}))[0] == status


async def _wait(jp_fetch, job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        code, job = await call(jp_fetch, "get", "/jobs/{job_id}", job_id=job_id)
        if job["state"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.3)


async def test_annotate_job_outputs_and_files(jp_fetch, jp_root_dir):
    """A real annotate job over good and corrupt images: its outputs name paths relative to
    the root, its previews are served as PNG, the zip as an attachment; nothing outside its
    output folder is served."""
    images = _images(jp_root_dir / "batch", n=2)
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    _model_folder(jp_root_dir / "model", ["circle", "square"])
    spec = {
        "kind": "annotate",
        "images": "batch",
        "model": "model",
        "threshold": 0.0,
        "max_detections": 3,
        "preview": 2,
        "mapping": {"circle": "ring", "square": ""},
        "device": "cpu",
    }
    code, job = await call(jp_fetch, "post", "/jobs", body=spec)
    assert code == 201, job
    job = await _wait(jp_fetch, job["id"])
    assert job["state"] == "succeeded", job["message"]
    out = job["outputs"]
    assert out["output"] == f"{job['dir']}/output/annotations.zip"
    assert out["images_done"] == 2 and [f["image"] for f in out["failed"]] == ["broken.jpg"]
    assert out["labels"] == ["ring"] and out["dropped_labels"] == ["square"]
    assert len(out["previews"]) == 2 and all(p.startswith(f"{job['dir']}/output/") for p in out["previews"])
    prefix = f"{job['dir']}/output/"

    r = await _raw(jp_fetch, "jobs", job["id"], "files", *out["previews"][0][len(prefix) :].split("/"))
    assert r.code == 200 and r.headers["Content-Type"] == "image/png" and r.body[:8] == b"\x89PNG\r\n\x1a\n"
    assert r.headers["X-Content-Type-Options"] == "nosniff" and "Content-Disposition" not in r.headers
    r = await _raw(jp_fetch, "jobs", job["id"], "files", "annotations.zip")
    assert r.code == 200 and r.headers["Content-Type"] == "application/zip"
    assert r.headers["Content-Disposition"] == 'attachment; filename="annotations.zip"'
    assert r.body == (jp_root_dir / out["output"]).read_bytes()
    r = await _raw(jp_fetch, "jobs", job["id"], "files", "annotations.summary.json", params={"download": "1"})
    assert r.code == 200 and json.loads(r.body)["images_done"] == 2 and "attachment" in r.headers["Content-Disposition"]

    # planted files: HTML is never sent as HTML; a symlink out of the folder is not followed
    output_dir = jp_root_dir / job["dir"] / "output"
    (output_dir / "x.html").write_text("<script>alert(1)</script>")
    r = await _raw(jp_fetch, "jobs", job["id"], "files", "x.html")
    assert r.code == 200 and r.headers["Content-Type"] == "application/octet-stream"
    assert "sandbox" in r.headers["Content-Security-Policy"] and "attachment" in r.headers["Content-Disposition"]
    (jp_root_dir / "secret.png").write_bytes(b"secret")
    os.symlink(jp_root_dir / "secret.png", output_dir / "link.png")
    os.symlink(jp_root_dir / job["dir"], output_dir / "up")
    os.mkfifo(output_dir / "pipe.png")  # never opened for long: no read blocks the server
    for parts, status in (
        (("link.png",), 404),
        (("up", "job.json"), 404),
        (("..", "job.json"), 400),
        (("annotations_previews",), 404),
        (("pipe.png",), 404),
        (("missing.png",), 404),
    ):
        r = await _raw(jp_fetch, "jobs", job["id"], "files", *parts)
        assert r.code == status, (parts, r.code, r.body[:200])
        if r.headers.get("Content-Type", "").startswith("application/json"):
            check_reply("get", "/jobs/{job_id}/files/{path}", r.code, json.loads(r.body))
        assert b"secret" not in r.body
    r = await _raw(jp_fetch, "jobs", "no-such-job", "files", "annotations.zip")
    assert r.code == 404
    check_reply("get", "/jobs/{job_id}/files/{path}", r.code, json.loads(r.body))


async def test_annotate_job_bad_input_is_told(jp_fetch, jp_root_dir):
    """A model folder without classes.csv is refused before anything starts (400, the
    fix named); an images folder with no image: the job fails with the message naming the
    fix, and nothing is written."""
    from jupyter_cvat_train.models.classes import write_classes_csv

    _images(jp_root_dir / "batch", n=1)
    (jp_root_dir / "not-a-model").mkdir()
    (jp_root_dir / "empty").mkdir()
    code, err = await call(
        jp_fetch, "post", "/jobs", body={"kind": "annotate", "device": "cpu", "images": "batch", "model": "not-a-model"}
    )
    assert code == 400 and "classes.csv" in err["message"], err
    (jp_root_dir / "labels-only").mkdir()
    write_classes_csv(jp_root_dir / "labels-only" / "classes.csv", ["circle"])
    for spec, words in (({"images": "empty", "model": "labels-only"}, "no images found"),):
        code, job = await call(jp_fetch, "post", "/jobs", body={"kind": "annotate", "device": "cpu", **spec})
        assert code == 201
        job = await _wait(jp_fetch, job["id"])
        assert job["state"] == "failed" and words in job["message"], job["message"]
        assert not (jp_root_dir / job["dir"] / "output" / "annotations.zip").exists()
