"""A runs root full of planted and broken files, on a real Jupyter server with a token:
every route still answers, the good jobs are listed, the bad ones are reported as
failed, nothing planted is run, and nothing outside is signalled or read. Also the
attack at run time, through the Contents API itself."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
import test_security_jobs_blocker  # noqa: F401 - registers the test-block kind
from test_jobs_manager import _wait_for
from test_security_jobs import plant
from test_server_jobs import api, follow
from traitlets.config import Config

from jupyter_cvat_train.datasets import generate_sample
from jupyter_cvat_train.jobs.backends.local import process_alive
from jupyter_cvat_train.jobs.manager import JobManager
from jupyter_cvat_train.jobs.runtime import process_start_time
from jupyter_cvat_train.jobs.specs import check_spec

pytest_plugins = ["pytest_jupyter.jupyter_server"]

SECRET = "TOP-SECRET-OUTSIDE"


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    assert _wait_for(lambda: process_start_time(proc.pid) is not None)
    yield proc
    proc.kill()
    proc.wait(10)


@pytest.fixture
def planted(jp_root_dir, jp_runtime_dir, sleeper, tmp_path_factory):
    """Files in <root>/cvat-train-runs before the server starts: one good finished job
    and every kind of bad entry. Returns (good job id, {bad id: expected state})."""
    generate_sample(jp_root_dir / "sample.zip", images=3, width=32, height=32)
    outside = tmp_path_factory.mktemp("outside")
    (outside / "status.json").write_text(json.dumps({"state": "succeeded", "message": SECRET}))
    (outside / "job.json").write_text(json.dumps({"kind": "validate", "dataset": SECRET}))
    runs = jp_root_dir / "cvat-train-runs"
    m = JobManager(runs, root_dir=jp_root_dir, key_file=jp_runtime_dir / "planted-test.key")
    good = m.wait(m.create(check_spec({"kind": "validate", "dataset": "sample.zip"}, jp_root_dir))["id"], timeout=60)
    assert good["state"] == "succeeded"
    m.close()
    spec = {"kind": "validate", "dataset": str(jp_root_dir / "sample.zip")}
    every_field_wrong = {
        "state": 7,
        "pid": "12",
        "pid_start_time": "now",
        "created_at": 5,
        "started_at": [],
        "ended_at": {},
        "exit_code": "0",
        "message": ["x"],
        "progress": "50%",
        "outputs": "all",
    }
    start = process_start_time(sleeper.pid)
    bad = {
        "not-json": (spec, b"{not json", "failed"),
        "every-field-wrong": (spec, every_field_wrong, "failed"),
        "huge-pid": (spec, {"state": "running", "pid": 2**70, "pid_start_time": 1}, "failed"),
        "pid-one": (spec, {"state": "running", "pid": 1, "pid_start_time": process_start_time(1) or 1}, "failed"),
        "string-progress": (spec, {"state": "succeeded", "progress": {"done": "half", "total": "all"}}, "succeeded"),
        "status-dir": (spec, None, "failed"),
        "status-link": (spec, None, "failed"),
        "spec-dir": (None, {"state": "queued"}, "failed"),
        "spec-link": (None, {"state": "queued"}, "failed"),
        "outside-path": ({"kind": "validate", "dataset": str(outside)}, {"state": "queued"}, "failed"),
        "unknown-kind": ({"kind": "bake"}, {"state": "queued"}, "failed"),
        "foreign-running": (spec, {"state": "running", "pid": sleeper.pid, "pid_start_time": start}, "running"),
    }
    for job_id, (job_spec, status, _) in bad.items():
        plant(runs, job_id, job_spec, status)
    (runs / "status-dir" / "status.json").mkdir()
    (runs / "status-link" / "status.json").symlink_to(outside / "status.json")
    (runs / "spec-dir" / "job.json").mkdir()
    (runs / "spec-link" / "job.json").symlink_to(outside / "job.json")
    (runs / "foreign-running" / "launch.json").write_text(
        json.dumps(
            {
                "pid": sleeper.pid,
                "pid_start_time": start,
                "command": ["python", "-m", "jupyter_cvat_train.datasets", str(runs / "foreign-running")],
            }
        )
    )
    # entries that are not job folders the API could address
    (runs / "linked").symlink_to(outside, target_is_directory=True)
    plant(runs, "bad name!", spec, {"state": "queued"})
    (runs / "notes.txt").write_text("hello")
    return good["id"], {k: v[2] for k, v in bad.items()}


@pytest.fixture
def jp_server_config(planted):
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True}},
            "CvatTrainApp": {"cancel_grace_seconds": 0.5, "poll_interval": 0.1, "max_io_jobs": 1},
        }
    )


async def _until(jp_fetch, job_id, states, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        code, job = await api(jp_fetch, "jobs", job_id)
        if code == 200 and job["state"] in states or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.1)


async def test_a_planted_runs_root_never_disables_the_extension(jp_fetch, jp_ws_fetch, jp_root_dir, planted, sleeper):
    good_id, expected = planted
    runs = jp_root_dir / "cvat-train-runs"
    assert (await api(jp_fetch, "version"))[0] == 200
    assert (await api(jp_fetch, "templates"))[0] == 200
    code, report = await api(jp_fetch, "datasets/validate", method="POST", body={"path": "sample.zip"})
    assert code == 200 and report["ok"]

    for job_id, state in expected.items():  # settled by the watcher's first polls
        if state == "failed":
            await _until(jp_fetch, job_id, ("failed",))
    code, body = await api(jp_fetch, "jobs")
    assert code == 200
    jobs = {j["id"]: j for j in body["jobs"]}
    assert set(jobs) == {good_id, *expected}  # symlinked and unaddressable folders are skipped
    assert jobs[good_id]["state"] == "succeeded" and jobs[good_id]["outputs"]["images"] == 3
    for job_id, state in expected.items():
        assert jobs[job_id]["state"] == state, jobs[job_id]
        if state == "failed":
            assert jobs[job_id]["message"], jobs[job_id]
        assert not (runs / job_id / "job.log").exists(), job_id  # nothing planted ever ran
    assert "status.json" in jobs["not-json"]["message"] and "status.json" in jobs["status-link"]["message"]
    assert "job.json" in jobs["spec-dir"]["message"] and "unknown job kind" in jobs["unknown-kind"]["message"]
    assert "not queued through cvat-train" in jobs["outside-path"]["message"]
    assert jobs["string-progress"]["progress"] == {"done": 0, "total": None, "unit": None}
    assert SECRET not in json.dumps(body)

    for job_id in [good_id, *expected]:  # every route answers for every job
        code, job = await api(jp_fetch, "jobs", job_id)
        assert code == 200 and SECRET not in json.dumps(job)
        code, log = await api(jp_fetch, "jobs", job_id, "log")
        assert code == 200, (job_id, log)
    messages = await follow(jp_ws_fetch, "not-json", timeout=60)
    assert messages[-1]["type"] == "end" and messages[-1]["job"]["state"] == "failed"

    # a cancel of the job that names a foreign process marks it cancelled, signals nothing
    code, job = await api(jp_fetch, "jobs", "foreign-running", method="DELETE")
    assert code == 202 and job["state"] == "cancelled" and "not signalled" in job["message"]
    await asyncio.sleep(1.0)  # past the grace period: no SIGKILL either
    assert sleeper.poll() is None and process_alive(sleeper.pid, None)

    # and a real job still runs
    code, job = await api(jp_fetch, "jobs", method="POST", body={"kind": "validate", "dataset": "sample.zip"})
    assert code == 201
    assert (await _until(jp_fetch, job["id"], ("succeeded", "failed")))["state"] == "succeeded"


async def test_records_rewritten_through_the_contents_api(jp_fetch, jp_root_dir, planted, sleeper):
    """The attacker's own surface: PUT /api/contents on a queued job's job.json, a running
    job's launch.json and status.json."""
    outside = jp_root_dir.parent / "elsewhere"
    outside.mkdir(exist_ok=True)
    generate_sample(outside / "secret.zip", images=3, width=32, height=32)
    # the planted "running" job of a foreign process holds no slot: a real job starts,
    # and runs until killed (one io slot)
    code, blocker = await api(jp_fetch, "jobs", method="POST", body={"kind": "test-block"})
    assert code == 201
    code, queued = await api(jp_fetch, "jobs", method="POST", body={"kind": "validate", "dataset": "sample.zip"})
    assert code == 201 and queued["state"] == "queued"
    await _until(jp_fetch, blocker["id"], ("running",))
    runs = jp_root_dir / "cvat-train-runs"
    assert _wait_for(lambda: (runs / blocker["id"] / "status.json").read_text().count('"pid"'))
    real = json.loads((runs / blocker["id"] / "launch.json").read_text())

    async def put(job_id, name, content):
        model = {"type": "file", "format": "text", "content": json.dumps(content)}
        r = await jp_fetch("api", "contents", "cvat-train-runs", job_id, name, method="PUT", body=json.dumps(model))
        assert r.code in (200, 201)

    await put(queued["id"], "job.json", {"kind": "validate", "dataset": str(outside / "secret.zip")})
    forged = {"pid": sleeper.pid, "pid_start_time": process_start_time(sleeper.pid), "command": real["command"]}
    await put(blocker["id"], "launch.json", forged)
    await put(blocker["id"], "status.json", {"state": "running", "pid": "x", "progress": "lots", "message": 5})

    done = await _until(jp_fetch, queued["id"], ("failed", "succeeded"))
    assert done["state"] == "failed" and "changed after it was queued" in done["message"], done
    assert not (runs / queued["id"] / "launch.json").exists()
    assert (await api(jp_fetch, "jobs"))[0] == 200

    code, _ = await api(jp_fetch, "jobs", blocker["id"], method="DELETE")
    assert code == 202
    end = await _until(jp_fetch, blocker["id"], ("cancelled", "failed"))
    assert end["state"] == "cancelled", end
    assert sleeper.poll() is None  # the forged target lives
    # the real job process was verified by its command line and start time, and stopped
    assert _wait_for(lambda: not process_alive(real["pid"], real["pid_start_time"]), timeout=30)
