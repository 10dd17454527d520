"""Job kinds are plug-ins: a kind is one module (a run function, optionally a spec check)
plus one registration, and every part takes it from the registry: the spec check, the
queue, the one job entry point ``python -m jupyter_cvat_train.jobs.run``, the server's
path fields; a package registers kinds through an entry point. The runtime a job process
imports stays light. This module is itself the worked example of docs/architecture.md ("adding a job kind")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import test_security_jobs_blocker  # noqa: F401 - puts tests/ on the PYTHONPATH of job processes

from jupyter_cvat_train.jobs.manager import JobManager
from jupyter_cvat_train.jobs.registry import JobKind, get_kind, list_kinds, path_fields, register_kind
from jupyter_cvat_train.jobs.runtime import FINAL_STATES, STATES, JobContext, JobDir, JobError, JobState
from jupyter_cvat_train.jobs.specs import SpecError, check_spec, resolve_inside


# -- the worked example: a kind that counts the lines of a text file ----------------------
def check_count(spec: dict, root: Path, options) -> dict:
    """The spec check: ``text`` is an existing file inside the root; ``pattern`` a short string."""
    pattern = spec.get("pattern", "")
    if not isinstance(pattern, str) or len(pattern) > 100:
        raise SpecError("pattern: expected a string of at most 100 characters", 400)
    return {**spec, "text": str(resolve_inside(root, spec.get("text"), "text")), "pattern": pattern}


def count_lines(ctx: JobContext) -> dict:
    """The job function: runs in the job process; its return value is the job's outputs."""
    lines = Path(ctx.spec["text"]).read_text().splitlines()
    ctx.progress(len(lines), len(lines), "lines")
    if not lines:
        raise JobError(f"{ctx.spec['text']} is empty: nothing to count")
    return {"lines": len(lines), "matches": sum(ctx.spec["pattern"] in line for line in lines)}


COUNT = register_kind(
    JobKind(
        "test-count",
        run="test_jobs_registry:count_lines",
        resource="io",
        check="test_jobs_registry:check_count",
        path_fields=("text",),
    )
)


def test_a_registered_kind_is_checked_queued_and_run_by_the_one_entry_point(tmp_path):
    (tmp_path / "notes.txt").write_text("alpha\nbeta\nalphabet\n")
    with pytest.raises(SpecError) as e:
        check_spec({"kind": "test-count", "text": "../outside.txt"}, tmp_path)
    assert e.value.status == 403
    with pytest.raises(SpecError) as e:
        check_spec({"kind": "test-count", "text": "notes.txt", "pattern": ["a"]}, tmp_path)
    assert "pattern" in str(e.value)
    m = JobManager(tmp_path / "runs", root_dir=tmp_path, key_file=tmp_path.parent / f"{tmp_path.name}.key")
    job = m.create(check_spec({"kind": "test-count", "text": "notes.txt", "pattern": "alpha"}, tmp_path))
    launch = json.loads(Path(job["dir"], "launch.json").read_text())
    assert launch["backend"] == "local" and launch["command"][-3:] == ["-m", "jupyter_cvat_train.jobs.run", job["dir"]]
    done = m.wait(job["id"], timeout=60)
    assert done["state"] == "succeeded", Path(job["dir"], "job.log").read_text()
    assert done["outputs"] == {"lines": 3, "matches": 2}
    assert "text" in path_fields() and COUNT in list_kinds()
    m.close()


