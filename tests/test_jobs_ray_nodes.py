"""A REAL 2-node Ray cluster: a head and a worker node in two network namespaces made by
the test (``tests/ray_netns.py``: root only; only the namespaces' and their bridge's
addresses are used), one cluster for the whole module, Ray's token auth on. The test
process never imports ``ray``: it speaks the dashboard's REST API, as the Jupyter server
does. Skipped with the reason where namespaces cannot be made or ray is not installed.

Covered: the cluster comes up with both nodes alive, and a Ray job submitted through
:class:`RayJobsClient` runs one task pinned to each node (``NodeAffinitySchedulingStrategy``)
and succeeds, its logs showing both nodes' addresses.
"""

from __future__ import annotations

import secrets
import shlex
import sys
import time

import pytest
from ray_netns import two_node_cluster

from jupyter_cvat_train.jobs.backends.ray import RayJobsClient

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
