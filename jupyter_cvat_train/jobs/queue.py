"""Queueing: how many jobs of each resource run at once, and which queued job starts next.

Default limits: ``accelerator`` jobs (training, inference) one per GPU, or one at a
time on a machine without a GPU; ``io`` jobs (sync, validation) two at a time.
With GPUs each accelerator job gets its own GPU (``CUDA_VISIBLE_DEVICES``), or its own
N GPUs when it asks for N (a training with ``gpus: N``): it waits until N are free
(all of the machine's when it asks for more: its plan then says how many there are).
An accelerator limit above the number of GPUs (``max_accelerator_jobs``) makes jobs
share them: a job that finds too few free GPUs then gets the least busy ones.
Queued jobs start strictly in creation order within a resource: a job never overtakes
an older one waiting for the same resource.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_IO_JOBS = 2


def count_gpus() -> int:
    """GPUs this process may use, without importing torch: ``CUDA_VISIBLE_DEVICES``
    when set (empty or "-1" = none), else the NVIDIA driver's /proc/driver/nvidia/gpus."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip()]
        if not ids or ids[0].strip() == "-1":
            return 0
        return len(ids)
    try:
        return sum(1 for _ in Path("/proc/driver/nvidia/gpus").iterdir())
    except OSError:
        return 0


def gpu_ids() -> list[str]:
    """The GPU ids to hand out, in order (CUDA_VISIBLE_DEVICES' entries when set)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    n = count_gpus()
    if visible is not None and n:
        return [v.strip() for v in visible.split(",") if v.strip()]
    return [str(i) for i in range(n)]


@dataclass
class Limits:
    """Concurrent jobs allowed per resource. ``accelerator <= 0`` means automatic:
    the number of GPUs, or 1 without a GPU."""

    accelerator: int = 0
    io: int = DEFAULT_IO_JOBS

    def resolved(self) -> dict[str, int]:
        acc = self.accelerator if self.accelerator > 0 else max(1, count_gpus())
        return {"accelerator": acc, "io": max(1, self.io)}


def jobs_to_start(
    queued: list[dict], running: list[dict], limits: Limits, resource_of, gpus_of=lambda row: 1
) -> list[dict]:
    """The queued jobs to start now, oldest first.

    queued, running: store rows (``seq``, ``kind``, ``gpu``); ``resource_of(kind)`` gives
    a kind's resource; ``gpus_of(row)`` how many GPUs a queued accelerator job wants
    (default 1). Each returned row gets ``gpu``: on a machine with GPUs, an accelerator
    job's GPU ids joined by commas (``"0"``, ``"2,5"``: the ``CUDA_VISIBLE_DEVICES``
    value), else None. A job that wants more GPUs than are free waits, and nothing
    younger of its resource starts before it; only where the accelerator limit is
    above the number of GPUs (jobs share GPUs by choice) does it get the least busy ones.
    A job on a GPU machine never starts without its ids (it would use GPU 0 or all).
    """
    caps = limits.resolved()
    used = {r: 0 for r in caps}
    all_gpus = gpu_ids()
    load = {g: 0 for g in all_gpus}  # running jobs on each GPU
    for row in running:
        used[resource_of(row["kind"])] += 1
        for g in str(row["gpu"]).split(",") if row.get("gpu") is not None else ():
            load[g] = load.get(g, 0) + 1
    share = caps["accelerator"] > len(all_gpus)
    blocked: set[str] = set()
    out = []
    for row in sorted(queued, key=lambda r: r["seq"]):
        res = resource_of(row["kind"])
        if res in blocked:
            continue
        if used[res] >= caps[res]:
            blocked.add(res)  # keep the order: nothing younger of this resource starts
            continue
        gpu = None
        if res == "accelerator" and all_gpus:
            wanted = min(max(1, gpus_of(row)), len(all_gpus))
            # the free GPUs first, then (when sharing) the least busy; in id order within each
            pick = sorted(all_gpus, key=lambda g: load[g])[:wanted]
            if load[pick[-1]] and not share:
                blocked.add(res)
                continue
            gpu = ",".join(g for g in all_gpus if g in pick)
            for g in pick:
                load[g] += 1
        used[res] += 1
        out.append({**row, "gpu": gpu})
    return out
