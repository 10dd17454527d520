"""The Python API in a kernel that a real Jupyter server (pytest-jupyter) started: the
kernel gets the server's runs root, root_dir and URL; its jobs appear in the server's
GET jobs and run; Job.tensorboard() calls the server with a token."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
from traitlets.config import Config

from jupyter_cvat_train.api import config
from jupyter_cvat_train.datasets import generate_sample

pytest_plugins = ["pytest_jupyter.jupyter_server"]
pytestmark = pytest.mark.slow


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True, "jupyter_server_proxy": True}},
            "CvatTrainApp": {"cancel_grace_seconds": 1.0, "poll_interval": 0.1},
        }
    )


async def run_in_kernel(client, code: str, timeout: float = 120) -> str:
    """Run ``code`` in the kernel; its stdout. Fails the test with the kernel's error."""
    out, errors = [], []

    def hook(msg):
        content = msg["content"]
        if msg["msg_type"] == "stream":
            out.append(content["text"])
        elif msg["msg_type"] == "error":
            errors.append("\n".join(content["traceback"]))

    await client.execute_interactive(code, output_hook=hook, timeout=timeout)
    assert not errors, errors[0]
    return "".join(out)


async def get_json(jp_fetch, *parts):
    r = await jp_fetch(*parts, method="GET")
    return json.loads(r.body)


async def test_kernel_gets_the_runs_root_and_its_jobs_run_in_the_server(
    jp_fetch, jp_serverapp, jp_root_dir, jp_auth_header
):
    environ_before = dict(os.environ)
    generate_sample(jp_root_dir / "data" / "sample.zip", images=4, width=64, height=48)
    (jp_root_dir / "notebooks").mkdir()
    r = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3", "path": "notebooks"}))
    kernel_id = json.loads(r.body)["id"]
    client = jp_serverapp.kernel_manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=120)
        out = await run_in_kernel(
            client,
            "import os, json\n"
            "from jupyter_cvat_train import api\n"
            "job = api.submit({'kind': 'validate', 'dataset': '../data/sample.zip'})\n"
            "print(json.dumps({k: os.environ.get(k) for k in "
            "('CVAT_TRAIN_RUNS_ROOT', 'CVAT_TRAIN_ROOT_DIR', 'CVAT_TRAIN_SERVER_URL')} | "
            "{'id': job.id, 'runs_root': str(api.runs_root()), 'cwd': os.getcwd()}))\n",
        )
        seen = json.loads(out.strip().splitlines()[-1])
        root = os.path.realpath(jp_root_dir)
        assert seen["CVAT_TRAIN_ROOT_DIR"] == root
        assert seen["CVAT_TRAIN_RUNS_ROOT"] == seen["runs_root"] == os.path.join(root, "cvat-train-runs")
        assert seen["cwd"] == os.path.join(root, "notebooks")  # not the root: the variables decide
        assert seen["CVAT_TRAIN_SERVER_URL"].startswith("http")
        job_id = seen["id"]

        deadline = time.monotonic() + 120
        while True:
            listing = await get_json(jp_fetch, "cvat-train", "api", "jobs")
            job = next((j for j in listing["jobs"] if j["id"] == job_id), None)  # the panel's list
            if (job and job["state"] in ("succeeded", "failed", "cancelled")) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert job is not None, f"job {job_id} is not in the server's GET jobs"
        assert job["state"] == "succeeded" and job["outputs"]["images"] == 4, job

        # kernel -> server REST with a token: TensorBoard through the server's proxy
        token = jp_auth_header["Authorization"].split(" ", 1)[1]
        out = await run_in_kernel(
            client,
            f"os.environ['CVAT_TRAIN_SERVER_TOKEN'] = {token!r}\nurl = api.Job.get(job.id).tensorboard()\nprint(url)\n",
        )
        url = out.strip().splitlines()[-1]
        assert url.startswith(seen["CVAT_TRAIN_SERVER_URL"].rstrip("/").rsplit("/", 1)[0]) and "/proxy/" in url
        assert token not in out

        out = await run_in_kernel(
            client,
            "os.environ['CVAT_TRAIN_SERVER_TOKEN'] = 'wrong'\n"
            "try:\n    api.Job.get(job.id).tensorboard()\nexcept RuntimeError as e:\n    print(e)\n",
        )
        assert "answered 403" in out and "CVAT_TRAIN_SERVER_TOKEN" in out and token not in out
    finally:
        client.stop_channels()
        await jp_serverapp.kernel_manager.shutdown_kernel(kernel_id, now=True)
    # the variables went to the kernel only: this process's environment (and so the runs
    # root of everything that runs after this server in it) is unchanged
    assert dict(os.environ) == environ_before
    assert config.RUNS_ROOT_ENV not in os.environ or environ_before.get(config.RUNS_ROOT_ENV)
