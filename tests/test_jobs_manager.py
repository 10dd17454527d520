"""The job service without a server: real detached job processes (the validate kind),
queue order, cancel, delete, reconciliation after a "restart" (a new JobManager)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import test_security_jobs_blocker  # noqa: F401 - registers the test-block kind

from jupyter_cvat_train.datasets import generate_sample
from jupyter_cvat_train.jobs.backends.local import process_alive, read_launch
from jupyter_cvat_train.jobs.manager import JobManager, JobNotFound
from jupyter_cvat_train.jobs.queue import Limits, jobs_to_start
from jupyter_cvat_train.jobs.runtime import FINAL_STATES, JobDir, process_start_time
from jupyter_cvat_train.jobs.specs import SpecError, check_spec, resolve_inside


@pytest.fixture
def root(tmp_path):
    generate_sample(tmp_path / "sample.zip", images=4, width=64, height=48)
    yield tmp_path
    unblock(tmp_path / "blocked.zip")


def unblock(fifo) -> None:
    """Let any job still blocked opening ``fifo`` go on (it then fails fast), so a failed
    test leaves no process behind."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def _validate_spec(root: Path, dataset: str = "sample.zip") -> dict:
    return check_spec({"kind": "validate", "dataset": dataset}, root)


def _blocking_spec(root: Path) -> dict:
    """A real job process that runs until it is killed (it ignores SIGTERM): the
    ``test-block`` kind of tests/test_security_jobs_blocker.py."""
    return check_spec({"kind": "test-block"}, root)


