"""The job-backend interface through the local backend, with real detached processes: the
handle is JSON persisted as launch.json and read back checked; poll tells a live,
verified job process from a dead one, a reused pid and a foreign process; cancel asks
politely (SIGTERM) with a grace period and by force (SIGKILL) without, and never touches
a process that is not the job's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import test_security_jobs_blocker  # noqa: F401 - registers the test-block kind
from test_jobs_manager import _wait_for

from jupyter_cvat_train.jobs.backends import LaunchRequest, Poll, read_handle, was_launched, write_handle
from jupyter_cvat_train.jobs.backends.local import LocalBackend, process_alive
from jupyter_cvat_train.jobs.registry import get_kind
from jupyter_cvat_train.jobs.run import RUN_ENV
from jupyter_cvat_train.jobs.runtime import SPEC_HASH_ENV, JobDir, json_bytes, process_start_time, spec_sha256


def _launch(backend: LocalBackend, jd: JobDir) -> dict:
    kind = get_kind("test-block")
    env = {**os.environ, SPEC_HASH_ENV: spec_sha256(json_bytes({"kind": "test-block"})), RUN_ENV: kind.run}
    handle = backend.launch(LaunchRequest(jd, kind, env))
    write_handle(jd, handle)
    return handle


@pytest.fixture
def job(tmp_path):
    jd = JobDir(tmp_path / "job").create({"kind": "test-block"})
    yield jd
    h = read_handle(jd, {"local": LocalBackend()})
    if h.get("pid") and process_alive(h["pid"], h.get("pid_start_time")):
        os.killpg(h["pid"], signal.SIGKILL)


def test_launch_poll_and_cancel_through_the_interface(job):
    backend = LocalBackend()
    handle = _launch(backend, job)
    json.dumps(handle)  # plain JSON
    assert handle["backend"] == "local" and handle["launcher_pid"] == os.getpid() and was_launched(job)
    assert read_handle(job, {"local": backend}) == handle  # persisted and read back, checked, unchanged
    assert _wait_for(lambda: job.read_status().get("state") == "running")
    assert backend.poll(job, handle) == Poll(alive=True, verified=True)
    other = LocalBackend()  # another process (a restarted server): not its child, verified by its records
    assert other.poll(job, read_handle(job, {"local": other})) == Poll(alive=True, verified=True)
    assert other.cancel(job, handle, grace=5.0)  # SIGTERM: the blocker ignores it, as a stuck job would
    assert backend.poll(job, handle).alive
    assert other.cancel(job, handle, grace=0)  # the grace period is over: SIGKILL
    assert _wait_for(lambda: not backend.poll(job, handle).alive)
    assert backend.poll(job, handle) == Poll(alive=False, verified=True, exit_code=-signal.SIGKILL)
    assert other.poll(job, handle) == Poll(alive=False)
    assert not other.cancel(job, handle, grace=0)  # nothing left to stop


def test_handles_that_name_other_processes_are_never_acted_on(job):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        assert _wait_for(lambda: process_start_time(sleeper.pid) is not None)
        start = process_start_time(sleeper.pid)
        backend = LocalBackend()
        forged = [
            {"pid": sleeper.pid, "pid_start_time": start},  # alive, leads its session, not this job's
            {"pid": sleeper.pid, "pid_start_time": start + 1},  # a reused pid
            {"pid": sleeper.pid},  # no start time
            {"pid": os.getpid(), "pid_start_time": process_start_time(os.getpid())},
            {"pid": 1, "pid_start_time": process_start_time(1) or 1.0},
        ]
        for h in forged:
            poll = backend.poll(job, h)
            assert not poll.verified, h
            assert not backend.cancel(job, h, grace=0), h
        assert backend.poll(job, forged[0]) == Poll(alive=True, verified=False)
        assert not backend.poll(job, forged[1]).alive and not backend.poll(job, forged[2]).alive
        assert sleeper.poll() is None
        for content in ({"backend": "cluster", "pid": sleeper.pid}, {"pid": "12", "command": "rm -rf /"}, [1, 2]):
            (job.path / "launch.json").write_text(json.dumps(content))
            h = read_handle(job, {"local": backend})
            assert not h.get("pid") and "command" not in h, content
    finally:
        sleeper.kill()
        sleeper.wait(30)
