"""The job API on a real Jupyter server (pytest-jupyter) with real job processes."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from jupyter_cvat_train.datasets import generate_sample

pytest_plugins = ["pytest_jupyter.jupyter_server"]

TEMPLATE = "fasterrcnn-mobilenet-v3-fpn"


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True, "jupyter_server_proxy": True}},
            "CvatTrainApp": {"cancel_grace_seconds": 1.0, "poll_interval": 0.1},
        }
    )


@pytest.fixture
def sample(jp_root_dir) -> Path:
    return generate_sample(jp_root_dir / "data" / "sample.zip", images=4, width=64, height=48)


def long_training(sample: Path) -> dict:
    """A train job that cannot end by itself while a test runs (100,000 epochs): a real
    job to cancel, whether the cancel finds it queued or running."""
    return {
        "kind": "train",
        "template": TEMPLATE,
        "dataset": str(sample),
        "parameters": {"epochs": 100000, "pretrained": False, "image_size": 64, "batch_size": 2, "num_workers": 0},
    }


async def api(jp_fetch, *parts, method="GET", body=None, params=None):
    """(status, JSON body or None) of an API call; HTTP errors are returned, not raised."""
    kwargs = {"method": method, "params": params}
    if body is not None:
        kwargs["body"] = json.dumps(body) if not isinstance(body, (str, bytes)) else body
    if method == "DELETE":
        kwargs["allow_nonstandard_methods"] = True
    try:
        r = await jp_fetch("cvat-train", "api", *parts, **kwargs)
    except HTTPClientError as e:
        r = e.response
        assert r is not None, e
    return r.code, (json.loads(r.body) if r.body else None)


async def follow(jp_ws_fetch, job_id, timeout=120, **params):
    """Every message of a job's stream until the server closes it."""
    ws = await jp_ws_fetch("cvat-train", "api", "jobs", job_id, "stream", params={k: str(v) for k, v in params.items()})
    messages = []
    deadline = time.monotonic() + timeout
    while True:
        msg = await asyncio.wait_for(ws.read_message(), max(0.1, deadline - time.monotonic()))
        if msg is None:
            return messages
        messages.append(json.loads(msg))


async def test_templates_and_dataset_validation(jp_fetch, sample, jp_root_dir):
    code, body = await api(jp_fetch, "templates")
    assert code == 200 and TEMPLATE in [t["name"] for t in body["templates"]]

    code, report = await api(jp_fetch, "datasets/validate", method="POST", body={"path": "data/sample.zip"})
    assert code == 200 and report["ok"] and report["images"] == 4

    outside = jp_root_dir.parent / "outside.zip"
    outside.write_bytes(b"x")
    (jp_root_dir / "link.zip").symlink_to(outside)
    for path in ("../outside.zip", str(outside), "link.zip", "data/../../outside.zip"):
        code, err = await api(jp_fetch, "datasets/validate", method="POST", body={"path": path})
        assert code == 403 and ("outside" in err["message"] or "'..'" in err["message"]), (path, err)
        assert set(err) == {"message", "code", "details"} and err["code"] == 403
    code, err = await api(jp_fetch, "datasets/validate", method="POST", body={"path": "nope.zip"})
    assert code == 404
    code, err = await api(jp_fetch, "datasets/validate", method="POST", body="{not json")
    assert code == 400 and "JSON" in err["message"]


async def test_post_jobs_validates_before_launching(jp_fetch, sample, jp_root_dir):
    broken = generate_sample(jp_root_dir / "broken", images=3, width=64, height=48)
    os.remove(next((broken / "images" / "default").iterdir()))
    good = {"kind": "train", "template": TEMPLATE, "dataset": "data/sample.zip", "parameters": {}, "checkpoint": None}

    code, err = await api(jp_fetch, "jobs", method="POST", body={**good, "dataset": "broken"})
    assert code == 422 and not err["details"]["ok"]
    assert [e["code"] for e in err["details"]["errors"]] == ["missing-image"]

    cases = [
        ({**good, "kind": "bake"}, 400, "kind"),
        ({**good, "template": "no-such-model"}, 404, "template"),
        ({**good, "parameters": {"no_such_parameter": 1}}, 400, "parameters"),
        ({**good, "dataset": "../../etc/passwd"}, 403, "dataset"),
        ({**good, "checkpoint": "missing.pt"}, 404, "checkpoint"),
        ([1, 2], 400, "object"),
    ]
    for body, status, word in cases:
        code, err = await api(jp_fetch, "jobs", method="POST", body=body)
        assert (code, word in err["message"]) == (status, True), (body, err)
    code, body = await api(jp_fetch, "jobs")
    assert body == {"jobs": []}  # nothing was launched
    assert not (jp_root_dir / "cvat-train-runs").exists() or not any(
        p.is_dir() for p in (jp_root_dir / "cvat-train-runs").iterdir()
    )


