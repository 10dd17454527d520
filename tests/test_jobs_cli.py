"""``cvat-train jobs ...`` over real job folders and real job processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from click.testing import CliRunner
from test_jobs_manager import _blocking_spec

from jupyter_cvat_train.cli import main
from jupyter_cvat_train.datasets import generate_sample
from jupyter_cvat_train.jobs.manager import JobManager
from jupyter_cvat_train.jobs.specs import check_spec


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train", *args], capture_output=True, text=True, timeout=120
    )


def test_list_show_logs_of_a_finished_job(tmp_path):
    generate_sample(tmp_path / "sample.zip", images=3, width=32, height=32)
    m = JobManager(tmp_path / "runs")
    job = m.wait(m.create(check_spec({"kind": "validate", "dataset": "sample.zip"}, tmp_path))["id"], timeout=60)
    runner = CliRunner()
    base = ["jobs", "--runs-root", str(tmp_path / "runs")]

    r = runner.invoke(main, [*base, "list"])
    assert r.exit_code == 0 and job["id"] in r.output and "succeeded" in r.output and "1/1 exports" in r.output
    r = runner.invoke(main, [*base, "list", "--json"])
    assert [j["id"] for j in json.loads(r.output)] == [job["id"]]
    r = runner.invoke(main, [*base, "show", job["id"][-6:]])  # any unique part of the id
    assert r.exit_code == 0 and json.loads(r.output)["outputs"]["images"] == 3
    r = runner.invoke(main, [*base, "logs", job["id"]])
    assert r.exit_code == 0 and "few-annotations" in r.output

    r = runner.invoke(main, [*base, "show", "nope"])
    assert r.exit_code == 1 and "no job 'nope'" in r.output and "Traceback" not in r.output
    r = runner.invoke(main, ["jobs", "--runs-root", str(tmp_path / "missing"), "list"])
    assert r.exit_code == 1 and "no runs root" in r.output


def test_cancel_and_follow_a_running_job(tmp_path):
    m = JobManager(tmp_path / "runs")
    job = m.create(_blocking_spec(tmp_path))  # runs until killed
    runs = str(tmp_path / "runs")
    follower = subprocess.Popen(
        [sys.executable, "-m", "jupyter_cvat_train", "jobs", "--runs-root", runs, "logs", "-f", job["id"]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    assert follower.poll() is None  # following a running job
    r = _cli("jobs", "--runs-root", runs, "cancel", "--grace", "0.5", job["id"])
    assert r.returncode == 0 and f"{job['id']}: cancelled" in r.stdout, r.stderr
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 1 and "cancelled" in err
    assert m.get(job["id"])["state"] == "cancelled"


def test_submit_checks_the_spec_and_never_shows_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    generate_sample(tmp_path / "sample.zip", images=3, width=32, height=32)
    runs = tmp_path / "runs"
    base = ["jobs", "--runs-root", str(runs), "submit"]
    runner = CliRunner()
    for text, expected in [
        ("{not json", "not a JSON job spec"),
        ("[1, 2]", "expected a JSON object"),
        ('{"kind": "bake"}', "unknown job kind 'bake'"),
        ('{"kind": "validate", "dataset": "../x.zip"}', "'..' is not allowed"),
        ('{"kind": "validate", "dataset": "missing.zip"}', "does not exist"),
        ("x" * (2 << 20), "larger than 1 MiB"),
    ]:
        r = runner.invoke(main, [*base, "-"], input=text)
        assert r.exit_code == 1 and expected in r.output and "Traceback" not in r.output, (text[:40], r.output)
        assert len(r.output) < 1000
    r = runner.invoke(main, [*base, "--json", "-"], input='{"kind": "validate", "dataset": "sample.zip"}')
    assert r.exit_code == 0, r.output
    job = json.loads(r.output)
    m = JobManager(runs)
    assert m.wait(job["id"], timeout=60)["state"] == "succeeded"
    assert json.loads((runs / job["id"] / "job.json").read_text())["dataset"] == str(tmp_path / "sample.zip")
    m.close()
