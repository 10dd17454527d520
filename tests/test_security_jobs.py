"""The runs root is untrusted input: job folders, records and the index planted or edited
by someone who can write files there (any Jupyter Contents API user), through the real
core (JobManager, real job processes) and the CLI. The server-level cases are in
test_security_jobs_server.py."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_jobs_manager import _blocking_spec, _wait_for, unblock

from jupyter_cvat_train.cli import main
from jupyter_cvat_train.datasets import generate_sample
from jupyter_cvat_train.jobs.backends.local import process_alive, signal_group
from jupyter_cvat_train.jobs.manager import JobManager
from jupyter_cvat_train.jobs.queue import Limits
from jupyter_cvat_train.jobs.runtime import JobDir, process_start_time, write_json_atomic
from jupyter_cvat_train.jobs.specs import check_spec


@pytest.fixture
def root(tmp_path):
    generate_sample(tmp_path / "sample.zip", images=3, width=32, height=32)
    yield tmp_path
    unblock(tmp_path / "blocked.zip")


@pytest.fixture
def key_file(tmp_path):
    return tmp_path.parent / f"{tmp_path.name}-jobs.key"  # outside the server root, as in a real server


@pytest.fixture
def sleeper():
    """A foreign process in a session of its own (as a job process would be): what an
    attacker wants a cancel to kill. Killed at the end by the test itself."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    assert _wait_for(lambda: process_start_time(proc.pid) is not None)
    yield proc
    proc.kill()
    proc.wait(10)


def plant(runs: Path, job_id: str, spec, status, **files) -> JobDir:
    """Write a job folder as an attacker would: raw bytes, no help from JobDir."""
    d = runs / job_id
    d.mkdir(parents=True, exist_ok=True)
    for name, content in {"job.json": spec, "status.json": status, **files}.items():
        if content is None:
            continue
        data = content if isinstance(content, bytes) else json.dumps(content).encode()
        (d / name.replace("_", ".")).write_bytes(data)
    return JobDir(d)


QUEUED = {"state": "queued", "created_at": "2000-01-01T00:00:00.000Z"}


def test_planted_queued_jobs_are_never_started(root, key_file, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    generate_sample(outside / "secret.zip", images=3, width=32, height=32)
    runs = root / "runs"
    planted = {
        "outside-abs": {"kind": "validate", "dataset": str(outside / "secret.zip")},
        "outside-dots": {"kind": "validate", "dataset": str(root / ".." / outside.name / "secret.zip")},
        "inside-valid": {"kind": "validate", "dataset": str(root / "sample.zip")},  # valid, but not ours
        "unknown-kind": {"kind": "bake", "dataset": "sample.zip"},
        "kind-not-text": {"kind": ["validate"], "dataset": "sample.zip"},
        "bad-template": {"kind": "train", "template": "no-such", "dataset": str(root / "sample.zip")},
        "sync-out": {"kind": "sync", "direction": "up", "workspace": str(outside), "storage": "file:///tmp/x"},
    }
    for job_id, spec in planted.items():
        plant(runs, job_id, spec, QUEUED)
    m = JobManager(runs, root_dir=root, key_file=key_file)
    m.reconcile()
    m.poll()
    jobs = {j["id"]: j for j in m.list_jobs()}
    assert set(jobs) == set(planted)
    for job_id, job in jobs.items():
        assert job["state"] == "failed", job
        assert job["message"], job
        assert not (runs / job_id / "launch.json").exists() and not (runs / job_id / "job.log").exists(), job_id
        assert JobDir(runs / job_id).read_status()["state"] == "failed"  # the folder says so too
    assert "unknown job kind 'bake'" in jobs["unknown-kind"]["message"]
    assert "not queued through cvat-train" in jobs["inside-valid"]["message"]
    # the CLI shows them failed, never "queued"
    r = CliRunner().invoke(main, ["jobs", "--runs-root", str(runs), "list", "--json"])
    assert r.exit_code == 0 and {j["state"] for j in json.loads(r.output)} == {"failed"}, r.output


def test_cli_listing_settles_planted_jobs_without_a_server(root, key_file, monkeypatch):
    """A planted queued job of an unknown kind is failed by a plain listing, not shown
    queued until some server polls."""
    runs = root / "runs"
    plant(runs, "20000101-000000-bake-000000", {"kind": "bake"}, QUEUED)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(key_file.parent / "runtime"))
    r = CliRunner().invoke(main, ["jobs", "--runs-root", str(runs), "list", "--json"])
    (job,) = json.loads(r.output)
    assert job["state"] == "failed" and "unknown job kind" in job["message"]


