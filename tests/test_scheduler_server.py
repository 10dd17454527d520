"""One scheduler per runs root with a real Jupyter server (pytest-jupyter) and two real
CLI processes on its runs root: the server holds the lease; a ``jobs schedule`` process
waits for it; another CLI process enqueues (``jobs submit``) and cancels (``jobs
cancel``) beside the API. The queue limit (max_io_jobs = 2) holds, every job starts
exactly once, and the server starts them all. And a server that finds a CLI scheduling
only enqueues, until that CLI is killed: then it takes over."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest
import test_security_jobs_blocker  # noqa: F401 - registers the test-block kind
from test_scheduler import cli, job_dirs, kill_jobs, live_jobs, run_cli, started_jobs, starts
from test_server_jobs import api
from traitlets.config import Config

from jupyter_cvat_train.jobs.backends.local import read_launch
from jupyter_cvat_train.jobs.runtime import JobDir
from jupyter_cvat_train.jobs.scheduler import SchedulerLease

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True}},
            "CvatTrainApp": {"max_io_jobs": 2, "cancel_grace_seconds": 0.3, "poll_interval": 0.1},
        }
    )


async def until(cond, timeout: float = 60.0) -> bool:
    """Poll ``cond`` without blocking the server's event loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_server_and_two_cli_processes_share_one_queue(jp_fetch, jp_root_dir, tmp_path):
    runs = jp_root_dir / "cvat-train-runs"
    assert (await api(jp_fetch, "jobs"))[0] == 200
    holder = SchedulerLease(runs).holder()
    assert holder["pid"] == os.getpid() and holder["owner"].startswith("jupyter server")
    spec = tmp_path / "block.json"
    spec.write_text(json.dumps({"kind": "test-block"}))
    errors = tmp_path / "schedule.err"
    with open(errors, "w") as err:
        scheduler = cli(runs, "schedule", "--interval", "0.1", stderr=err)  # CLI process 1
    try:
        assert await until(lambda: "waiting" in errors.read_text() and "jupyter server" in errors.read_text())
        ids = []
        for _ in range(3):  # enqueued through the API and by CLI process 2, in turns
            code, job = await api(jp_fetch, "jobs", method="POST", body={"kind": "test-block"})
            assert code == 201, job
            ids.append(job["id"])
            r = await asyncio.to_thread(run_cli, runs, "submit", str(spec))
            assert r.returncode == 0 and r.stdout.endswith(": queued\n"), (r.stdout, r.stderr)
            ids.append(r.stdout.split(":")[0])
        peak = 0

        def running(n: int, launched: int) -> bool:
            nonlocal peak
            live = live_jobs(runs)
            peak = max(peak, len(live))
            return (
                len(live) == n
                and len(started_jobs(runs)) == n
                and sum(1 for jd in job_dirs(runs) if read_launch(jd)) == launched
            )

        assert await until(lambda: running(2, 2))
        for launched in range(3, 7):  # cancel one running job, in turns by the API and the CLI
            victim = sorted(started_jobs(runs))[0]
            if launched % 2:
                code, _ = await api(jp_fetch, "jobs", victim, method="DELETE")
                assert code == 202
            else:
                r = await asyncio.to_thread(run_cli, runs, "cancel", "--grace", "0.3", victim)
                assert r.returncode == 0 and f"{victim}: cancelled" in r.stdout, r.stderr
            assert await until(lambda n=launched: running(2, n)), (live_jobs(runs), launched)
        for victim in live_jobs(runs):
            assert (await api(jp_fetch, "jobs", victim, method="DELETE"))[0] == 202
        assert await until(lambda: running(0, 6))
        assert peak <= 2
        assert scheduler.poll() is None  # still waiting: it never scheduled
        for jd in job_dirs(runs):
            assert read_launch(jd)["launcher_pid"] == os.getpid(), jd.id  # the server started every one
            assert starts(jd) == 1, (jd.id, jd.read_events())
        assert sorted(jd.id for jd in job_dirs(runs)) == sorted(ids)
        deadline = time.monotonic() + 60
        while True:  # the API shows them all, cancelled
            code, body = await api(jp_fetch, "jobs")
            if {j["id"]: j["state"] for j in body["jobs"]} == dict.fromkeys(ids, "cancelled"):
                break
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.1)
    finally:
        scheduler.kill()
        scheduler.communicate(timeout=30)
        kill_jobs(runs)


@pytest.fixture
def cli_scheduler(jp_environ, jp_root_dir, tmp_path):
    """A ``cvat-train jobs schedule`` process holding the lease of the server's runs root
    before the server starts (same Jupyter runtime dir, so the same signing key)."""
    runs = jp_root_dir / "cvat-train-runs"
    runs.mkdir()
    proc = cli(runs, "schedule", "--interval", "0.1", "--grace", "0.3")
    deadline = time.monotonic() + 60
    while (SchedulerLease(runs).holder() or {}).get("pid") != proc.pid:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    yield proc
    proc.kill()
    proc.communicate(timeout=30)
    kill_jobs(runs)


async def test_the_server_enqueues_while_a_cli_schedules_and_takes_over_when_it_is_killed(
    cli_scheduler, jp_fetch, jp_root_dir
):
    runs = jp_root_dir / "cvat-train-runs"
    ids = []
    for _ in range(3):
        code, job = await api(jp_fetch, "jobs", method="POST", body={"kind": "test-block"})
        assert code == 201 and job["state"] == "queued", job  # the server only enqueues
        ids.append(job["id"])
    assert await until(lambda: len(started_jobs(runs)) == 2 and len(live_jobs(runs)) == 2)
    assert {read_launch(jd).get("launcher_pid") for jd in job_dirs(runs) if read_launch(jd)} == {cli_scheduler.pid}
    cli_scheduler.send_signal(signal.SIGKILL)
    cli_scheduler.wait(30)
    assert await until(lambda: (SchedulerLease(runs).holder() or {}).get("pid") == os.getpid())
    victim = sorted(started_jobs(runs))[0]
    assert (await api(jp_fetch, "jobs", victim, method="DELETE"))[0] == 202
    assert await until(lambda: len(started_jobs(runs)) == 2 and all(read_launch(jd) for jd in job_dirs(runs)))
    assert read_launch(JobDir(runs / ids[2]))["launcher_pid"] == os.getpid()  # the server took over
    for victim in live_jobs(runs):
        assert (await api(jp_fetch, "jobs", victim, method="DELETE"))[0] == 202
    assert await until(lambda: not live_jobs(runs))
    for jd in job_dirs(runs):
        assert starts(jd) == 1, (jd.id, jd.read_events())
