"""The job folder runtime (jobs/jobdir.py) with real functions and a real subprocess."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from jupyter_cvat_train.jobs.runtime import JobDir, JobError, process_start_time, run_job


def _job(tmp_path, spec=None):
    return JobDir(tmp_path / "job").create(spec or {"kind": "test"})


def test_success_records_outputs_progress_and_events(tmp_path):
    jd = _job(tmp_path)
    seen = []

    def fn(ctx):
        for i in range(1, 4):
            ctx.progress(i, 3, "steps")
        ctx.warn("something odd", item="a.jpg")
        return {"answer": 42, "message": "all good"}

    status = run_job(jd.path, fn, listeners=[seen.append])
    assert status["state"] == "succeeded" and status["exit_code"] == 0
    assert status["message"] == "all good" and status["outputs"] == {"answer": 42}
    assert status["progress"] == {"done": 3, "total": 3, "unit": "steps"}
    assert json.loads(jd.status_path.read_text()) == status
    types = [e["type"] for e in jd.read_events()]
    assert types == ["state", "progress", "progress", "progress", "warning", "state"]
    assert [e["type"] for e in seen] == types


def test_job_error_fails_with_its_message_and_no_traceback(tmp_path, capsys):
    jd = _job(tmp_path)

    def fn(ctx):
        raise JobError("batch_size 8 is larger than the training split (5 images): lower it")

    status = run_job(jd.path, fn)
    assert status["state"] == "failed" and status["exit_code"] == 1
    assert "training split (5 images)" in status["message"]
    assert "Traceback" not in capsys.readouterr().err


def test_unexpected_error_is_recorded(tmp_path):
    jd = _job(tmp_path)
    status = run_job(jd.path, lambda ctx: 1 / 0)
    assert status["state"] == "failed" and "ZeroDivisionError" in status["message"]


def test_missing_or_broken_spec_fails_cleanly(tmp_path):
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "job.json").write_text("{not json")
    status = run_job(tmp_path / "j", lambda ctx: None)
    assert status["state"] == "failed" and "not valid JSON" in status["message"]


def test_create_refuses_an_existing_job(tmp_path):
    jd = _job(tmp_path)
    with pytest.raises(FileExistsError):
        JobDir(jd.path).create({"kind": "test"})


def test_process_start_time_identifies_processes():
    assert process_start_time(os.getpid()) is not None
    assert process_start_time(2**22 + 12345) is None


def test_sigterm_in_a_real_process_ends_cancelled(tmp_path):
    """A job process that checks ctx.cancelled stops at a safe point, state cancelled."""
    jd = _job(tmp_path)
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent("""
        import sys, time
        from jupyter_cvat_train.jobs.runtime import job_main
        def fn(ctx):
            i = 0
            while True:
                i += 1
                ctx.progress(i, None, "ticks")
                (ctx.output_dir / "saved.txt").write_text(str(i))
                ctx.check_cancelled()
                time.sleep(0.05)
        job_main(fn)
    """)
    )
    with open(jd.log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(script), str(jd.path)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while jd.read_status().get("state") != "running" and time.time() < deadline:
        time.sleep(0.05)
    assert jd.read_status()["pid"] == proc.pid
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    status = jd.read_status()
    assert status["state"] == "cancelled", status
    assert (jd.output_dir / "saved.txt").exists()
    assert "received SIGTERM" in jd.log_path.read_text()