def test_a_spec_edited_after_queueing_is_not_started(root, key_file, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    generate_sample(outside / "secret.zip", images=3, width=32, height=32)
    m = JobManager(root / "runs", root_dir=root, key_file=key_file, limits=Limits(io=1), cancel_grace=0.3)
    blocker = m.create(_blocking_spec(root))
    edits = {
        "outside": {"kind": "validate", "dataset": str(outside / "secret.zip")},
        "inside": {"kind": "validate", "dataset": str(root / "sample.zip"), "extra": 1},  # valid, but changed
    }
    queued = {}
    for name, edited in edits.items():
        job = m.create(check_spec({"kind": "validate", "dataset": "sample.zip"}, root))
        assert job["state"] == "queued"
        (root / "runs" / job["id"] / "job.json").write_text(json.dumps(edited, indent=1))
        queued[name] = job["id"]
    # a legitimately queued job whose input became a symlink out of the root
    (root / "sample2.zip").write_bytes((root / "sample.zip").read_bytes())
    later = m.create(check_spec({"kind": "validate", "dataset": "sample2.zip"}, root))
    (root / "sample2.zip").unlink()
    (root / "sample2.zip").symlink_to(outside / "secret.zip")
    assert m.cancel(blocker["id"], wait=True)["state"] == "cancelled"
    for job_id in [*queued.values(), later["id"]]:
        job = m.wait(job_id, timeout=60)
        assert job["state"] == "failed" and not (root / "runs" / job_id / "launch.json").exists(), job
    assert "changed after it was queued" in m.get(queued["inside"])["message"]
    assert "outside the server root" in m.get(later["id"])["message"]


def test_a_good_job_still_runs(root, key_file):
    m = JobManager(root / "runs", root_dir=root, key_file=key_file)
    job = m.wait(m.create(check_spec({"kind": "validate", "dataset": "sample.zip"}, root))["id"], timeout=60)
    assert job["state"] == "succeeded", job
    # a restarted manager (same key) does not start it again, even with its status unreadable
    launched = json.loads((root / "runs" / job["id"] / "launch.json").read_text())
    assert _wait_for(lambda: not process_alive(launched["pid"], None))  # it exits after its final state
    (root / "runs" / job["id"] / "status.json").write_text("{not json")
    m.close()
    for name in ("jobs.sqlite", "jobs.sqlite-wal", "jobs.sqlite-shm"):
        (root / "runs" / name).unlink(missing_ok=True)
    m2 = JobManager(root / "runs", root_dir=root, key_file=key_file)
    m2.reconcile()
    m2.poll()
    again = m2.get(job["id"])
    assert again["state"] == "failed" and "status.json is not valid JSON" in again["message"]
    assert (root / "runs" / job["id"] / "job.log").read_text().count("few-annotations") == 1  # it ran once


@pytest.mark.parametrize("spoil", ["not-json", "directory", "symlink-out", "fifo", "huge", "array"])
def test_a_queued_job_with_an_unreadable_status_is_failed_not_run(root, key_file, tmp_path_factory, spoil):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "status.json").write_text(json.dumps({"state": "queued", "message": "secret text"}))
    m = JobManager(root / "runs", root_dir=root, key_file=key_file, limits=Limits(io=1), cancel_grace=0.3)
    blocker = m.create(_blocking_spec(root))
    job = m.create(check_spec({"kind": "validate", "dataset": "sample.zip"}, root))
    status = root / "runs" / job["id"] / "status.json"
    status.unlink()
    {
        "not-json": lambda: status.write_text('{"state": "queued"'),
        "directory": lambda: status.mkdir(),
        "symlink-out": lambda: status.symlink_to(outside / "status.json"),
        "fifo": lambda: os.mkfifo(status),
        "huge": lambda: status.write_text(json.dumps({"state": "queued", "message": "x" * (2 << 20)})),
        "array": lambda: status.write_text("[1, 2]"),
    }[spoil]()
    m.cancel(blocker["id"], wait=True)
    done = m.wait(job["id"], timeout=30)
    assert done["state"] == "failed" and "status.json" in done["message"] and "not started" in done["message"], done
    assert "secret text" not in json.dumps(m.list_jobs())
    assert not (root / "runs" / job["id"] / "launch.json").exists()
    assert json.loads((outside / "status.json").read_text())["state"] == "queued"  # never written through


BAD_FIELDS = {
    "state": [5, "exploded", None, ["queued"]],
    "pid": ["1234", 2**70, -5, 0, 1, 1.5, True],
    "pid_start_time": ["yesterday", [], float("nan")],
    "created_at": [12345, {"t": 1}, "not a time", "9" * 5000],
    "started_at": [12345, True],
    "ended_at": [[], "2020-13"],
    "exit_code": ["0", 1e9, 2**40],
    "message": [123, {"x": 1}, ["a"]],
    "progress": ["50%", [1, 2], {"done": "half", "total": "all", "unit": 5}, {"done": float("inf")}],
    "outputs": ["all", [1], 3],
}


