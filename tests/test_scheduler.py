"""One scheduler per runs root: the lease (a flock on <runs_root>/scheduler.lock), and
real processes racing on one runs root without a server: CLI schedulers (``cvat-train
jobs schedule``), CLI clients that only enqueue (``jobs submit``) or cancel, and the
takeover when the lease holder is killed with SIGKILL. The server case is in
test_scheduler_server.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import test_security_jobs_blocker  # noqa: F401 - registers the test-block kind (and puts tests/ on PYTHONPATH)
from test_jobs_manager import _wait_for

from jupyter_cvat_train.jobs.backends.local import is_job_process, process_alive, read_launch
from jupyter_cvat_train.jobs.manager import JobManager
from jupyter_cvat_train.jobs.queue import Limits
from jupyter_cvat_train.jobs.runtime import JobDir
from jupyter_cvat_train.jobs.scheduler import LEASE_NAME, SchedulerLease

#: ``cvat-train`` with the test-block kind registered, as a real process
CLI = [sys.executable, "-c", "import test_security_jobs_blocker; from jupyter_cvat_train.cli import main; main()"]
HOLD_LEASE = (
    "import sys, time; from jupyter_cvat_train.jobs.scheduler import SchedulerLease; "
    "lease = SchedulerLease(sys.argv[1], 'test holder'); assert lease.acquire(); print('held', flush=True); "
    "time.sleep(600)"
)


def cli(runs: Path, *args: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    """``cvat-train jobs --runs-root RUNS ARGS...`` started as a process of its own."""
    return subprocess.Popen(
        [*CLI, "jobs", "--runs-root", str(runs), *args], stdout=subprocess.PIPE, stderr=stderr, text=True
    )


def run_cli(runs: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "jobs", "--runs-root", str(runs), *args], capture_output=True, text=True, timeout=timeout
    )


def submit(runs: Path, spec_file: Path) -> str:
    r = run_cli(runs, "submit", str(spec_file))
    assert r.returncode == 0, r.stderr
    return r.stdout.split(":")[0].strip()


def job_dirs(runs: Path) -> list[JobDir]:
    return [JobDir(p) for p in sorted(runs.iterdir()) if (p / "job.json").is_file()]


def starts(jd: JobDir) -> int:
    """How many times the job's process started (its "running" state events)."""
    return sum(1 for e in jd.read_events() if e["type"] == "state" and e.get("state") == "running")


def live_jobs(runs: Path) -> list[str]:
    """The jobs whose launched process runs now."""
    out = []
    for jd in job_dirs(runs):
        h = read_launch(jd)
        if h.get("pid") and process_alive(h["pid"], h.get("pid_start_time")):
            out.append(jd.id)
    return out


def started_jobs(runs: Path) -> list[str]:
    """The live jobs whose process has started the job (its status says running)."""
    return [i for i in live_jobs(runs) if JobDir(runs / i).read_status().get("state") == "running"]


def kill_jobs(runs: Path) -> None:
    """SIGKILL every job process of the runs root that is verifiably one (test cleanup)."""
    if not runs.is_dir():
        return
    for jd in job_dirs(runs):
        h = read_launch(jd)
        if is_job_process(jd, h.get("pid"), h.get("pid_start_time")):
            os.killpg(h["pid"], signal.SIGKILL)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))  # one signing key for every process
    runs = tmp_path / "runs"
    runs.mkdir()
    spec = tmp_path / "block.json"
    spec.write_text(json.dumps({"kind": "test-block"}))
    procs: list[subprocess.Popen] = []
    yield runs, spec, procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=30)
    kill_jobs(runs)


# -- the lease ---------------------------------------------------------------------------
def test_one_holder_at_a_time_and_takeover_when_it_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lease = SchedulerLease(tmp_path, "me")
        assert not lease.acquire() and not lease.held
        assert lease.holder() == {
            "pid": holder.pid,
            "owner": "test holder",
            "acquired_at": lease.holder()["acquired_at"],
        }
        holder.send_signal(signal.SIGKILL)  # no clean-up of its own: the kernel drops its lock
        holder.wait(30)
        assert _wait_for(lease.acquire)
        assert lease.held and lease.holder() == {"pid": os.getpid(), "owner": "me"}
        other = SchedulerLease(tmp_path)  # a second one, even in this process, waits
        assert not other.acquire() and other.holder()["pid"] == os.getpid()
        lease.release()
        assert other.acquire() and not lease.acquire()
        other.release()
        assert SchedulerLease(tmp_path).holder() is None
    finally:
        holder.kill()
        holder.wait(30)


