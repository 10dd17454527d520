"""GPUs for jobs that want more than one (a training with ``gpus: N``): the scheduler
hands such a job N free GPUs at once (``CUDA_VISIBLE_DEVICES=a,b``), makes it wait
until N are free without letting a younger job of its resource overtake it, and gives
all of the machine's to one that wants more than there are (its plan then says how
many there are). The machine's GPUs are named by ``CUDA_VISIBLE_DEVICES`` here (no GPU
is touched: the scheduler only hands out ids). Real detached job processes of the
``test-gpus`` kind defined here report the ``CUDA_VISIBLE_DEVICES`` they got.

On a Ray cluster the job asks Ray for the *cluster's* GPUs (the Jupyter server's machine
has none here): a real head that declares one GPU (``ray start --num-gpus 1``; Ray lends
it by id, nothing touches a GPU) runs a job that wants 1 with ``CUDA_VISIBLE_DEVICES=0``,
refuses one that wants 2 at once with the fix, and gives a ``device: cpu`` job none.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from jupyter_cvat_train.jobs.backends.ray import RayBackend, RayJobsClient
from jupyter_cvat_train.jobs.backends.ray_head import start_head, stop_head
from jupyter_cvat_train.jobs.manager import JobManager
from jupyter_cvat_train.jobs.queue import Limits, jobs_to_start
from jupyter_cvat_train.jobs.registry import JobKind, register_kind
from jupyter_cvat_train.jobs.specs import check_spec
from jupyter_cvat_train.training.plan import requested_gpus

KIND = register_kind(JobKind("test-gpus", "test_jobs_gpus:run", "accelerator", gpus="test_jobs_gpus:gpus"))
HOLD = register_kind(JobKind("test-hold", "test_jobs_gpus:hold", "accelerator"))
_here = str(Path(__file__).resolve().parent)
if _here not in os.environ.get("PYTHONPATH", "").split(os.pathsep):  # the job process imports this module
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_here, os.environ.get("PYTHONPATH")) if p)


def run(ctx) -> dict:
    """The job: report the GPUs it was given."""
    return {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def hold(ctx) -> dict:
    """A job that runs until the file ``spec["release"]`` exists (60 s at most)."""
    import time

    end = time.monotonic() + 60
    while not Path(ctx.spec["release"]).exists() and time.monotonic() < end:
        time.sleep(0.1)
    return {"released": Path(ctx.spec["release"]).exists()}


def gpus(spec: dict) -> int:
    """The kind's GPU count: the spec's ``gpus``."""
    return int(spec["gpus"])


def _rows(*wants: int) -> list[dict]:
    return [{"seq": i, "kind": "train", "gpu": None, "wants": n} for i, n in enumerate(wants)]


def _start(queued, running=(), limits=None):
    started = jobs_to_start(
        queued, list(running), limits or Limits(), lambda k: "accelerator", lambda row: row["wants"]
    )
    return [(r["seq"], r["gpu"]) for r in started]


def test_a_job_that_wants_n_gpus_gets_n_and_the_queue_keeps_its_order(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,7")
    assert _start(_rows(2, 2, 1)) == [(0, "2,5")]  # the second waits for 2; the third does not overtake it
    assert _start(_rows(2, 1)[1:], [{"seq": 0, "kind": "train", "gpu": "2,5"}]) == [(1, "7")]
    assert _start(_rows(2), [{"seq": 9, "kind": "train", "gpu": "5"}]) == [(0, "2,7")]
    assert _start(_rows(2), [{"seq": 9, "kind": "train", "gpu": "5,7"}]) == []
    assert _start(_rows(4)) == [(0, "2,5,7")]  # more than there are: all, and its plan says so
    # a 3-GPU job runs alone: under the default limit (one job per GPU) nothing starts
    # unpinned beside it (it would land on GPU 2, busy)
    assert _start(_rows(1), [{"seq": 9, "kind": "train", "gpu": "2,5,7"}]) == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert _start(_rows(2, 1)) == [(0, None)]  # no GPU: one accelerator job at a time, as before


def test_a_limit_above_the_gpu_count_shares_the_least_busy_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    four = Limits(accelerator=4)  # max_accelerator_jobs 4 on 2 GPUs: two jobs a GPU
    assert _start(_rows(1, 1, 1), limits=four) == [(0, "0"), (1, "1"), (2, "0")]
    busy = [{"seq": 8, "kind": "train", "gpu": "0,1"}, {"seq": 9, "kind": "train", "gpu": "0"}]
    assert _start(_rows(1, 2), busy, four) == [(0, "1"), (1, "0,1")]
    assert _start(_rows(1), busy, Limits(accelerator=2)) == []  # the cap holds


def test_a_training_wants_its_gpus_or_num_gpus():
    t = "ssdlite320-mobilenet-v3"
    assert requested_gpus({"template": t}) == 1
    assert requested_gpus({"template": t, "gpus": 3}) == 3
    assert requested_gpus({"template": t, "hyperparameters": "num_gpus: 2"}) == 2
    assert requested_gpus({"template": t, "gpus": 3, "device": "cpu"}) == 1  # CPU ranks hold no GPU
    assert requested_gpus({"template": "no-such-template", "gpus": 3}) == 1  # the plan refuses it, with the fix


def test_job_processes_get_their_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    m = JobManager(tmp_path / "runs")
    try:
        a = m.create(check_spec({"kind": "test-gpus", "gpus": 2}, tmp_path))
        b = m.create(check_spec({"kind": "test-gpus", "gpus": 1}, tmp_path))
        for job, gpus in ((a, "0,1"), (b, "2")):
            done = m.wait(job["id"], timeout=60)
            assert done["state"] == "succeeded", m.job_dir(job["id"]).log_path.read_text()[-2000:]
            assert done["outputs"]["cuda_visible_devices"] == gpus
        c = m.wait(m.create(check_spec({"kind": "test-gpus", "gpus": 3}, tmp_path))["id"], timeout=60)
        assert c["outputs"]["cuda_visible_devices"] == "0,1,2"
    finally:
        m.close()


@pytest.fixture(scope="module")
def gpu_head():
    """A single-node Ray head with 1 CPU and 1 declared GPU, stopped at the end."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'jupyter_cvat_train[ray]')")
    folder = Path(tempfile.mkdtemp(prefix="rayg", dir="/tmp"))  # Ray's socket paths must stay short
    try:
        env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
        yield start_head(folder, num_cpus=1, num_gpus=1, env=env)
    finally:
        stop_head(folder)
        shutil.rmtree(folder, ignore_errors=True)


