"""Training on more than one GPU (or CPU process): the job process launches torchrun,
whose workers (ranks) train with DistributedDataParallel: NCCL with one GPU per rank
on CUDA, gloo on the CPU.

Who writes what:

- The job process (``python -m jupyter_cvat_train.training JOB_DIR``) checks the plan,
  then runs :func:`run_torchrun`: it starts ``<its python> -m torch.distributed.run
  --standalone --nproc-per-node N --max-restarts 0 -m jupyter_cvat_train.training.distributed
  JOB_DIR`` (in the job's process group) and waits. It alone writes status.json: it follows
  the progress events rank 0 appends to events.jsonl and mirrors them into status.json
  (and to its listeners, e.g. the CLI's bar).
- Rank 0 evaluates, writes events.jsonl, TensorBoard, checkpoints, metrics.json and
  model/ (:class:`RankContext`). The other ranks write nothing to the job folder.
- Every rank leaves its result (state, message, time) in a private temporary folder
  given by ``CVAT_TRAIN_DDP_DIR``; the job process combines them
  (:func:`combine_results`): the earliest failure names the job's failure, a rank that
  left no result (killed) fails the job, otherwise rank 0's outputs are the job's.

Cancel: a SIGTERM to the job's process group reaches every process. The workers only
set a flag; the ranks agree to stop after the current step (an all-reduce), rank 0
saves last.pt, all exit. A SIGTERM to the job process alone is forwarded as a
``cancel`` file in the private folder, which the ranks check every step. If the job
process dies, torchrun gets SIGTERM (Linux parent-death signal) and stops its workers.

No hang: a rank that exits is seen by torchrun within 0.1 s and the others are stopped
(SIGTERM, SIGKILL after ``--shutdown-timeout``); a rank stuck in a collective fails
after the process-group timeout (``CVAT_TRAIN_DDP_TIMEOUT_S``, default 1800 s: it also
bounds how long the other ranks wait while rank 0 evaluates).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..jobs.runtime import JobCancelled, JobContext, JobError, write_json_atomic
from ..jobs.runtime.logread import read_from

RUN_DIR_ENV = "CVAT_TRAIN_DDP_DIR"
TIMEOUT_ENV = "CVAT_TRAIN_DDP_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800.0
SHUTDOWN_TIMEOUT_S = 30
CANCEL_FILE = "cancel"
POLL_S = 0.2


def torchrun_command(job_dir: str | Path, nproc: int, python: str | None = None) -> list[str]:
    """The torchrun command line that runs the ``nproc`` ranks of the job in ``job_dir``
    with the interpreter ``python`` (default: this one). Single node, no restarts."""
    return [
        python or sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={int(nproc)}",
        "--max-restarts=0",
        f"--shutdown-timeout={SHUTDOWN_TIMEOUT_S}",
        "-m",
        "jupyter_cvat_train.training.distributed",
        str(job_dir),
    ]


def worker_env(run_dir: Path, nproc: int, device: str, base: dict | None = None) -> dict:
    """Environment of torchrun and its ranks: the private result folder, the package on
    PYTHONPATH, and on the CPU the cores shared out between the ranks (torchrun would
    set OMP_NUM_THREADS=1) unless the user set OMP_NUM_THREADS."""
    env = dict(os.environ if base is None else base)
    env[RUN_DIR_ENV] = str(run_dir)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if not device.startswith("cuda") and "OMP_NUM_THREADS" not in env:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        env["OMP_NUM_THREADS"] = str(max(1, cores // int(nproc)))
    return env


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM to torchrun when the job process dies (Linux prctl)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _EventMirror:
    """Follows events.jsonl from a byte offset: progress events (written by rank 0) go
    into the job process's status.json and every event to its listeners."""

    def __init__(self, ctx: JobContext):
        self.ctx = ctx
        self.path = ctx.dir.events_path
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def poll(self, final: bool = False) -> None:
        data, self.offset = read_from(self.path, self.offset)
        progress = None
        for line in data.decode("utf-8", errors="replace").splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("type") == "progress":
                progress = {"done": ev.get("done"), "total": ev.get("total"), "unit": ev.get("unit")}
            for listener in self.ctx.listeners:
                listener(ev)
        if progress is None:
            return
        self.ctx.record_progress(progress, final=final)