def test_every_status_field_of_the_wrong_type_is_dropped(root, key_file):
    runs = root / "runs"
    m = JobManager(runs, root_dir=root, key_file=key_file)
    good = m.wait(m.create(check_spec({"kind": "validate", "dataset": "sample.zip"}, root))["id"], timeout=60)
    for field, values in BAD_FIELDS.items():
        for i, value in enumerate(values):
            text = json.dumps({"state": "succeeded", "message": "fine", field: value}, allow_nan=True)
            plant(runs, f"bad-{field.replace('_', '-')}-{i}", {"kind": "validate"}, text.encode())
    m2 = JobManager(runs, root_dir=root, key_file=key_file)
    report = m2.reconcile()
    m2.poll()
    jobs = {j["id"]: j for j in m2.list_jobs()}
    assert jobs[good["id"]] == good
    assert report["bad"] == sum(len(v) for v in BAD_FIELDS.values())  # each one reported
    for job in jobs.values():
        json.dumps(job, allow_nan=False)  # every value is plain JSON
        assert isinstance(job["message"], str) and len(job["message"]) <= 4000
        assert isinstance(job["progress"]["done"], (int, float)) and job["state"] in (
            "queued",
            "running",
            "succeeded",
            "failed",
            "cancelled",
        )
        assert job["created_at"] is None or len(job["created_at"]) <= 40
    # a third start (the index now holds those rows) loads them all again
    assert len(JobManager(runs, root_dir=root, key_file=key_file).list_jobs(refresh=False)) == len(jobs)


