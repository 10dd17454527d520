"""A REAL 2-node Ray cluster: a head and a worker node in two network namespaces made by
the test (``tests/ray_netns.py``: root only; only the namespaces' and their bridge's
addresses are used), one cluster for the whole module, Ray's token auth on. The test
process never imports ``ray``: it speaks the dashboard's REST API, as the Jupyter server
does. Skipped with the reason where namespaces cannot be made or ray is not installed.

Covered: the cluster comes up with both nodes alive, and a Ray job submitted through
:class:`RayJobsClient` runs one task pinned to each node (``NodeAffinitySchedulingStrategy``)
and succeeds, its logs showing both nodes' addresses. A train job with ``gpus: 2`` on
the CPU submitted through the JobManager's ray backend runs rank 0 and rank 1 on
different nodes (each node offers 1 CPU; gloo over ``cvt0``), as the job's report of its
ranks says, and writes the output contract.

A node lost mid-training once last.pt exists, in two ways: the worker node stopped (Ray
drains it) or cut off (its link down: no connection closed, the other rank waits in a
collective): the job fails within minutes saying a node was lost (Ray Train restarts
nothing), and once the node is back a resume from that last.pt trains on from its epoch
on both nodes.
"""

from __future__ import annotations

import re
import secrets
import shlex
import sys
import time
from pathlib import Path

import pytest
from ray_netns import two_node_cluster

from jupyter_cvat_train.datasets import generate_sample
from jupyter_cvat_train.jobs.backends.ray import RayBackend, RayJobsClient
from jupyter_cvat_train.jobs.manager import JobManager
from jupyter_cvat_train.jobs.runtime import JobState
from jupyter_cvat_train.jobs.specs import check_spec

TOKEN = "tok-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def cluster():
    """The module's 2-node cluster (head in namespace A, worker in B, token auth on)."""
    with two_node_cluster(token=TOKEN) as c:
        print(
            f"2-node cluster up in {c.up_seconds:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in c.timings.items())})"
        )
        yield c


def _wait_done(client: RayJobsClient, submission_id: str, timeout: float = 600) -> dict:
    """The job's details once it ended (SUCCEEDED, FAILED or STOPPED)."""
    deadline = time.monotonic() + timeout
    info: dict = {}
    while time.monotonic() < deadline:
        info = client.job(submission_id)
        if info.get("status") in ("SUCCEEDED", "FAILED", "STOPPED"):
            return info
        time.sleep(0.5)
    raise AssertionError(f"job {submission_id} did not end within {timeout:.0f} s: {info}")


#: one task pinned to each alive node; prints the node ip each ran on
PINNED_TASKS = """
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init()
@ray.remote(num_cpus=1)
def where():
    return ray.util.get_node_ip_address()
nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
refs = [where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote() for n in nodes]
for ip in ray.get(refs):
    print("task ran on", ip, flush=True)
"""


def test_two_nodes_run_one_pinned_task_each(cluster):
    nodes = cluster.alive_nodes()
    assert sorted(n["node_ip"] for n in nodes) == sorted([cluster.head_ip, cluster.worker_ip])
    assert [n["node_ip"] for n in nodes if n.get("is_head_node")] == [cluster.head_ip]

    client = RayJobsClient(cluster.address, token=TOKEN)
    submission_id = "pinned-" + secrets.token_hex(4)
    client.submit(
        {"entrypoint": f"{shlex.quote(sys.executable)} -c {shlex.quote(PINNED_TASKS)}", "submission_id": submission_id}
    )
    info = _wait_done(client, submission_id)
    logs = client.request("GET", f"/api/jobs/{submission_id}/logs").get("logs", "")
    assert info["status"] == "SUCCEEDED", f"{info.get('message')}\n{logs[-3000:]}"
    ran_on = sorted(line.split()[-1] for line in logs.splitlines() if line.startswith("task ran on "))
    assert ran_on == sorted([cluster.head_ip, cluster.worker_ip]), logs[-3000:]


HP = "batch_size: 2\nimage_size: 64\npretrained: false\nwarmup_iters: 1\nnum_workers: 0"


@pytest.fixture
def root(tmp_path):
    """A root folder with a tiny export; its runs root is seen by both nodes (one machine)."""
    generate_sample(tmp_path / "sample.zip", images=8, width=64, height=64, seed=1)
    return tmp_path