def follow_ranks(ctx: JobContext, run_dir: Path, running) -> dict[int, dict]:
    """While ``running()`` is true: mirror rank 0's progress events into status.json and
    forward a cancel of the job process to the ranks (a ``cancel`` file in ``run_dir``,
    which every rank checks each step). Returns the ranks' results found in ``run_dir``
    (``{rank: {state, message, time, node, outputs}}``) once they have ended."""
    mirror = _EventMirror(ctx)
    cancel_file = run_dir / CANCEL_FILE
    while running():
        if ctx.cancelled.is_set() and not cancel_file.exists():
            cancel_file.write_text("cancel requested\n")
        mirror.poll()
        time.sleep(POLL_S)
    mirror.poll(final=True)
    results = {}
    for f in run_dir.glob("rank*.json"):
        try:
            r = json.loads(f.read_text())
            results[int(r["rank"])] = r
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return results


def run_torchrun(ctx: JobContext, nproc: int, device: str = "cpu") -> dict:
    """Run the job's ``nproc`` ranks under torchrun and wait for them; forward a cancel.

    Returns rank 0's outputs (as :meth:`.engine.Trainer.fit`). Raises JobCancelled when
    the ranks stopped on a cancel (last.pt saved), JobError when a rank failed (the
    earliest failure, with its rank) or ended without a result."""
    run_dir = Path(tempfile.mkdtemp(prefix="cvat-train-ddp-"))
    try:
        cmd = torchrun_command(ctx.dir.path, nproc)
        ctx.log("launching: " + " ".join(cmd))
        proc = subprocess.Popen(
            cmd, env=worker_env(run_dir, nproc, device), stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        results = follow_ranks(ctx, run_dir, lambda: proc.poll() is None)
        return combine_results(results, nproc, f"torchrun exit code {proc.returncode}")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def combine_results(results: dict[int, dict], nproc: int, ended: str) -> dict:
    """The job's outcome from the ranks' results ``{rank: {state, message, time, outputs}}``:
    the earliest failure (by time: the cause; later ones are the other ranks losing their
    peer) raises JobError naming its rank; a rank without a result raises JobError (with
    ``ended``: how the launcher ended, e.g. "torchrun exit code 1"); a cancel raises
    JobCancelled; otherwise rank 0's outputs are returned."""
    failed = sorted((r for r in results.values() if r.get("state") == "failed"), key=lambda r: r.get("time", 0))
    if failed:
        first = failed[0]
        raise JobError(
            f"rank {first['rank']} of {nproc} failed: {first.get('message') or 'see job.log'}"
            + (" (the other ranks were stopped)" if nproc > 1 else "")
        )
    missing = [r for r in range(nproc) if r not in results]
    if missing:
        raise JobError(
            f"rank(s) {', '.join(map(str, missing))} of {nproc} ended without a result ({ended}): "
            "killed (out of memory, its node lost) or failed to start; see job.log"
        )
    cancelled = [r for r in results.values() if r.get("state") == "cancelled"]
    if cancelled:
        raise JobCancelled(
            results[0].get("message")
            if results[0].get("state") == "cancelled"
            else cancelled[0].get("message") or "cancelled by request"
        )
    return results[0].get("outputs") or {}


class RankContext(JobContext):
    """The JobContext of one rank. Rank 0 writes events.jsonl and log lines as a job
    process does, but never status.json (the job process owns it and mirrors rank 0's
    progress events); the other ranks write nothing."""

    def __init__(self, job_dir: str | Path, rank: int):
        super().__init__(job_dir)
        self.rank = rank

    def event(self, type: str, **fields) -> dict:
        if self.rank:
            return {"type": type, **fields}
        return super().event(type, **fields)

    def warn(self, message: str, **fields) -> None:
        if not self.rank:
            super().warn(message, **fields)

    def log(self, message: str) -> None:
        if not self.rank:
            super().log(message)

    def progress(self, done: float, total: float | None = None, unit: str | None = None, **extra) -> None:
        self._progress = {"done": done, "total": total, "unit": unit}
        self.event("progress", done=done, total=total, unit=unit, **extra)


def timeout_s() -> float:
    """The process-group timeout in seconds (``CVAT_TRAIN_DDP_TIMEOUT_S``, default 1800)."""
    try:
        return max(1.0, float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def run_rank(
    job_dir: str | Path,
    run_dir: Path,
    rank: int,
    world: int,
    local: int,
    *,
    node: str = "",
    init_group: bool = True,
    signals: bool = True,
    ranks_device=None,
) -> dict:
    """Train as rank ``rank`` of ``world`` (``local``: its index on its node) and leave
    its result ``{rank, state, message, time, node, outputs}`` in ``run_dir/rank<N>.json``
    (``node``: where it ran, for the job's report); returns that result.

    init_group: start the process group here (torchrun); False when the launcher already
    did (Ray Train). signals: SIGTERM/SIGINT set the rank's cancel flag (only possible in
    a process's main thread). ranks_device: as :func:`.plan.make_plan`'s (the job process
    checked the same plan with it). A cancel also comes as the ``cancel`` file in ``run_dir``."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    from .engine import Trainer
    from .plan import make_plan

    result = {"rank": rank, "state": "failed", "message": "", "time": time.time(), "node": node}
    ctx = None
    try:
        ctx = RankContext(job_dir, rank)
        if signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: ctx.cancelled.set())
        cancel_file = run_dir / CANCEL_FILE

        def cancel_check() -> bool:
            if not ctx.cancelled.is_set() and cancel_file.exists():
                ctx.cancelled.set()
            return ctx.cancelled.is_set()

        # The job process already checked the plan and reported its notes and warnings.
        plan = make_plan(ctx.spec, ctx.output_dir, log=lambda m: None, warn=lambda m: None, ranks_device=ranks_device)
        cuda = plan.device.startswith("cuda")
        if cuda:
            torch.cuda.set_device(local)
        if init_group:
            dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s()))
        outputs = Trainer(plan, ctx, rank=rank, world_size=world, local_rank=local, cancel_check=cancel_check).fit()
        result.update(state="succeeded", outputs=outputs)
    except JobCancelled as e:
        result.update(state="cancelled", message=str(e) or "cancelled by request")
    except JobError as e:
        result.update(state="failed", message=str(e))
    except Exception as e:  # noqa: BLE001 - reported to the job process
        import traceback

        traceback.print_exc()
        result.update(state="failed", message=f"{type(e).__name__}: {e}")
    result["time"] = time.time()
    print(
        f"rank {rank}/{world}"
        + (f" on {node}" if node else "")
        + f": {result['state']}"
        + (f": {result['message']}" if result["message"] else ""),
        file=sys.stderr,
        flush=True,
    )
    write_json_atomic(run_dir / f"rank{rank}.json", result)
    if init_group:
        try:
            if dist.is_initialized():
                dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - a peer already gone; the result is written
            pass
    return result


def worker_main(job_dir: str) -> int:
    """Body of one torchrun rank (RANK, WORLD_SIZE, LOCAL_RANK from torchrun,
    CVAT_TRAIN_DDP_DIR from :func:`run_torchrun`); returns its exit code (0 when it
    succeeded or was cancelled)."""
    import socket

    result = run_rank(
        job_dir,
        Path(os.environ[RUN_DIR_ENV]),
        int(os.environ["RANK"]),
        int(os.environ["WORLD_SIZE"]),
        int(os.environ["LOCAL_RANK"]),
        node=socket.gethostname(),
    )
    return 0 if result["state"] in ("succeeded", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1]))