@pytest.mark.parametrize("plant", ["directory", "symlink", "fifo", "dangling-symlink", "hardlink"])
def test_a_planted_lock_file_is_moved_aside(tmp_path, plant):
    path = tmp_path / LEASE_NAME
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    {
        "directory": lambda: path.mkdir(),
        "symlink": lambda: path.symlink_to(victim),
        "fifo": lambda: os.mkfifo(path),
        "dangling-symlink": lambda: path.symlink_to(tmp_path / "nowhere"),
        "hardlink": lambda: os.link(victim, path),
    }[plant]()
    lease = SchedulerLease(tmp_path)
    assert lease.acquire()
    assert path.is_file() and not path.is_symlink()
    assert any(p.name.startswith(f"{LEASE_NAME}.bad-") for p in tmp_path.iterdir())
    assert victim.read_text() == "precious" and not (tmp_path / "nowhere").exists()
    lease.release()


def test_a_deleted_or_replaced_lock_file_loses_the_lease(tmp_path):
    lease = SchedulerLease(tmp_path)
    assert lease.acquire()
    (tmp_path / LEASE_NAME).unlink()  # a Contents API user deletes it
    other = SchedulerLease(tmp_path)
    assert other.acquire()  # a new file, a new lock
    assert not lease.acquire() and not lease.held  # the first holder notices and stands down
    other.release()
    assert lease.acquire()
    lease.release()