async def test_job_is_streamed_to_its_final_state_and_log_read_by_offset(jp_fetch, jp_ws_fetch, sample):
    code, job = await api(jp_fetch, "jobs", method="POST", body={"kind": "validate", "dataset": "data/sample.zip"})
    assert code == 201 and job["kind"] == "validate" and job["state"] in ("queued", "running")
    assert job["dir"] == f"cvat-train-runs/{job['id']}"  # relative to root_dir, for the file browser
    # two clients follow the same job
    first, second = await asyncio.gather(follow(jp_ws_fetch, job["id"]), follow(jp_ws_fetch, job["id"]))
    for messages in (first, second):
        assert messages[0]["type"] == "state"
        assert messages[-1]["type"] == "end" and messages[-1]["job"]["state"] == "succeeded"
        events = [m["event"] for m in messages if m["type"] == "event"]
        assert {"type": "state", "state": "running"}.items() <= events[0].items()
        assert any(e["type"] == "progress" and e["done"] == 1 for e in events)
        assert events[-1]["type"] == "state" and events[-1]["state"] == "succeeded"
        log = "".join(m["text"] for m in messages if m["type"] == "log")
        assert "few-annotations" in log
    code, done = await api(jp_fetch, "jobs", job["id"])
    assert done["state"] == "succeeded" and done["outputs"]["images"] == 4
    code, listing = await api(jp_fetch, "jobs")
    assert [j["id"] for j in listing["jobs"]] == [job["id"]]

    code, whole = await api(jp_fetch, "jobs", job["id"], "log")
    assert whole["offset"] == 0 and whole["next_offset"] == len(whole["text"].encode()) > 10
    assert whole["text"] == log
    code, part = await api(jp_fetch, "jobs", job["id"], "log", params={"offset": 5})
    assert part["text"] == whole["text"][5:] and part["next_offset"] == whole["next_offset"]
    code, empty = await api(jp_fetch, "jobs", job["id"], "log", params={"offset": whole["next_offset"]})
    assert empty["text"] == "" and empty["next_offset"] == whole["next_offset"]
    code, err = await api(jp_fetch, "jobs", job["id"], "log", params={"offset": "x"})
    assert code == 400

    # resume the stream from offsets: only what comes after them
    log_offset = 5
    events_offset = first[-2]["offset"] if first[-2]["type"] == "event" else 0
    resumed = await follow(jp_ws_fetch, job["id"], log_offset=log_offset, events_offset=events_offset)
    assert "".join(m["text"] for m in resumed if m["type"] == "log") == whole["text"][5:]
    assert resumed[-1]["type"] == "end"

    code, _ = await api(jp_fetch, "jobs", "no-such-job")
    assert code == 404


async def test_cancel_and_delete_through_the_api(jp_fetch, jp_root_dir, sample):
    code, job = await api(jp_fetch, "jobs", method="POST", body=long_training(sample))
    assert code == 201
    code, cancelling = await api(jp_fetch, "jobs", job["id"], method="DELETE")
    assert code == 202 and cancelling["id"] == job["id"]
    for _ in range(200):
        code, now = await api(jp_fetch, "jobs", job["id"])
        if now["state"] != "running":
            break
        await asyncio.sleep(0.1)
    assert now["state"] == "cancelled"
    code, _ = await api(jp_fetch, "jobs", job["id"], method="DELETE", params={"remove_files": "true"})
    assert code == 204
    assert (await api(jp_fetch, "jobs", job["id"]))[0] == 404
    assert not (jp_root_dir / job["dir"]).exists()


async def test_user_templates_of_the_root_are_listed_and_an_unavailable_one_is_refused(jp_fetch, jp_root_dir, sample):
    """<root_dir>/cvat-train-templates is on the server's catalog search path; a template
    whose framework has no implementation here is refused at POST jobs (422, the fix named)
    instead of failing later in the job."""
    from test_models_registry import template_yaml

    folder = jp_root_dir / "cvat-train-templates"
    folder.mkdir()
    (folder / "mine.yaml").write_text(template_yaml("my-ssdlite"))
    (folder / "jax.yaml").write_text(template_yaml("my-jax-model", framework="jax"))
    code, reply = await api(jp_fetch, "templates")
    names = {t["name"] for t in reply["templates"]}
    assert code == 200 and {"my-ssdlite", "my-jax-model", "ssdlite320-mobilenet-v3"} <= names
    code, err = await api(
        jp_fetch, "jobs", method="POST", body={"kind": "train", "template": "my-jax-model", "dataset": str(sample)}
    )
    assert code == 422 and "'jax' is not implemented here" in err["message"], err
    assert "install the package that registers it" in err["message"], err
