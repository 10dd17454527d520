"""Custom training templates through a real Jupyter server: GET templates lists the
user's template (and a broken one with its line), POST jobs {kind: train, template}
runs the user's code from a local git repository on a VOC export converted to COCO, the
commit is recorded in job.json, and a cancel reaches the user's process."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
from test_custom_templates import make_repo, write_template
from traitlets.config import Config

from jupyter_cvat_train.datasets import generate_sample
from jupyter_cvat_train.jobs.backends.local import process_alive

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True}},
            "CvatTrainApp": {"cancel_grace_seconds": 60.0, "poll_interval": 0.1},
        }
    )


@pytest.fixture
def setup(jp_root_dir, tmp_path):
    repo = tmp_path / "repo"
    commit = make_repo(repo)
    folder = jp_root_dir / "cvat-train-templates"
    write_template(folder, repo)
    write_template(
        folder,
        repo,
        name="holder",
        command="python -u train.py --data {{inputs.dataset}} --output {{output}} --hold 120",
        environment={},
    )
    (folder / "broken.yaml").write_text(
        "name: b\ncode: {path: .}\ndump_format: cvat_coco\ncommand: x {{output}} {{parameters.nope}}\n"
    )
    generate_sample(jp_root_dir / "voc.zip", format="voc", images=6, width=64, height=48)
    return commit


async def _job(jp_fetch, job_id, until, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        job = json.loads((await jp_fetch("cvat-train", "api", "jobs", job_id)).body)
        if until(job) or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.2)


async def test_templates_list_and_train_end_to_end(jp_fetch, jp_root_dir, setup):
    listed = json.loads((await jp_fetch("cvat-train", "api", "templates")).body)
    mine = {t["name"]: t for t in listed["templates"]}["my-baseline"]
    assert mine["family"] == "custom" and mine["parameters"][0]["name"] == "epochs"
    assert any("broken.yaml:4: {{parameters.nope}} names no parameter" in b for b in listed["broken"]), listed["broken"]
    body = {
        "kind": "train",
        "template": "my-baseline",
        "dataset": "voc.zip",
        "parameters": {"epochs": "2", "note": "1; rm -rf ~"},
    }
    r = await jp_fetch("cvat-train", "api", "jobs", method="POST", body=json.dumps(body))
    job = json.loads(r.body)
    assert r.code == 201 and job["kind"] == "train"
    job = await _job(jp_fetch, job["id"], lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
    job_dir = jp_root_dir / "cvat-train-runs" / job["id"]
    assert job["state"] == "succeeded", (job, (job_dir / "job.log").read_text()[-2000:])
    assert json.loads((job_dir / "job.json").read_text())["code_commit"] == setup
    assert job["outputs"]["code_commit"] == setup
    log = (job_dir / "job.log").read_text()
    assert "converting voc to coco" in log and "epoch 2/2" in log
    out = job_dir / "output"
    assert json.loads((out / "args.json").read_text())["note"] == "1; rm -rf ~"
    assert (out / "classes.csv").is_file() and (out / "model.json").is_file()


async def test_bad_parameters_are_refused(jp_fetch, setup):
    body = {"kind": "train", "template": "my-baseline", "dataset": "voc.zip", "parameters": {"epochs": "2; reboot"}}
    with pytest.raises(Exception) as e:
        await jp_fetch("cvat-train", "api", "jobs", method="POST", body=json.dumps(body))
    assert e.value.code == 400 and "must be a number" in e.value.response.body.decode()


async def test_cancel_reaches_the_users_process(jp_fetch, jp_root_dir, setup):
    body = {"kind": "train", "template": "holder", "dataset": "voc.zip"}
    job = json.loads((await jp_fetch("cvat-train", "api", "jobs", method="POST", body=json.dumps(body))).body)
    pid_file = jp_root_dir / "cvat-train-runs" / job["id"] / "output" / "pid.txt"
    deadline = time.monotonic() + 90
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    pid = int(pid_file.read_text())
    assert process_alive(pid, None)
    assert os.getpgid(pid) == pid  # the command leads a process group of its own
    r = await jp_fetch("cvat-train", "api", "jobs", job["id"], method="DELETE")
    assert r.code == 202
    job = await _job(jp_fetch, job["id"], lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
    assert job["state"] == "cancelled", job
    assert (pid_file.parent / "terminated.txt").read_text().strip() == "signal 15"  # SIGTERM reached it
    deadline = time.monotonic() + 30
    while process_alive(pid, None) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not process_alive(pid, None)