def test_only_the_lease_holder_starts_or_refuses_jobs(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    runs = tmp_path / "runs"
    runs.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, str(runs)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        m = JobManager(runs, root_dir=tmp_path)
        job = m.create({"kind": "test-block"})
        JobDir(runs / "planted").create({"kind": "no-such-kind"})
        m.reconcile()
        m.poll()
        assert m.get(job["id"])["state"] == "queued" and not m.is_scheduler
        assert m.get("planted")["state"] == "queued"  # not ours to refuse either
        assert not (runs / job["id"] / "launch.json").exists()
        holder.kill()
        holder.wait(30)
        assert _wait_for(lambda: m.poll() is not None and m.is_scheduler)
        assert m.get(job["id"])["state"] == "running" and m.get("planted")["state"] == "failed"
        m.cancel_grace = 0.2
        assert m.cancel(job["id"], wait=True)["state"] == "cancelled"
        m.close()
    finally:
        holder.kill()
        holder.wait(30)
        kill_jobs(runs)


# -- real CLI processes on one runs root -------------------------------------------------
def test_two_cli_schedulers_and_clients_start_each_job_once_within_the_limits(runs):
    """Two ``jobs schedule`` processes contend for the lease while clients enqueue with
    ``jobs submit`` and cancel with ``jobs cancel``: at most max io jobs (2) run at once,
    every job starts exactly once, and only a lease holder starts any. Then the holder is
    killed with SIGKILL mid-queue: the other takes over and advances the queue."""
    runs, spec, procs = runs
    first = cli(runs, "schedule", "--interval", "0.1", "--grace", "0.3")
    procs.append(first)
    assert _wait_for(lambda: (SchedulerLease(runs).holder() or {}).get("pid") == first.pid, timeout=60)
    errors = runs.parent / "second.err"
    with open(errors, "w") as err:
        second = cli(runs, "schedule", "--interval", "0.1", "--grace", "0.3", stderr=err)
    procs.append(second)
    assert _wait_for(lambda: "waiting" in errors.read_text(), timeout=60)

    ids = [submit(runs, spec) for _ in range(5)]
    peak = 0

    def running(n: int, launched: int) -> bool:
        nonlocal peak
        live = live_jobs(runs)
        peak = max(peak, len(live))
        return len(live) == n and len(started_jobs(runs)) == n and len(launched_by()) == launched

    def launched_by() -> dict[str, int]:
        return {jd.id: h.get("launcher_pid") for jd in job_dirs(runs) if (h := read_launch(jd))}

    assert _wait_for(lambda: running(2, 2), timeout=60)
    assert set(launched_by().values()) == {first.pid}  # not the clients, not the waiting scheduler

    def cancel_one_running(expect_launched: int) -> None:
        victim = sorted(started_jobs(runs))[0]
        r = run_cli(runs, "cancel", "--grace", "0.3", victim)
        assert r.returncode == 0 and f"{victim}: cancelled" in r.stdout, r.stderr
        assert _wait_for(lambda: running(2, expect_launched), timeout=60), (live_jobs(runs), launched_by())

    cancel_one_running(3)  # a client cancels: the holder (not the client) starts the next one
    assert set(launched_by().values()) == {first.pid}

    first.send_signal(signal.SIGKILL)  # the holder dies without a word; its jobs keep running
    first.wait(30)
    assert _wait_for(lambda: (SchedulerLease(runs).holder() or {}).get("pid") == second.pid, timeout=60)
    cancel_one_running(4)  # ... and the other scheduler advances the queue
    cancel_one_running(5)
    by = launched_by()
    assert sorted(by) == sorted(ids)
    assert [by[i] for i in ids] == [first.pid] * 3 + [second.pid] * 2  # in queue order
    for job_id in ids:
        r = run_cli(runs, "cancel", "--grace", "0.3", job_id)
        assert r.returncode == 0, r.stderr
    assert _wait_for(lambda: running(0, 5), timeout=60)
    assert peak <= 2
    for jd in job_dirs(runs):
        assert starts(jd) == 1, (jd.id, jd.read_events())
        assert jd.read_status()["state"] == "cancelled"


def test_cancel_waits_without_starting_jobs_when_another_process_schedules(runs):
    """``jobs cancel`` used to start queued jobs while it waited, whoever else was
    scheduling: now it starts none unless it holds the lease."""
    runs, spec, procs = runs
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, str(runs)], stdout=subprocess.PIPE, text=True)
    procs.append(holder)
    assert holder.stdout.readline().strip() == "held"
    m = JobManager(runs, limits=Limits(io=1))
    first = m.create({"kind": "test-block"})  # the lease is held elsewhere: queued, nobody starts it
    second = m.create({"kind": "test-block"})
    r = run_cli(runs, "cancel", "--grace", "0.3", first["id"])
    assert r.returncode == 0 and "cancelled" in r.stdout, r.stderr
    assert not (runs / second["id"] / "launch.json").exists()
    assert m.get(second["id"])["state"] == "queued"
    m.close()


def test_following_a_log_never_keeps_the_lease(runs):
    """``jobs logs -f`` (and list, show) settle the queue when nobody else schedules, then
    give the lease up: a server started meanwhile is not kept from scheduling."""
    runs, spec, procs = runs
    m = JobManager(runs)
    job = m.create({"kind": "test-block"})
    m.close()
    follower = cli(runs, "logs", "-f", job["id"])
    procs.append(follower)
    assert _wait_for(lambda: JobDir(runs / job["id"]).read_status().get("state") == "running")
    lease = SchedulerLease(runs)
    assert _wait_for(lease.acquire, timeout=60)
    assert follower.poll() is None  # still following, without the lease
    lease.release()
    r = run_cli(runs, "cancel", "--grace", "0.3", job["id"])
    assert r.returncode == 0 and "cancelled" in r.stdout, r.stderr
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 1 and "cancelled" in err


def test_listing_says_when_queued_jobs_have_no_scheduler(runs):
    runs, spec, procs = runs
    ids = [submit(runs, spec) for _ in range(3)]  # two start (io limit), one waits
    r = run_cli(runs, "list")
    assert r.returncode == 0 and ids[2] in r.stdout
    assert "1 job(s) queued and no process schedules" in r.stderr and "cvat-train jobs schedule" in r.stderr
    scheduler = cli(runs, "schedule", "--interval", "0.1")
    procs.append(scheduler)
    assert _wait_for(lambda: (SchedulerLease(runs).holder() or {}).get("pid") == scheduler.pid, timeout=60)
    r = run_cli(runs, "list", "--json")
    assert r.returncode == 0 and "no process schedules" not in r.stderr
    assert [j["id"] for j in json.loads(r.stdout)] == ids
