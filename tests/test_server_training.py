"""Real tiny training jobs through the server: launched and followed to ``succeeded``;
found again after a server restart while still training, then cancelled (SIGTERM)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest
from test_jobs_manager import _launch_and_exit
from traitlets.config import Config

from jupyter_cvat_train.datasets import generate_sample
from jupyter_cvat_train.jobs.backends.local import job_process, process_alive, signal_group
from jupyter_cvat_train.jobs.runtime import JobDir
from jupyter_cvat_train.jobs.specs import check_spec

pytest_plugins = ["pytest_jupyter.jupyter_server"]

HP = "batch_size: 2\nimage_size: 64\npretrained: false\nwarmup_iters: 1\nnum_workers: 0"


def train_spec(epochs: int) -> dict:
    return {
        "kind": "train",
        "template": "ssdlite320-mobilenet-v3",
        "dataset": "sample.zip",
        "checkpoint": None,
        "parameters": {"epochs": epochs, "hyperparameters": HP},
    }


@pytest.fixture
def sample(jp_root_dir):
    return generate_sample(jp_root_dir / "sample.zip", images=8, width=64, height=64)


@pytest.fixture
def before_restart(jp_root_dir, sample):
    """Jobs left by an earlier server: one still training, one whose process died."""
    runs = jp_root_dir / "cvat-train-runs"
    spec = check_spec(train_spec(100), jp_root_dir)
    alive = _launch_and_exit(runs, spec)
    dead = _launch_and_exit(runs, check_spec({"kind": "validate", "dataset": "sample.zip"}, jp_root_dir))
    jd = JobDir(runs / dead)
    launch = json.loads((jd.path / "launch.json").read_text())
    os.killpg(launch["pid"], signal.SIGKILL)  # before it could write a final state
    deadline = time.monotonic() + 10
    while process_alive(launch["pid"], None) and time.monotonic() < deadline:
        time.sleep(0.05)
    yield alive, dead
    pid, start = job_process(JobDir(runs / alive))  # a failed test leaves no training behind
    signal_group(pid, start, signal.SIGKILL)


def _config(*_):
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True}},
            "CvatTrainApp": {"cancel_grace_seconds": 60.0, "poll_interval": 0.1},
        }
    )


async def _stream(jp_ws_fetch, job_id, until=None, timeout=300):
    ws = await jp_ws_fetch("cvat-train", "api", "jobs", job_id, "stream")
    messages, deadline = [], time.monotonic() + timeout
    while True:
        msg = await asyncio.wait_for(ws.read_message(), max(0.1, deadline - time.monotonic()))
        if msg is None:
            return messages
        messages.append(json.loads(msg))
        if until is not None and until(messages[-1]):
            ws.close()
            return messages


class TestTrainThroughTheApi:
    @pytest.fixture
    def jp_server_config(self):
        return _config()

    @pytest.mark.slow
    async def test_train_job_is_followed_to_succeeded(self, jp_fetch, jp_ws_fetch, sample):
        r = await jp_fetch("cvat-train", "api", "jobs", method="POST", body=json.dumps(train_spec(1)))
        job = json.loads(r.body)
        assert r.code == 201 and job["kind"] == "train"
        messages = await _stream(jp_ws_fetch, job["id"])
        end = messages[-1]
        assert end["type"] == "end" and end["job"]["state"] == "succeeded", end
        events = [m["event"] for m in messages if m["type"] == "event"]
        assert any(e["type"] == "progress" and e.get("unit") == "steps" for e in events)
        log = "".join(m["text"] for m in messages if m["type"] == "log")
        assert "epoch 1/1" in log
        assert end["job"]["progress"]["done"] == end["job"]["progress"]["total"] > 0
        assert end["job"]["outputs"]["model_dir"].endswith("output/model")


class TestRestart:
    @pytest.fixture
    def jp_server_config(self, before_restart):  # the jobs exist before the server starts
        return _config()

    @pytest.mark.slow
    async def test_jobs_are_reconciled_then_the_running_one_is_cancelled(
        self, jp_fetch, jp_ws_fetch, jp_root_dir, before_restart
    ):
        alive, dead = before_restart
        jobs = {j["id"]: j for j in json.loads((await jp_fetch("cvat-train", "api", "jobs")).body)["jobs"]}
        assert (jobs[dead]["state"], jobs[dead]["message"]) == ("failed", "interrupted")
        assert jobs[alive]["state"] == "running"
        # watched again: its progress arrives over the stream
        messages = await _stream(
            jp_ws_fetch,
            alive,
            until=lambda m: (
                m["type"] == "event" and m["event"]["type"] == "progress" and m["event"].get("unit") == "steps"
            ),
        )
        assert messages[-1]["event"]["done"] >= 1
        r = await jp_fetch("cvat-train", "api", "jobs", alive, method="DELETE", allow_nonstandard_methods=True)
        assert r.code == 202
        messages = await _stream(jp_ws_fetch, alive)
        end = messages[-1]["job"]
        # SIGTERM to the group: the training loop stopped at a safe point and said so itself
        assert end["state"] == "cancelled" and end["message"].startswith("cancelled by request"), end
        status = JobDir(jp_root_dir / end["dir"]).read_status()
        assert status["exit_code"] == 0
        deadline = time.monotonic() + 30  # it exits once its final state is written
        while process_alive(status["pid"], status["pid_start_time"]) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not process_alive(status["pid"], status["pid_start_time"])