def test_bad_rows_of_the_index_are_skipped_and_rebuilt(root, key_file):
    runs = root / "runs"
    m = JobManager(runs, root_dir=root, key_file=key_file)
    good = m.wait(m.create(check_spec({"kind": "validate", "dataset": "sample.zip"}, root))["id"], timeout=60)
    other = m.wait(m.create(check_spec({"kind": "validate", "dataset": "sample.zip"}, root))["id"], timeout=60)
    m.close()
    db = sqlite3.connect(runs / "jobs.sqlite")
    db.execute("UPDATE jobs SET pid = 'x', progress = 'not json' WHERE id = ?", (other["id"],))
    for i, (col, value) in enumerate(
        [
            ("pid", 2**62),
            ("state", "exploded"),
            ("message", 5),
            ("progress", "[1]"),
            ("id", "../../etc"),
            ("created_at", 3.5),
            ("token", "planted"),
        ]
    ):
        row = {"id": f"planted-{i}", "kind": "validate", "state": "queued", col: value}
        db.execute(f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    # a planted folder with the good job's exact job.json and a row carrying its signature
    token = db.execute("SELECT token FROM jobs WHERE id = ?", (good["id"],)).fetchone()[0]
    plant(runs, "copied", (runs / good["id"] / "job.json").read_bytes(), QUEUED)
    db.execute("INSERT INTO jobs (id, kind, state, token) VALUES ('copied', 'validate', 'queued', ?)", (token,))
    db.execute("CREATE TRIGGER spoil AFTER UPDATE ON jobs BEGIN SELECT RAISE(ABORT, 'planted'); END")
    db.commit()
    db.close()
    m2 = JobManager(runs, root_dir=root, key_file=key_file)
    m2.reconcile()
    m2.poll()
    ids = [j["id"] for j in m2.list_jobs()]
    assert ids[:1] == [good["id"]] and other["id"] in ids  # the spoiled row was indexed again from its folder
    assert m2.get(other["id"])["state"] == "succeeded"
    assert not any(i.startswith("planted") for i in ids)
    copied = m2.get("copied")
    assert copied["state"] == "failed" and "not queued through" in copied["message"]
    assert not (runs / "copied" / "launch.json").exists()


@pytest.mark.parametrize("content", [b"this is not a database", None])
def test_an_unusable_index_file_is_moved_aside(root, key_file, content):
    runs = root / "runs"
    m = JobManager(runs, root_dir=root, key_file=key_file)
    good = m.wait(m.create(check_spec({"kind": "validate", "dataset": "sample.zip"}, root))["id"], timeout=60)
    m.close()
    for name in ("jobs.sqlite", "jobs.sqlite-wal", "jobs.sqlite-shm"):
        (runs / name).unlink(missing_ok=True)
    if content is None:
        (runs / "jobs.sqlite").mkdir()  # a folder where the file should be
    else:
        (runs / "jobs.sqlite").write_bytes(content * 300)
    m2 = JobManager(runs, root_dir=root, key_file=key_file)
    m2.reconcile()
    assert [j["id"] for j in m2.list_jobs()] == [good["id"]]
    assert any(p.name.startswith("jobs.sqlite.corrupt-") for p in runs.iterdir())


@pytest.mark.parametrize(
    "record",
    [
        {"state": "running", "pid": "FOREIGN"},  # no start time
        {"state": "running", "pid": "FOREIGN", "pid_start_time": "START"},  # the victim's real start time
        {"state": "running", "pid": 1, "pid_start_time": 1},
        {"state": "running", "pid": "OWN"},
        {"state": "running", "pid": 2**40},
        {"state": "running", "pid": "12"},
    ],
)
@pytest.mark.parametrize("where", ["status.json", "launch.json", "both"])
def test_cancel_never_signals_a_foreign_process(root, key_file, sleeper, record, where):
    def value(v):
        return (
            {"FOREIGN": sleeper.pid, "START": process_start_time(sleeper.pid), "OWN": os.getpid()}.get(v, v)
            if isinstance(v, str)
            else v
        )

    record = {k: value(v) for k, v in record.items()}
    runs = root / "runs"
    launch = {k: v for k, v in record.items() if k != "state"}
    launch["command"] = [sys.executable, "-u", "-m", "jupyter_cvat_train.datasets", str(runs / "victim")]
    plant(
        runs,
        "victim",
        {"kind": "validate"},
        record if where != "launch.json" else {"state": "running"},
        launch_json=launch if where != "status.json" else None,
    )
    m = JobManager(runs, root_dir=root, key_file=key_file, cancel_grace=0.0)
    m.reconcile()
    m.cancel("victim")
    m.poll()
    m.poll()
    assert m.get("victim")["state"] in ("cancelled", "failed")
    assert sleeper.poll() is None and process_alive(sleeper.pid, None)  # never signalled
    assert os.getpgrp() != 0  # and we are still here


def test_signal_group_refuses_unsafe_targets(sleeper):
    start = process_start_time(sleeper.pid)
    for pid, st in [
        (1, process_start_time(1)),
        (os.getpid(), process_start_time(os.getpid())),
        (os.getpgrp(), process_start_time(os.getpgrp())),
        (sleeper.pid, None),
        (sleeper.pid, start + 1),
        (2**40, 1.0),
        ("12", 1.0),
        (True, 1.0),
        (-sleeper.pid, start),
    ]:
        assert signal_group(pid, st, 0) is False, pid
    assert signal_group(sleeper.pid, start, 0) is True  # signal 0: the one valid target is accepted


def test_a_running_jobs_launch_record_redirected_to_another_process(root, key_file, sleeper):
    """A Contents API user rewrites launch.json of a real running job to name another
    process: the cancel stops the real job and leaves the other alone."""
    m = JobManager(root / "runs", root_dir=root, key_file=key_file, cancel_grace=0.3)
    job = m.create(_blocking_spec(root))
    jd = m.job_dir(job["id"])
    real = json.loads((jd.path / "launch.json").read_text())
    assert _wait_for(lambda: jd.read_status().get("state") == "running")
    m.close()  # a new manager: the job is not its child, only the records tell where it is
    forged = {"pid": sleeper.pid, "pid_start_time": process_start_time(sleeper.pid)}
    write_json_atomic(jd.path / "launch.json", {**real, **forged})
    m2 = JobManager(root / "runs", root_dir=root, key_file=key_file, cancel_grace=0.3)
    m2.reconcile()
    assert m2.cancel(job["id"], wait=True)["state"] == "cancelled"
    assert sleeper.poll() is None
    assert _wait_for(lambda: not process_alive(real["pid"], real["pid_start_time"]))


@pytest.mark.parametrize("name", ["job.log", "events.jsonl", "output"])
def test_planted_symlinks_in_a_queued_job_are_not_written_through(root, key_file, tmp_path_factory, name):
    outside = tmp_path_factory.mktemp("outside")
    target = outside / ("dir" if name == "output" else "victim.txt")
    target.mkdir() if name == "output" else target.write_text("precious\n")
    m = JobManager(root / "runs", root_dir=root, key_file=key_file, limits=Limits(io=1), cancel_grace=0.3)
    blocker = m.create(_blocking_spec(root))
    job = m.create(check_spec({"kind": "validate", "dataset": "sample.zip"}, root))
    (root / "runs" / job["id"] / name).symlink_to(target)
    m.cancel(blocker["id"], wait=True)
    done = m.wait(job["id"], timeout=60)
    assert done["state"] == "failed", done
    if name == "output":
        assert list(target.iterdir()) == []
    else:
        assert target.read_text() == "precious\n"
