"""The Python API's jobs with real job processes: a failed job's wait() raises with its
message, a cancel, finding jobs by id, and a kernel restart while a job runs (a real
kernel: the job keeps running and list_jobs() in the new kernel finds it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from jupyter_cvat_train import api
from jupyter_cvat_train.api import config

LONG_HP = {"epochs": 100000, "pretrained": False, "image_size": 64, "batch_size": 2, "num_workers": 0}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """The current folder is ``tmp_path``; the runs root its ./cvat-train-runs."""
    for name in (config.RUNS_ROOT_ENV, config.ROOT_DIR_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    api.set_runs_root(None)
    yield tmp_path
    config.close_all()


def test_imports_stay_light():
    """The package (imported by the server and every job process) loads no API; the API no
    torch, IPython or jupyter_server until a call needs them."""
    code = (
        "import sys, jupyter_cvat_train as p\n"
        "a = 'jupyter_cvat_train.api' in sys.modules\n"
        "from jupyter_cvat_train import train, list_jobs\n"
        "print(a, [m for m in ('torch', 'IPython', 'jupyter_server', 'pandas') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False []"


def test_no_runs_root_yet(workdir):
    assert api.jobs() == []
    with pytest.raises(api.JobNotFound, match="no job 'abc'.*no runs root"):
        api.Job.get("abc")


def test_wait_on_a_failed_job_raises_its_message(workdir):
    (workdir / "images").mkdir()
    Image.new("RGB", (32, 32)).save(workdir / "images" / "a.png")
    (workdir / "model").mkdir()
    (workdir / "model" / "model.pt").write_bytes(b"not a weights file")
    with pytest.raises(api.SpecError, match="no classes.csv"):  # refused before it is queued
        api.annotate("images", "model")
    (workdir / "model" / "classes.csv").write_text("labels,id\ncircle,1\n")
    job = api.annotate("images", "model")
    with pytest.raises(api.JobFailed) as e:
        job.wait(timeout=120)
    assert e.value.job == job and job.state == "failed"
    assert f"job {job.id} failed: " in str(e.value) and "model" in job.message
    assert job.message in str(e.value)
    assert job.wait(timeout=1, raise_on_failure=False).state == "failed"
    assert any(ev.get("type") == "state" for ev in job.events())
    assert "".join(job.logs(follow=True)) == job.logs()  # follow ends with the job

    assert api.Job.get(job.id[-6:]) == job  # a unique part of the id
    api.set_runs_root(workdir / "other-runs")  # (%config CvatTrainMagics.runs_root)
    assert api.jobs() == [] and job.events()  # a Job keeps its own runs root
    api.set_runs_root(None)
    with pytest.raises(api.JobNotFound, match="no job 'zzz'"):
        api.Job.get("zzz")
    with pytest.raises(api.SpecError, match="images: .*does not exist"):
        api.annotate("no-images", "model")
    with pytest.raises(api.SpecError, match="outside the server root"):
        api.annotate("/", "model")


@pytest.mark.slow
def test_kernel_restart_while_a_job_runs(workdir):
    from jupyter_client.manager import start_new_kernel

    api.sample_dataset(workdir / "sample.zip", images=4, width=64, height=48)
    env = {k: v for k, v in os.environ.items() if k not in (config.RUNS_ROOT_ENV, config.ROOT_DIR_ENV)}
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(workdir), env=env, startup_timeout=120)
    try:
        first = run(
            kc, f"from jupyter_cvat_train import api\njob = api.train('sample.zip', hyperparameters={LONG_HP!r})"
        )
        assert first == ""
        job_id = run(kc, "print(job.id)").strip()
        kc.stop_channels()
        km.restart_kernel(now=True)
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
        seen = run(
            kc,
            "import json\nfrom jupyter_cvat_train import list_jobs, Job\n"
            "print(json.dumps([(j.id, j.state) for j in list_jobs()]))\n"
            f"print(repr(Job.get({job_id!r})))",
        )
        listed, shown = seen.strip().splitlines()
        assert json.loads(listed) == [[job_id, "running"]] or json.loads(listed) == [[job_id, "queued"]]
        assert job_id in shown
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    job = api.Job.get(job_id)  # this process, the same runs root
    assert job.state in ("queued", "running")
    job.cancel(wait=True)
    with pytest.raises(api.JobFailed, match="cancelled"):
        job.wait(timeout=60)


def run(kc, code: str, timeout: float = 120) -> str:
    """Run ``code`` in the kernel of client ``kc``; its stdout. Fails on an error."""
    out, errors = [], []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            errors.append("\n".join(msg["content"]["traceback"]))

    kc.execute_interactive(code, output_hook=hook, timeout=timeout)
    assert not errors, errors[0]
    return "".join(out)
