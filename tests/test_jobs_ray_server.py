"""``"backend"`` in POST jobs through a real Jupyter server: an unknown backend is a 400
naming the valid ones, ``ray`` on a server without a cluster a 409 saying which setting
to set, and on a server whose cluster does not answer the job fails at its start with
a message naming the address (no Ray needed here; tests/test_jobs_ray.py runs a real
head)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from pathlib import Path

import pytest
from test_api_contract import call
from test_server_jobs import api
from traitlets.config import Config

from jupyter_cvat_train.datasets import generate_sample

pytest_plugins = ["pytest_jupyter.jupyter_server"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLOSED = f"http://127.0.0.1:{_closed_port()}"
TOKEN = "tok-never-shown-5a1f"


@pytest.fixture
def jp_server_config(request):
    app = {"poll_interval": 0.1}
    if "with_cluster" in request.node.name:
        app["ray_address"] = CLOSED
    if "by_default" in request.node.name:
        app["job_backend"] = "ray"
    if "token" in request.node.name:
        app["ray_token"] = TOKEN
    return Config({"ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True}}, "CvatTrainApp": app})


async def test_backend_is_checked_and_ray_needs_a_cluster(jp_fetch, jp_root_dir):
    generate_sample(jp_root_dir / "sample.zip", images=3, width=64, height=48)
    spec = {"kind": "validate", "dataset": "sample.zip"}
    code, body = await api(jp_fetch, "jobs", method="POST", body={**spec, "backend": "slurm"})
    assert code == 400 and "local, ray" in body["message"], body
    code, body = await api(jp_fetch, "jobs", method="POST", body={**spec, "backend": "ray"})
    assert code == 409 and "ray_address" in body["message"], body
    code, job = await api(jp_fetch, "jobs", method="POST", body={**spec, "backend": "local"})
    assert code == 201 and job["spec"]["backend"] == "local"


async def test_with_cluster_unreachable_the_job_fails_naming_the_address(jp_fetch, jp_root_dir):
    generate_sample(jp_root_dir / "sample.zip", images=3, width=64, height=48)
    code, job = await api(
        jp_fetch, "jobs", method="POST", body={"kind": "validate", "dataset": "sample.zip", "backend": "ray"}
    )
    assert code == 201, job
    deadline = time.monotonic() + 60
    while job["state"] not in ("failed", "succeeded") and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        code, job = await api(jp_fetch, "jobs", job["id"])
    assert job["state"] == "failed" and CLOSED in job["message"], job


async def test_with_cluster_by_default_jobs_go_there_and_local_ones_stay_possible(jp_fetch, jp_root_dir):
    generate_sample(jp_root_dir / "sample.zip", images=3, width=64, height=48)
    spec = {"kind": "validate", "dataset": "sample.zip"}
    code, on_ray = await api(jp_fetch, "jobs", method="POST", body=spec)
    code2, local = await api(jp_fetch, "jobs", method="POST", body={**spec, "backend": "local"})
    assert code == code2 == 201
    ended = {}
    deadline = time.monotonic() + 60
    while len(ended) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        for job in (on_ray, local):
            code, now = await api(jp_fetch, "jobs", job["id"])
            if now["state"] in ("failed", "succeeded"):
                ended[job["id"]] = now
    assert ended[on_ray["id"]]["state"] == "failed" and CLOSED in ended[on_ray["id"]]["message"]
    assert ended[local["id"]]["state"] == "succeeded", ended[local["id"]]


async def test_backends_without_a_cluster_is_this_machine_only(jp_fetch):
    code, reply = await call(jp_fetch, "get", "/backends")  # checked against the API contract
    assert code == 200 and reply == {"default": "local", "backends": [{"id": "local", "name": "This machine"}]}


async def test_with_cluster_and_token_backends_offers_it_and_the_token_is_shown_nowhere(jp_fetch, jp_root_dir, caplog):
    """The Train form's choice: this machine and the cluster at its address; the token
    is neither in the reply nor in the job's records nor in the server's log output."""
    caplog.set_level(logging.DEBUG)
    code, reply = await call(jp_fetch, "get", "/backends")
    assert code == 200 and reply["default"] == "local", reply
    assert reply["backends"] == [
        {"id": "local", "name": "This machine"},
        {"id": "ray", "name": f"Ray cluster at {CLOSED}", "address": CLOSED},
    ]
    generate_sample(jp_root_dir / "sample.zip", images=3, width=64, height=48)
    code, job = await api(
        jp_fetch, "jobs", method="POST", body={"kind": "validate", "dataset": "sample.zip", "backend": "ray"}
    )
    assert code == 201, job
    deadline = time.monotonic() + 60
    while job["state"] != "failed" and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        code, job = await api(jp_fetch, "jobs", job["id"])
    assert job["state"] == "failed" and CLOSED in job["message"], job  # the cluster does not answer
    folder = Path(job["dir"]) if Path(job["dir"]).is_absolute() else jp_root_dir / job["dir"]
    assert folder.is_dir(), job
    for path in folder.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), path
    assert TOKEN not in json.dumps(job) and TOKEN not in caplog.text
