"""The job object carries its spec (job.json) for the panel: what the job works on, and
the settings to run it again; read once, path fields relative to the server root, null
when job.json is unreadable or planted too large."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from test_server_jobs import api, follow
from traitlets.config import Config

from jupyter_cvat_train.datasets import generate_sample

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True}},
            "CvatTrainApp": {"poll_interval": 0.1},
        }
    )


async def test_job_objects_carry_their_spec_with_paths_relative_to_the_root(jp_fetch, jp_ws_fetch, jp_root_dir):
    generate_sample(jp_root_dir / "data" / "sample.zip", images=3, width=64, height=48)
    code, job = await api(jp_fetch, "jobs", method="POST", body={"kind": "validate", "dataset": "data/sample.zip"})
    assert code == 201
    assert job["spec"]["kind"] == "validate" and job["spec"]["dataset"] == "data/sample.zip"
    messages = await follow(jp_ws_fetch, job["id"])
    assert all(m["job"]["spec"] == job["spec"] for m in messages if m["type"] in ("state", "end"))
    code, listing = await api(jp_fetch, "jobs")
    assert [j["spec"] for j in listing["jobs"]] == [job["spec"]]
    code, one = await api(jp_fetch, "jobs", job["id"])
    assert one["spec"] == job["spec"]


@pytest.mark.parametrize(
    "content", [b"{not json", b"[1, 2]", b"\xff\xfe", json.dumps({"kind": "validate", "x": "y" * 70000}).encode(), None]
)
async def test_an_unreadable_or_huge_job_json_gives_a_null_spec_not_an_error(
    jp_fetch, jp_serverapp, jp_root_dir, content
):
    generate_sample(jp_root_dir / "data" / "sample.zip", images=3, width=64, height=48)
    code, job = await api(jp_fetch, "jobs", method="POST", body={"kind": "validate", "dataset": "data/sample.zip"})
    assert code == 201 and job["spec"]["dataset"] == "data/sample.zip"
    await follow_to_end(jp_fetch, job["id"])
    spec_path = jp_root_dir / job["dir"] / "job.json"
    if content is None:
        spec_path.unlink()
    else:
        spec_path.write_bytes(content)
    code, listing = await api(jp_fetch, "jobs")
    assert listing["jobs"][0]["spec"] == job["spec"]  # read once: job.json never changes
    jp_serverapp.web_app.settings["cvat_train"].forget_spec(job["id"])  # as a fresh server would
    code, listing = await api(jp_fetch, "jobs")
    assert code == 200 and [(j["id"], j["spec"]) for j in listing["jobs"]] == [(job["id"], None)]
    code, one = await api(jp_fetch, "jobs", job["id"])
    assert code == 200 and one["spec"] is None


async def follow_to_end(jp_fetch, job_id, timeout=120.0):
    """Poll GET jobs/{id} until the job is final (generous deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, job = await api(jp_fetch, "jobs", job_id)
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end in {timeout} s")
