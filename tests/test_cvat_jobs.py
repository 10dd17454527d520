"""The CVAT job kinds (cvat-pull, cvat-push, cvat-auto-annotate) through a real Jupyter
server's POST jobs, every reply checked against the API contract: the spec checks, and
real job processes that fail with one clear message when no CVAT host is configured or
the host is unreachable (a closed loopback port), with the token in no job file. Runs
against a real CVAT server are in test_cvat_server.py."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("cvat_sdk", reason="the cvat extra is not installed (pip install 'jupyter_cvat_train[cvat]')")

from test_api_contract import (  # noqa: E402, F401 - helpers and server fixtures
    call,
    check_request,
    jp_server_config,
    sample,
    stream,
    tensorboard_enabled,
)

from jupyter_cvat_train.models.classes import write_classes_csv  # noqa: E402

pytest_plugins = ["pytest_jupyter.jupyter_server"]


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def _run(jp_fetch, jp_ws_fetch, body) -> dict:
    check_request("post", "/jobs", body)
    code, job = await call(jp_fetch, "post", "/jobs", body=body)
    assert code == 201, job
    await stream(jp_ws_fetch, job["id"])
    code, job = await call(jp_fetch, "get", "/jobs/{job_id}", job_id=job["id"])
    assert code == 200
    return job


async def test_cvat_job_specs_are_checked_before_anything_runs(jp_fetch, jp_root_dir, sample):
    (jp_root_dir / "model").mkdir()
    write_classes_csv(jp_root_dir / "model" / "classes.csv", ["circle"])
    (jp_root_dir / "plain").mkdir()
    pull = {"kind": "cvat-pull", "task_id": 3, "output": "data/task-3.zip", "format": "coco"}
    push = {"kind": "cvat-push", "task_id": 3, "source": "data/sample.zip", "replace": True}
    auto = {"kind": "cvat-auto-annotate", "task_id": 3, "model": "model", "threshold": 0.4}
    for body in (pull, push, auto):
        check_request("post", "/jobs", body)
    for body, status, words in (
        ({**pull, "task_id": 0}, 400, "task_id"),
        ({**pull, "task_id": "3"}, 400, "task_id"),
        ({**pull, "output": "data/task.tar"}, 400, ".zip"),
        ({**pull, "output": "data/sample.zip"}, 409, "exists"),
        ({**pull, "output": "nofolder/t.zip"}, 404, "does not exist"),
        ({**pull, "output": "../t.zip"}, 403, "output"),
        ({**pull, "include_images": "yes"}, 400, "include_images"),
        ({**push, "source": "missing.zip"}, 404, "source"),
        ({**push, "replace": 1}, 400, "replace"),
        ({**auto, "model": "plain"}, 400, "classes.csv"),
        ({**auto, "threshold": 2}, 400, "threshold"),
    ):
        code, err = await call(jp_fetch, "post", "/jobs", body=body)
        assert code == status and words in err["message"], (body, err)


async def test_cvat_jobs_without_a_host_and_with_an_unreachable_one(
    jp_fetch, jp_ws_fetch, jp_root_dir, sample, monkeypatch, tmp_path
):
    for name in ("CVAT_HOST", "CVAT_ACCESS_TOKEN", "CVAT_USERNAME", "CVAT_PASSWORD", "PASS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no saved CVAT SDK profile
    pull = {"kind": "cvat-pull", "task_id": 3, "output": "data/task-3.zip"}
    job = await _run(jp_fetch, jp_ws_fetch, pull)
    assert job["state"] == "failed" and "no CVAT host configured: set CVAT_HOST" in job["message"], job

    monkeypatch.setenv("CVAT_HOST", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", "tok-SECRET-123")
    for body in (
        pull,
        {"kind": "cvat-push", "task_id": 3, "source": "data/sample.zip"},
    ):
        job = await _run(jp_fetch, jp_ws_fetch, body)
        assert job["state"] == "failed" and "cannot be reached" in job["message"], job
        assert "Traceback" not in job["message"]
        folder = jp_root_dir / "cvat-train-runs" / job["id"]
        for f in folder.rglob("*"):
            if f.is_file():
                assert b"tok-SECRET-123" not in f.read_bytes(), f
    assert not (jp_root_dir / "data" / "task-3.zip").exists()
    assert not list((jp_root_dir / "data").glob(".task-3.zip.partial-*"))


async def test_connection_route_without_a_host_and_with_an_unreachable_one(jp_fetch, monkeypatch, tmp_path):
    for name in ("CVAT_HOST", "CVAT_ACCESS_TOKEN", "CVAT_USERNAME", "CVAT_PASSWORD", "PASS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    code, body = await call(jp_fetch, "get", "/cvat/connection")
    assert code == 200 and body["ok"] is False and "no CVAT host configured" in body["message"], body
    host = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("CVAT_HOST", host)
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", "tok-SECRET-123")
    code, body = await call(jp_fetch, "get", "/cvat/connection")
    assert code == 200 and body["ok"] is False and body["host"] == host and body["source"] == "environment"
    assert "cannot be reached" in body["message"] and "SECRET" not in str(body)
