"""TensorBoard for a job through jupyter-server-proxy: started once, answers at
{base_url}proxy/<port>/, stopped on job delete and when the server stops."""

from __future__ import annotations

import json

import pytest
from traitlets.config import Config

from jupyter_cvat_train.jobs.backends.local import process_alive

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return Config({"ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True, "jupyter_server_proxy": True}}})


def _extension(jp_serverapp):
    (app,) = jp_serverapp.extension_manager.extension_apps["jupyter_cvat_train"]
    return app


@pytest.mark.slow
async def test_tensorboard_answers_through_the_proxy(jp_fetch, jp_serverapp, jp_root_dir, jp_base_url):
    from jupyter_cvat_train.datasets import generate_sample

    generate_sample(jp_root_dir / "sample.zip", images=2, width=32, height=32)
    r = await jp_fetch(
        "cvat-train", "api", "jobs", method="POST", body=json.dumps({"kind": "validate", "dataset": "sample.zip"})
    )
    job = json.loads(r.body)
    service = _extension(jp_serverapp).service
    service.manager.wait(job["id"], timeout=60)

    r = await jp_fetch(
        "cvat-train", "api", "jobs", job["id"], "tensorboard", method="POST", body="{}", request_timeout=120
    )
    tb = json.loads(r.body)
    assert tb["url"] == f"{jp_base_url}proxy/{tb['port']}/"
    r2 = await jp_fetch("cvat-train", "api", "jobs", job["id"], "tensorboard", method="POST", body="{}")
    assert json.loads(r2.body) == tb  # idempotent: the same process
    (pid,) = service.tensorboards.pids()

    page = await jp_fetch("proxy", str(tb["port"]), "", request_timeout=60)
    assert page.code == 200 and b"TensorBoard" in page.body

    await jp_fetch("cvat-train", "api", "jobs", job["id"], method="DELETE", allow_nonstandard_methods=True)
    assert not process_alive(pid, None) and service.tensorboards.pids() == []

    # a second one is stopped with the server
    r = await jp_fetch(
        "cvat-train", "api", "jobs", method="POST", body=json.dumps({"kind": "validate", "dataset": "sample.zip"})
    )
    job = json.loads(r.body)
    await jp_fetch("cvat-train", "api", "jobs", job["id"], "tensorboard", method="POST", body="{}", request_timeout=120)
    (pid,) = service.tensorboards.pids()
    await _extension(jp_serverapp).stop_extension()
    assert not process_alive(pid, None)