def _wait_for(cond, timeout=30.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return False


def test_job_runs_detached_and_succeeds(root):
    m = JobManager(root / "runs")
    job = m.create(_validate_spec(root))
    assert job["state"] == "running" and job["kind"] == "validate"
    launch = read_launch(JobDir(Path(job["dir"])))
    # its own session: process group id == pid, not ours
    assert os.getpgid(launch["pid"]) == launch["pid"] != os.getpgid(0)
    done = m.wait(job["id"], timeout=60)
    assert done["state"] == "succeeded", Path(job["dir"], "job.log").read_text()
    assert done["outputs"]["images"] == 4 and done["progress"] == {"done": 1, "total": 1, "unit": "exports"}
    assert "few-annotations" in Path(job["dir"], "job.log").read_text()  # stdout went to job.log
    assert set(done) == {
        "id",
        "kind",
        "state",
        "message",
        "progress",
        "created_at",
        "started_at",
        "ended_at",
        "dir",
        "outputs",
    }


def test_queue_starts_jobs_in_order_within_the_limit(root):
    m = JobManager(root / "runs", limits=Limits(io=1))
    blocker = m.create(_blocking_spec(root))
    a = m.create(_validate_spec(root))
    b = m.create(_validate_spec(root))
    assert [blocker["state"], a["state"], b["state"]] == ["running", "queued", "queued"]
    m.poll()
    assert m.get(a["id"])["state"] == "queued"  # the slot is still taken
    m.cancel(b["id"])  # a queued job is cancelled without ever starting
    assert m.get(b["id"])["state"] == "cancelled" and not read_launch(m.job_dir(b["id"]))
    m.cancel_grace = 0.5
    assert m.cancel(blocker["id"], wait=True)["state"] == "cancelled"
    assert m.wait(a["id"], timeout=60)["state"] == "succeeded"
    assert m.get(blocker["id"])["ended_at"] <= m.get(a["id"])["started_at"]


def test_queue_order_is_kept_per_resource():
    rows = [{"seq": i, "kind": k, "gpu": None} for i, k in enumerate(["train", "sync", "train", "validate"])]
    kinds = {"train": "accelerator", "sync": "io", "validate": "io"}
    started = jobs_to_start(rows, [], Limits(accelerator=1, io=1), kinds.get)
    assert [r["seq"] for r in started] == [0, 1]
    running = [{"seq": 9, "kind": "train", "gpu": None}]
    assert [r["seq"] for r in jobs_to_start(rows, running, Limits(accelerator=1, io=2), kinds.get)] == [1, 3]


def test_accelerator_jobs_get_one_gpu_each(monkeypatch):
    from jupyter_cvat_train.jobs.queue import count_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert count_gpus() == 2
    rows = [{"seq": i, "kind": "train", "gpu": None} for i in range(3)]
    started = jobs_to_start(rows, [], Limits(), lambda k: "accelerator")
    assert [(r["seq"], r["gpu"]) for r in started] == [(0, "2"), (1, "5")]  # the third waits for a GPU
    running = [{"seq": 0, "kind": "train", "gpu": "5"}]
    assert [(r["seq"], r["gpu"]) for r in jobs_to_start(rows[1:], running, Limits(), lambda k: "accelerator")] == [
        (1, "2")
    ]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert count_gpus() == 0 and Limits().resolved()["accelerator"] == 1  # one CPU training job at a time


def test_cancel_kills_the_process_group_after_the_grace_period(root):
    m = JobManager(root / "runs", cancel_grace=0.5)
    job = m.create(_blocking_spec(root))
    pid = read_launch(m.job_dir(job["id"]))["pid"]
    assert _wait_for(lambda: m.job_dir(job["id"]).read_status().get("state") == "running")
    t = time.monotonic()
    done = m.cancel(job["id"], wait=True)
    assert done["state"] == "cancelled" and time.monotonic() - t >= 0.5
    assert not process_alive(pid, None)
    # the manager wrote the final state the killed process could not write
    assert m.job_dir(job["id"]).read_status()["state"] == "cancelled"


def test_delete_forgets_and_removes_only_when_asked(root):
    m = JobManager(root / "runs")
    a = m.wait(m.create(_validate_spec(root))["id"], timeout=60)
    b = m.wait(m.create(_validate_spec(root))["id"], timeout=60)
    assert m.delete(a["id"]) is None and Path(a["dir"]).is_dir()
    assert m.delete(b["id"], remove_files=True) is None and not Path(b["dir"]).exists()
    with pytest.raises(JobNotFound):
        m.get(a["id"])
    # a new manager (a server restart) does not bring the forgotten job back
    m2 = JobManager(root / "runs")
    assert m2.reconcile()["indexed"] == 0 and m2.list_jobs() == []


def test_delete_of_a_running_job_cancels_it(root):
    m = JobManager(root / "runs", cancel_grace=0.3)
    job = m.create(_blocking_spec(root))
    assert m.delete(job["id"])["id"] == job["id"]  # still there, being cancelled
    assert m.wait(job["id"], timeout=30)["state"] == "cancelled"


def _launch_and_exit(runs: Path, spec: dict) -> str:
    """Create a job from another Python process that exits at once, as a server that
    stopped: the job process is left to itself. Returns the job id."""
    code = (
        "import json,sys; import test_security_jobs_blocker; from jupyter_cvat_train.jobs.manager import JobManager; "
        "print(JobManager(sys.argv[1]).create(json.loads(sys.argv[2]))['id'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(runs), json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


def test_reconcile_after_restart(root):
    runs = root / "runs"
    alive_id = _launch_and_exit(runs, _blocking_spec(root))
    dead_id = _launch_and_exit(runs, _blocking_spec(root))
    dead_dir = JobDir(runs / dead_id)
    assert _wait_for(lambda: dead_dir.read_status().get("state") == "running")
    dead_pid = dead_dir.read_status()["pid"]
    os.killpg(dead_pid, signal.SIGKILL)  # dies without writing a final state
    assert _wait_for(lambda: not process_alive(dead_pid, None))
    (runs / "jobs.sqlite").unlink()  # the store is only an index: rebuilt from the folders
    for extra in ("jobs.sqlite-wal", "jobs.sqlite-shm"):
        (runs / extra).unlink(missing_ok=True)

    m = JobManager(runs, cancel_grace=0.3)
    report = m.reconcile()
    assert report["indexed"] == 2 and report["interrupted"] == 1 and report["running"] == 1
    dead = m.get(dead_id)
    assert (dead["state"], dead["message"]) == ("failed", "interrupted")
    assert dead_dir.read_status()["state"] == "failed"
    assert m.get(alive_id)["state"] == "running"  # found again and watched
    assert [j["id"] for j in m.list_jobs()] == [alive_id, dead_id]  # creation order
    assert m.cancel(alive_id, wait=True)["state"] == "cancelled"  # not our child, still controlled


def test_reused_pid_is_not_taken_for_the_job(root):
    """A status.json naming a live pid whose start time differs (a reused pid) is a dead job."""
    runs = root / "runs"
    jd = JobDir(runs / "20000101-000000-validate-000000").create({"kind": "validate", "dataset": "x"})
    me = os.getpid()
    jd.update_status(state="running", pid=me, pid_start_time=process_start_time(me) - 1, started_at="2000")
    m = JobManager(runs)
    assert m.reconcile()["interrupted"] == 1
    assert m.get(jd.id)["message"] == "interrupted"


def test_unknown_kind_folder_fails_instead_of_blocking_the_queue(root):
    runs = root / "runs"
    JobDir(runs / "20000101-000000-nokind-000000").create({"kind": "no-such-kind"})
    m = JobManager(runs)
    m.reconcile()
    m.poll()
    job = m.get("20000101-000000-nokind-000000")
    assert job["state"] == "failed" and "unknown job kind" in job["message"]


def test_paths_are_resolved_inside_the_root(root, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "x.zip").write_bytes(b"")
    (root / "link").symlink_to(outside)
    assert resolve_inside(root, "sample.zip") == (root / "sample.zip").resolve()
    assert resolve_inside(root, str(root / "sample.zip")) == (root / "sample.zip").resolve()
    for bad in ("../outside/x.zip", str(outside / "x.zip"), "link/x.zip", "sub/../../x"):
        with pytest.raises(SpecError) as e:
            resolve_inside(root, bad)
        assert e.value.status == 403, bad
    with pytest.raises(SpecError) as e:
        resolve_inside(root, "missing.zip")
    assert e.value.status == 404
    with pytest.raises(SpecError) as e:
        check_spec({"kind": "bake"}, root)
    assert e.value.status == 400 and "unknown job kind" in str(e.value)


def test_final_states_are_terminal(root):
    m = JobManager(root / "runs")
    job = m.wait(m.create(_validate_spec(root))["id"], timeout=60)
    assert job["state"] in FINAL_STATES
    assert m.cancel(job["id"])["state"] == "succeeded"  # cancelling a finished job changes nothing
