"""Multi-GPU training: the job process launches torchrun, whose workers train with
DistributedDataParallel (NCCL on CUDA, gloo on the CPU).

- The job process (owner of status.json) runs :func:`run_torchrun`: it starts
  ``python -m torch.distributed.run --standalone --nproc_per_node N -m
  jupyter_cvat_train.training.distributed JOB_DIR`` and waits. On SIGTERM it creates
  ``output/.cancel``; the workers check it every step (rank 0 reads it, all ranks agree
  through an all-reduce), save last.pt and stop.
- Each worker (:func:`worker_main`) rebuilds the same plan (deterministic), trains its
  shard; rank 0 evaluates, reports events and writes the outputs, and its result to
  ``output/.ddp-result.json``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..jobs.jobdir import JobCancelled, JobContext, JobError, write_json_atomic

RESULT_FILE = ".ddp-result.json"
CANCEL_FILE = ".cancel"


def torchrun_command(job_dir: str | Path, nproc: int) -> list[str]:
    """The torchrun command line that runs the workers of the job in ``job_dir``."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(nproc)}",
            "-m", "jupyter_cvat_train.training.distributed", str(job_dir)]


def run_torchrun(ctx: JobContext, nproc: int) -> dict:
    """Launch the workers, forward a cancel, and return rank 0's outputs. Raises
    JobCancelled / JobError as rank 0 reported, JobError when torchrun fails."""
    out = Path(ctx.output_dir)
    for name in (RESULT_FILE, CANCEL_FILE):
        (out / name).unlink(missing_ok=True)
    cmd = torchrun_command(ctx.dir.path, nproc)
    ctx.log("launching: " + " ".join(cmd))
    proc = subprocess.Popen(cmd)
    while proc.poll() is None:
        if ctx.cancelled.is_set() and not (out / CANCEL_FILE).exists():
            (out / CANCEL_FILE).write_text("cancel requested\n")
        time.sleep(0.5)
    try:
        result = json.loads((out / RESULT_FILE).read_text())
    except (OSError, ValueError):
        raise JobError(f"torchrun exited with code {proc.returncode} without a result; see job.log") from None
    if result.get("state") == "cancelled":
        raise JobCancelled(result.get("message") or "cancelled by request")
    if result.get("state") != "succeeded":
        raise JobError(result.get("message") or f"training failed (torchrun exit code {proc.returncode})")
    return result.get("outputs") or {}


def worker_main(job_dir: str) -> int:
    """Body of one torchrun worker; returns its exit code."""
    import torch
    import torch.distributed as dist

    from .engine import Trainer
    from .plan import make_plan

    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    ctx = JobContext(job_dir)
    signal.signal(signal.SIGTERM, lambda *_: ctx.cancelled.set())
    out = Path(ctx.output_dir)
    spec = dict(ctx.spec)
    quiet = (lambda msg: None) if rank else ctx.log
    result = {"state": "failed", "message": ""}
    try:
        plan = make_plan(spec, out, log=quiet, warn=(lambda m: None) if rank else ctx.warn)
        cuda = plan.device.startswith("cuda")
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo")
        check = lambda: ctx.cancelled.is_set() or (out / CANCEL_FILE).exists()  # noqa: E731
        outputs = Trainer(plan, ctx, rank=rank, world_size=world, local_rank=local, cancel_check=check).fit()
        result = {"state": "succeeded", "outputs": outputs}
    except JobCancelled as e:
        result = {"state": "cancelled", "message": str(e)}
    except JobError as e:
        result = {"state": "failed", "message": str(e)}
    except Exception as e:  # noqa: BLE001 - reported to the job process
        import traceback

        traceback.print_exc()
        result = {"state": "failed", "message": f"{type(e).__name__}: {e}"}
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if rank == 0:
        write_json_atomic(out / RESULT_FILE, result)
    return 0 if result["state"] in ("succeeded", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1]))
