"""The job entry point says ``running`` before it imports the kind's module (a heavy
module is not counted in submit-to-running), on both entry points: ``jobs.run`` (local
jobs) and ``backends.ray_entry`` (Ray jobs: output to job.log, then ``jobs.run`` in the
same process). Real job processes; the kind's module records what status.json said
while it was being imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jupyter_cvat_train.jobs.runtime import JobDir

PROBE = """
import json, os, sys
from pathlib import Path
# at import time: what status.json says now, and whether this is the entry's own process
SEEN = json.loads(Path("status.json").read_text()).get("state") if Path("status.json").exists() else None

def run(ctx):
    print("probe ran", flush=True)
    return {"seen_at_import": SEEN, "pid": os.getpid()}
"""


@pytest.mark.parametrize("entry", ["jupyter_cvat_train.jobs.run", "jupyter_cvat_train.jobs.backends.ray_entry"])
def test_running_is_written_before_the_kind_module_is_imported(tmp_path, entry):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "order_probe.py").write_text(PROBE)
    jd = JobDir(tmp_path / "runs" / "job-1").create({"kind": "validate"})
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "mods"), "CVAT_TRAIN_JOB_RUN": "order_probe:run"}
    run = subprocess.run(
        [sys.executable, "-u", "-m", entry, str(jd.path)],
        cwd=jd.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    status = jd.read_status()
    assert run.returncode == 0 and status["state"] == "succeeded", (run.stderr, status)
    assert status["outputs"]["seen_at_import"] == "running"
    if entry.endswith("ray_entry"):  # one process: the entry's pid is the job's, its output in job.log
        assert status["pid"] == status["outputs"]["pid"]
        assert "probe ran" in jd.log_path.read_text() and "probe ran" not in run.stdout
    assert json.loads((jd.path / "job.json").read_text())["kind"] == "validate"
