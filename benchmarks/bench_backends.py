"""Benchmark: the same job on the ``local`` and the ``ray`` job backends, in one run.

A JobManager over a temporary runs root starts ``--jobs`` jobs of a small kind defined
here (``bench-ticker``: it prints ``tick <unix time>`` every ``--tick`` s for
``--seconds`` s) on each backend, one after the other. The Ray backend gets a
single-node head started here (``ray start --head --num-cpus 2`` through
:mod:`~jupyter_cvat_train.jobs.backends.ray_head`, that head alone stopped at the end),
or ``--address`` of a running one.

Figures printed, per backend:
- submit to running: from ``JobManager.create`` to the job process's status.json saying
  ``running`` (median, max);
- log delay: from a tick's time to its line being readable in the job folder's job.log,
  which is what the server's log stream reads (p50 / p95 / max).

With ``--ddp``, also the training throughput of one 2-rank training (``gpus: 2`` on the
CPU, gloo) of a generated export: torchrun's 2 processes (``local``) vs 2 Ray Train
workers (``ray``), on the same machine: the median over epochs 2.. of the images per
second each epoch's training took (``images_per_s`` in the job's metrics.json history;
epoch 1 holds the warm-up); and each training's wall time from submit to its end (Ray
adds its job start, Ray Train's controller and worker group).

Goals (issue 17): Ray submit-to-running < 3 s, log delay p95 < 2 s, and training
throughput on 2 Ray workers >= 0.9x torchrun with 2 processes.

    .venv/bin/python benchmarks/bench_backends.py [--jobs 3] [--seconds 4] [--address URL]
        [--ddp [--ddp-epochs 4] [--ddp-images 64]]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HERE = str(Path(__file__).resolve().parent)


def ticker(ctx) -> dict:
    """The job: ``tick <time>`` lines on stdout (job.log) every ``spec["tick"]`` s."""
    end = time.time() + float(ctx.spec.get("seconds", 4))
    n = 0
    while time.time() < end and not ctx.cancelled.is_set():
        print(f"tick {time.time():.6f}", flush=True)
        n += 1
        time.sleep(float(ctx.spec.get("tick", 0.1)))
    return {"ticks": n}


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run_one(manager, root: Path, backend: str, seconds: float, tick: float) -> tuple[float, list[float]]:
    """(submit-to-running seconds, log delays) of one job on ``backend`` (on ray, also
    printed: when Ray itself said RUNNING)."""
    from jupyter_cvat_train.jobs.runtime import JobState

    t0 = time.time()
    job = manager.create({"kind": "bench-ticker", "seconds": seconds, "tick": tick, "backend": backend})
    jd = manager.job_dir(job["id"])
    running = ray_running = None
    ray_client = manager.backends["ray"].client if backend == "ray" else None
    delays: list[float] = []
    offset, seen = 0, set()
    deadline = time.monotonic() + seconds + 120
    while time.monotonic() < deadline:
        now = time.time()
        state = jd.read_status().get("state")
        if running is None and state and state != JobState.QUEUED:
            running = now - t0
        if ray_client is not None and ray_running is None:
            try:
                if ray_client.job(job["id"]).get("status") not in ("PENDING", None):
                    ray_running = time.time() - t0
            except OSError:
                pass
        try:
            with open(jd.log_path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            complete = chunk[: chunk.rfind(b"\n") + 1]
            offset += len(complete)
            for line in complete.decode(errors="replace").splitlines():
                if line.startswith("tick ") and line not in seen:
                    seen.add(line)
                    delays.append(now - float(line.split()[1]))
        manager.poll()
        if manager.get(job["id"])["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.02)
    state = manager.get(job["id"])
    if state["state"] != "succeeded":
        raise SystemExit(f"{backend}: the job ended {state['state']}: {state['message']}")
    if ray_running is not None:
        print(f"  ray: RUNNING after {ray_running:.2f} s, the job process running after {running:.2f} s")
    return running if running is not None else float("nan"), delays


def train_throughput(manager, root: Path, backend: str, epochs: int) -> float:
    """Median images/s over epochs 2.. of a 2-rank CPU training on ``backend``; prints
    its wall time."""
    from jupyter_cvat_train.jobs.specs import check_spec

    spec = {
        "kind": "train",
        "template": "ssdlite320-mobilenet-v3",
        "dataset": "ddp.zip",
        "checkpoint": None,
        "parameters": {"epochs": epochs, "hyperparameters": "batch_size: 4\nimage_size: 160\npretrained: false"},
        "gpus": 2,
        "device": "cpu",
        "backend": backend,
    }
    t0 = time.monotonic()
    job = manager.create(check_spec(spec, root, backends=("local", "ray")))
    done = manager.wait(job["id"], timeout=3600)
    print(f"  {backend}: submit to end {time.monotonic() - t0:.0f} s")
    if done["state"] != "succeeded":
        raise SystemExit(f"{backend}: the training ended {done['state']}: {done['message']}")
    history = json.loads((manager.job_dir(job["id"]).output_dir / "metrics.json").read_text())["history"]
    rates = [h["images_per_s"] for h in history]
    return statistics.median(rates[1:] or rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--tick", type=float, default=0.1)
    parser.add_argument("--address", default="", help="a running Ray dashboard (default: start a head here)")
    parser.add_argument("--ddp", action="store_true", help="also 2-rank training throughput: torchrun vs Ray Train")
    parser.add_argument("--ddp-epochs", type=int, default=4)
    parser.add_argument("--ddp-images", type=int, default=64)
    args = parser.parse_args()

    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH")) if p)
    from jupyter_cvat_train.jobs.backends.ray import RayBackend
    from jupyter_cvat_train.jobs.backends.ray_head import start_head
    from jupyter_cvat_train.jobs.manager import JobManager
    from jupyter_cvat_train.jobs.registry import JobKind, register_kind

    register_kind(JobKind("bench-ticker", "bench_backends:ticker", "io"))
    temp = tempfile.mkdtemp(prefix="bb", dir="/tmp")
    head = None
    try:
        if not args.address:
            head = start_head(Path(temp) / "ray")  # only this head is stopped at the end, not others'
        address = args.address or head.address
        root = Path(temp) / "root"
        root.mkdir()
        ray = RayBackend(address, python=sys.executable)
        manager = JobManager(root / "runs", backends=(ray,))
        print(f"{args.jobs} jobs per backend, {args.seconds:g} s each, a tick every {args.tick:g} s; Ray at {address}")
        for backend in ("local", "ray"):
            starts, delays = [], []
            for _ in range(args.jobs):
                start, d = run_one(manager, root, backend, args.seconds, args.tick)
                starts.append(start)
                delays.extend(d)
            print(
                f"{backend:5}  submit->running median {statistics.median(starts):.2f} s (max {max(starts):.2f}); "
                f"log delay p50 {_percentile(delays, 0.5) * 1000:.0f} ms, p95 {_percentile(delays, 0.95) * 1000:.0f} "
                f"ms, max {max(delays) * 1000:.0f} ms ({len(delays)} lines)"
            )
        if args.ddp:
            from jupyter_cvat_train.datasets import generate_sample

            generate_sample(root / "ddp.zip", images=args.ddp_images, width=160, height=120, seed=3)
            rates = {b: train_throughput(manager, root, b, args.ddp_epochs) for b in ("local", "ray")}
            print(
                f"2-rank training, {args.ddp_images} images, {args.ddp_epochs} epochs: torchrun "
                f"{rates['local']:.1f} images/s, Ray Train {rates['ray']:.1f} images/s, "
                f"ratio {rates['ray'] / rates['local']:.2f} (goal >= 0.9)"
            )
        manager.close()
    finally:
        if head is not None:
            head.stop()
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