def _manager(root: Path, cluster) -> JobManager:
    ray = RayBackend(cluster.address, token=TOKEN, python=sys.executable, stop_wait=20)
    return JobManager(root / "runs", backends=(ray,))


def _ddp_train(root: Path, epochs: int, **more) -> dict:
    spec = {
        "kind": "train",
        "template": "ssdlite320-mobilenet-v3",
        "dataset": "sample.zip",
        "checkpoint": None,
        "parameters": {"epochs": epochs, "hyperparameters": HP},
        "gpus": 2,
        "device": "cpu",
        "backend": "ray",
        **more,
    }
    return check_spec(spec, root, backends=("local", "ray"))


def _rank_nodes(log: str) -> dict[int, str]:
    """``{rank: node ip}`` from the job's report of its ranks in job.log."""
    return {int(m[1]): m[2] for m in re.finditer(r"^rank (\d+) of 2 ran on node (\S+):", log, re.M)}


def _epochs_in(checkpoint: Path) -> int:
    import torch

    return int(torch.load(checkpoint, map_location="cpu", weights_only=False)["epoch"])


@pytest.mark.slow
def test_a_two_rank_training_spans_both_nodes(cluster, root):
    m = _manager(root, cluster)
    try:
        job = m.wait(m.create(_ddp_train(root, 2))["id"], timeout=900)
        jd = m.job_dir(job["id"])
        log = jd.log_path.read_text()
        assert job["state"] == JobState.SUCCEEDED, (job, log[-4000:])
        assert _rank_nodes(log) == {0: cluster.head_ip, 1: cluster.worker_ip} or _rank_nodes(log) == {
            0: cluster.worker_ip,
            1: cluster.head_ip,
        }, log[-4000:]
        out = jd.output_dir
        for rel in ("model/model.pt", "model/classes.csv", "checkpoints/last.pt", "metrics.json"):
            assert (out / rel).is_file(), rel
    finally:
        m.close()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["stopped", "cut off"])
def test_a_node_lost_mid_training_fails_the_job_and_a_resume_goes_on(cluster, root, how):
    m = _manager(root, cluster)
    try:
        job = m.create(_ddp_train(root, 300))
        jd = m.job_dir(job["id"])
        last = jd.output_dir / "checkpoints" / "last.pt"
        deadline = time.monotonic() + 600
        while not last.is_file():
            state = m.get(job["id"])["state"]
            assert state == JobState.RUNNING or state == JobState.QUEUED, (state, jd.log_path.read_text()[-3000:])
            assert time.monotonic() < deadline, "no last.pt within 600 s"
            time.sleep(0.5)
        lost = time.monotonic()
        if how == "stopped":
            cluster.stop_worker()  # its rank's process and its raylet end (Ray drains the node first)
        else:
            cluster.cut_off_worker()
        job = m.wait(job["id"], timeout=400)
        log = jd.log_path.read_text()
        assert job["state"] == JobState.FAILED, (job, log[-4000:])
        assert re.search(r"rank.* of 2 ", job["message"]), job["message"]
        assert "lost mid-training" in job["message"] and "last.pt" in job["message"], job["message"]
        print(f"the job failed {time.monotonic() - lost:.0f} s after the worker node was {how}: {job['message']}")
        assert "not restarting the ranks" not in log, "Ray Train started the ranks again"

        if how == "cut off":  # Ray declared the node dead: it comes back as a new node
            cluster.cut_off_worker(False)
            cluster.stop_worker()
        cluster.restart_worker()
        done = _epochs_in(last)
        assert 1 <= done < 300
        resumed = m.create(_ddp_train(root, done + 1, checkpoint=str(jd.output_dir.relative_to(root)), resume=True))
        again = m.wait(resumed["id"], timeout=900)
        rd = m.job_dir(resumed["id"])
        assert again["state"] == JobState.SUCCEEDED, (again, rd.log_path.read_text()[-4000:])
        assert len([e for e in rd.read_events() if e["type"] == "metrics"]) == 1, "one epoch more, not a new run"
        assert _epochs_in(rd.output_dir / "checkpoints" / "last.pt") == done + 1
        assert sorted(_rank_nodes(rd.log_path.read_text()).values()) == sorted([cluster.head_ip, cluster.worker_ip])
    finally:
        m.close()