def test_the_entry_point_runs_a_built_in_kind_by_its_registry_and_fails_unknown_ones(tmp_path):
    from jupyter_cvat_train.datasets import generate_sample

    generate_sample(tmp_path / "sample.zip", images=2, width=32, height=32)
    env = {k: v for k, v in os.environ.items() if k != "CVAT_TRAIN_JOB_RUN"}
    cases = {
        "validate": ({"kind": "validate", "dataset": str(tmp_path / "sample.zip")}, 0, "succeeded", ""),
        "unknown": ({"kind": "bake"}, 1, "failed", "unknown job kind 'bake'"),
        "no-kind": ({"dataset": "x"}, 1, "failed", "unknown job kind"),
    }
    for name, (spec, code, state, message) in cases.items():
        jd = JobDir(tmp_path / name).create(spec)
        r = subprocess.run(
            [sys.executable, "-m", "jupyter_cvat_train.jobs.run", str(jd.path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        status = jd.read_status()
        assert (r.returncode, status["state"]) == (code, state), (name, r.stderr)
        assert message in status["message"] and "Traceback" not in r.stderr, (name, status)
    r = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train.jobs.run"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "usage: python -m jupyter_cvat_train.jobs.run JOB_DIR" in r.stderr


def test_a_run_target_that_cannot_be_loaded_fails_the_job_with_its_name(tmp_path):
    jd = JobDir(tmp_path / "j").create({"kind": "validate"})
    env = {**os.environ, "CVAT_TRAIN_JOB_RUN": "no_such_module_here:run"}
    r = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train.jobs.run", str(jd.path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    status = jd.read_status()
    assert r.returncode == 1 and status["state"] == "failed" and "no_such_module_here:run" in status["message"]


def test_kinds_are_checked_when_registered():
    for bad in (dict(resource="gpu"), dict(run="no-colon"), dict(check=print)):
        with pytest.raises(ValueError):
            JobKind("bad", **{"run": "m:f", **bad})
    with pytest.raises(KeyError) as e:
        get_kind(["not", "a", "name"])
    assert "unknown job kind" in e.value.args[0]
    assert {k.name for k in list_kinds()} >= {"train", "annotate", "sync", "validate"}
    assert {"dataset", "checkpoint", "images", "model", "model_dir", "output", "workspace"} <= path_fields()


def test_a_package_registers_kinds_through_an_entry_point(tmp_path):
    """A distribution on the path with an entry point in group jupyter_cvat_train.job_kinds
    (real importlib.metadata discovery, in a fresh process); a broken one is skipped."""
    site = tmp_path / "site"
    (site / "myplugin").mkdir(parents=True)
    (site / "myplugin" / "__init__.py").write_text(
        textwrap.dedent("""
        from jupyter_cvat_train.jobs.registry import JobKind
        KIND = JobKind("plugged", run="myplugin:run", resource="io", path_fields=("data",))
        def run(ctx):
            return {"ok": True}
    """)
    )
    dist = site / "myplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[jupyter_cvat_train.job_kinds]\nplugged = myplugin:KIND\nbroken = myplugin.missing:KIND\n"
    )
    code = (
        "from jupyter_cvat_train.jobs.registry import get_kind, path_fields; k = get_kind('plugged'); "
        "print(k.resource, k.run, 'data' in path_fields())"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout.split() == ["io", "myplugin:run", "True"], r.stderr
    assert "myplugin.missing:KIND could not be loaded" in r.stderr


def test_the_runtime_imports_nothing_of_the_service():
    """A job process pays only for the runtime: no manager, store, sqlite, scheduler,
    backends, spec checks, registry, and nothing heavy."""
    service = [
        f"jupyter_cvat_train.jobs.{m}"
        for m in (
            "manager",
            "store",
            "scheduler",
            "backends",
            "specs",
            "registry",
            "queue",
            "provenance",
            "reconcile",
            "tail",
        )
    ]
    code = "import sys, jupyter_cvat_train.jobs.runtime; print('\\n'.join(sorted(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(r.stdout.split())
    assert "jupyter_cvat_train.jobs.runtime.context" in loaded
    assert not loaded & {*service, "sqlite3", "psutil", "torch", "numpy", "click", "jupyter_server"}, sorted(
        loaded & {*service, "sqlite3", "psutil", "torch", "numpy", "click", "jupyter_server"}
    )
    assert not [
        m
        for m in loaded
        if m.startswith(
            (
                "jupyter_cvat_train.datasets",
                "jupyter_cvat_train.models",
                "jupyter_cvat_train.training",
                "jupyter_cvat_train.server",
            )
        )
    ]


def test_job_states_are_one_enum_equal_to_their_strings(tmp_path):
    assert [str(s) for s in STATES] == ["queued", "running", "succeeded", "failed", "cancelled"]
    assert JobState("failed") is JobState.FAILED and JobState.FAILED == "failed" and f"{JobState.FAILED}" == "failed"
    assert {s for s in JobState if s.final} == FINAL_STATES == {"succeeded", "failed", "cancelled"}
    assert json.dumps({"state": JobState.RUNNING}) == '{"state": "running"}'
    jd = JobDir(tmp_path / "j").create({"kind": "x"})
    assert jd.read_status()["state"] is JobState.QUEUED
    jd.path.joinpath("status.json").write_text(json.dumps({"state": "exploded"}))
    status, problem = jd.load_status()
    assert "state" not in status and "expected one of queued, running, succeeded, failed, cancelled" in problem


def test_a_kind_without_a_check_of_its_own_gets_its_path_fields_checked(tmp_path):
    register_kind(
        JobKind(
            "test-paths",
            run="test_jobs_registry:count_lines",
            resource="io",
            path_fields=("a",),
            optional_path_fields=("b",),
        )
    )
    (tmp_path / "a.txt").write_text("x")
    out = check_spec({"kind": "test-paths", "a": "a.txt", "b": None}, tmp_path)
    assert out["a"] == str((tmp_path / "a.txt").resolve()) and out["b"] is None
    for spec, status in (
        ({"kind": "test-paths"}, 400),
        ({"kind": "test-paths", "a": "missing"}, 404),
        ({"kind": "test-paths", "a": "a.txt", "b": "/etc/passwd"}, 403),
    ):
        with pytest.raises(SpecError) as e:
            check_spec(spec, tmp_path)
        assert e.value.status == status, spec