def test_on_a_ray_cluster_a_job_asks_for_the_clusters_gpus(tmp_path, gpu_head, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the Jupyter server's machine: no GPU
    m = JobManager(tmp_path / "runs", backends=(RayBackend(gpu_head.address, python=sys.executable),))
    client = RayJobsClient(gpu_head.address)

    def run(**spec) -> dict:
        job = m.create(check_spec({"kind": "test-gpus", "backend": "ray", **spec}, tmp_path, backends=("local", "ray")))
        return m.wait(job["id"], timeout=180)

    try:
        one = run(gpus=1)
        assert one["state"] == "succeeded", m.job_dir(one["id"]).log_path.read_text()[-2000:]
        assert one["outputs"]["cuda_visible_devices"] == "0"  # Ray lent it GPU 0 (its head had no such variable)

        two = run(gpus=2)
        assert two["state"] == "failed", two
        assert "largest node of the Ray cluster" in two["message"] and "at most 1" in two["message"], two
        with pytest.raises(OSError):  # never submitted: Ray does not know it
            client.job(two["id"])

        cpu = run(gpus=1, device="cpu")
        assert cpu["state"] == "succeeded", m.job_dir(cpu["id"]).log_path.read_text()[-2000:]
        assert cpu["outputs"]["cuda_visible_devices"] in (None, ""), cpu["outputs"]
    finally:
        m.close()


def test_jobs_for_a_cluster_do_not_queue_for_this_machines_slots(tmp_path, gpu_head, monkeypatch):
    """This machine runs one accelerator job at a time (no GPU): a local job holds that
    slot, and Ray jobs still start at once (Ray queues them for the cluster's CPUs:
    its head has one, so one runs and the other waits PENDING in Ray), take no local
    slot, and get no local GPU id."""
    import time

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    m = JobManager(tmp_path / "runs", backends=(RayBackend(gpu_head.address, python=sys.executable),))
    client = RayJobsClient(gpu_head.address)
    release = tmp_path / "release"

    def create(**spec) -> dict:
        spec = {"kind": "test-hold", "release": str(release), **spec}
        return m.create(check_spec(spec, tmp_path, backends=("local", "ray")))

    try:
        local = create()
        deadline = time.monotonic() + 30
        while m.get(local["id"])["state"] != "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        on_ray = [create(backend="ray", device="cpu") for _ in range(2)]
        queued_local = create()
        for job in on_ray:
            assert m.get(job["id"])["state"] != "queued", m.get(job["id"])
            assert client.job(job["id"])["status"] in ("PENDING", "RUNNING")  # Ray has it
        assert m.get(queued_local["id"])["state"] == "queued"  # the local slot is still taken
        # once one holds the head's CPU, the other waits in Ray, and says so
        deadline = time.monotonic() + 60
        while "RUNNING" not in {client.job(j["id"])["status"] for j in on_ray} and time.monotonic() < deadline:
            time.sleep(0.2)
        (pending,) = [j for j in on_ray if client.job(j["id"])["status"] == "PENDING"]
        assert "waiting for the Ray cluster" in m.get(pending["id"])["message"]
        release.touch()
        for job in [local, *on_ray, queued_local]:
            done = m.wait(job["id"], timeout=180)
            assert done["state"] == "succeeded" and done["outputs"]["released"], done
    finally:
        release.touch()
        m.close()
