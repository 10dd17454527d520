"""DistributedDataParallel training under torchrun, for real: 2 ranks on the CPU (gloo).

The job process launches torchrun; rank 0 evaluates and writes the outputs, the job
process alone writes status.json. The NCCL / CUDA path cannot run here (no GPU).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_cvat_train.jobs.runtime import JobDir, run_job
from jupyter_cvat_train.training import train_job

pytestmark = pytest.mark.slow
FAST = {
    "pretrained": False,
    "num_workers": 0,
    "image_size": 128,
    "batch_size": 2,
    "epochs": 1,
    "detections_per_img": 10,
}
FAST_SPLIT = {"val_split": 20.0, "seed": 0}


@pytest.fixture(scope="module")
def sample_zip(tmp_path_factory) -> Path:
    from jupyter_cvat_train.datasets import generate_sample

    return generate_sample(tmp_path_factory.mktemp("sample") / "shapes.zip", images=8, seed=1, width=160, height=120)


def test_two_cpu_ranks_train_and_write_the_output_contract(sample_zip, tmp_path):
    job = tmp_path / "ddp"
    # num_clones is the Onepanel spelling of num_gpus; with device cpu it means gloo processes.
    JobDir(job).create(
        {
            "kind": "train",
            "template": "ssdlite320-mobilenet-v3",
            "dataset": str(sample_zip),
            "parameters": dict(FAST, num_clones=2),
            "device": "cpu",
        }
    )
    seen = []
    status = run_job(job, train_job, listeners=[seen.append], handle_sigterm=False)
    assert status["state"] == "succeeded", status["message"]
    out = job / "output"
    for f in (
        "model/model.pt",
        "model/classes.csv",
        "model/model.json",
        "metrics.json",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ):
        assert (out / f).is_file(), f
    assert not list(out.glob(".*")), "no private files in output/"
    events = JobDir(job).read_events()
    plan = [e for e in events if e["type"] == "plan"]
    assert len(plan) == 1 and plan[0]["gpus"] == 2 and plan[0]["device"] == "cpu"
    # 6 training images / 2 ranks = 3 per rank, batch 2 (a last batch of 1 is dropped) -> 1 step
    assert plan[0]["steps_per_epoch"] == 1
    assert len([e for e in events if e["type"] == "metrics"]) == 1
    progress = [e for e in events if e["type"] == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == 1
    # the job process mirrored rank 0's progress into status.json and to its listeners
    assert status["progress"] == {"done": 1, "total": 1, "unit": "steps"}
    assert [e for e in seen if e["type"] == "progress"][-1]["done"] == 1
    assert status["outputs"]["model_dir"] == str(out / "model")


def start_job_process(job: Path) -> subprocess.Popen:
    """The job process as the launcher starts it: its own session, output to job.log."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    with open(job / "job.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "jupyter_cvat_train.training", str(job)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def group_gone(pgid: int, timeout: float) -> bool:
    """Whether every process of group ``pgid`` (job process, torchrun, ranks) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("target", ["group", "job process"])
def test_sigterm_cancels_both_ranks_and_saves_last_checkpoint(sample_zip, tmp_path, target):
    """The launcher signals the whole process group; a SIGTERM to the job process alone
    (``kill PID``) reaches the ranks through the cancel file."""
    job = tmp_path / "cancel"
    JobDir(job).create(
        {
            "kind": "train",
            "template": "ssdlite320-mobilenet-v3",
            "dataset": str(sample_zip),
            "parameters": dict(FAST, epochs=200),
            "device": "cpu",
            "gpus": 2,
        }
    )
    proc = start_job_process(job)
    try:
        deadline = time.monotonic() + 90
        while not any(e["type"] == "progress" for e in JobDir(job).read_events()):
            assert proc.poll() is None, (job / "job.log").read_text()
            assert time.monotonic() < deadline, "no progress within 90 s"
            time.sleep(0.2)
        (os.killpg if target == "group" else os.kill)(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, (job / "job.log").read_text()
        assert group_gone(proc.pid, 10), "torchrun or a rank outlived the job process"
    finally:
        if proc.poll() is None or not group_gone(proc.pid, 0.1):
            os.killpg(proc.pid, signal.SIGKILL)
    status = JobDir(job).read_status()
    assert status["state"] == "cancelled", status
    assert "last.pt saved" in status["message"]
    assert status["pid"] == proc.pid  # status.json stayed the job process's
    from jupyter_cvat_train.training.checkpoints import load_checkpoint

    ck = load_checkpoint(job / "output" / "checkpoints" / "last.pt")
    assert ck["step"] >= 1 and ck["epoch"] < 200


def test_a_failing_rank_fails_the_job_with_its_message_and_no_hang(sample_zip, tmp_path):
    """One unreadable validation image: rank 0 fails in its evaluation while rank 1 waits
    for it in a collective; rank 1 is stopped and the job fails with rank 0's error."""
    import zipfile

    from jupyter_cvat_train.datasets import load_export
    from jupyter_cvat_train.datasets.split import split_items

    data = tmp_path / "export"
    with zipfile.ZipFile(sample_zip) as z:
        z.extractall(data)
    _, val = split_items(load_export(data).items, FAST_SPLIT["val_split"], FAST_SPLIT["seed"])
    bad = Path(val[0].image_path)
    bad.write_bytes(bad.read_bytes()[:200])  # truncated: its size still reads, its pixels do not
    job = tmp_path / "fail"
    JobDir(job).create(
        {
            "kind": "train",
            "template": "ssdlite320-mobilenet-v3",
            "dataset": str(data),
            "parameters": dict(FAST, **FAST_SPLIT),
            "device": "cpu",
            "gpus": 2,
        }
    )
    t0 = time.monotonic()
    proc = start_job_process(job)
    try:
        assert proc.wait(timeout=90) == 1, (job / "job.log").read_text()
        assert group_gone(proc.pid, 10), "torchrun or a rank outlived the job process"
    finally:
        if proc.poll() is None or not group_gone(proc.pid, 0.1):
            os.killpg(proc.pid, signal.SIGKILL)
    status = JobDir(job).read_status()
    assert status["state"] == "failed", status
    assert status["message"].startswith("rank 0 of 2 failed: "), status["message"]
    assert time.monotonic() - t0 < 60
