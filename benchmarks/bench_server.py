"""Benchmark: the job API under load while a real training job runs (the API must stay
responsive while a job trains on the same machine).

A real Jupyter server (a subprocess, with the extension) serves a temporary root folder.
A tiny real training job is launched through the API. While it trains on the same
machine, ``--clients`` concurrent clients poll ``GET cvat-train/api/jobs`` (each waits
``--interval`` s between requests) and one client follows the job's websocket stream.

Figures printed:
- p50 / p99 latency of ``GET jobs``, and of jupyter_server's own ``GET api/status``
  polled the same way in the same run (the baseline; ratio = jobs / status);
- log delay: a marker line with its write time is appended to the job's job.log every
  ``--marker-interval`` s (O_APPEND, like the job's own writes); the delay is its
  arrival time on the websocket minus its write time (p50 / p95 / max).

Goal: GET jobs p99 < 50 ms and log delay p95 < 250 ms on the 2-core dev machine.

    .venv/bin/python benchmarks/bench_server.py [--clients 50] [--seconds 20] [--interval 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from jupyter_cvat_train.datasets import generate_sample  # noqa: E402

TRAIN = {
    "kind": "train",
    "template": "ssdlite320-mobilenet-v3",
    "dataset": "sample.zip",
    "checkpoint": None,
    "parameters": {
        "epochs": 200,
        "hyperparameters": "batch_size: 2\nimage_size: 64\npretrained: false\nwarmup_iters: 1",
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else float("nan")


async def wait_up(url: str, headers: dict, timeout: float = 60) -> None:
    client = AsyncHTTPClient()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await client.fetch(url, headers=headers, request_timeout=2)
            return
        except Exception:  # noqa: BLE001 - not up yet
            await asyncio.sleep(0.3)
    raise RuntimeError(f"server did not answer at {url}")


async def poller(url: str, headers: dict, interval: float, stop: float, out: list[float]) -> None:
    client = AsyncHTTPClient()
    while time.monotonic() < stop:
        t = time.perf_counter()
        r = await client.fetch(HTTPRequest(url, headers=headers, request_timeout=30))
        out.append(time.perf_counter() - t)
        assert r.code == 200
        await asyncio.sleep(interval)


async def follower(ws_url: str, headers: dict, arrivals: dict, done: asyncio.Event) -> dict:
    ws = await websocket_connect(HTTPRequest(ws_url, headers=headers))
    last = None
    while True:
        msg = await ws.read_message()
        if msg is None:
            break
        t = time.time()
        m = json.loads(msg)
        if m["type"] == "log":
            for line in m["text"].splitlines():
                if line.startswith("bench-marker "):
                    _, seq, _wrote = line.split()
                    arrivals[int(seq)] = t
        last = m
    done.set()
    return last or {}


async def marker_writer(log_path: Path, interval: float, stop: float, written: dict) -> None:
    seq = 0
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        while time.monotonic() < stop:
            t = time.time()
            os.write(fd, f"bench-marker {seq} {t:.6f}\n".encode())
            written[seq] = t
            seq += 1
            await asyncio.sleep(interval)
    finally:
        os.close(fd)


async def run(args) -> int:
    AsyncHTTPClient.configure(None, max_clients=args.clients + 8)
    work = Path(tempfile.mkdtemp(prefix="bench-server-"))
    generate_sample(work / "sample.zip", images=args.images, width=96, height=96)
    port, token = free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--ServerApp.token={token}",
            f"--ServerApp.root_dir={work}",
            "--ServerApp.open_browser=False",
            "--ServerApp.jpserver_extensions={'jupyter_cvat_train': True}",
            "--allow-root",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "server.log", "wb"),
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/"
    headers = {"Authorization": f"token {token}"}
    client = AsyncHTTPClient()
    try:
        await wait_up(base + "api/status", headers)
        r = await client.fetch(
            base + "cvat-train/api/jobs", method="POST", headers=headers, body=json.dumps(TRAIN), request_timeout=120
        )
        job = json.loads(r.body)
        print(f"training job {job['id']} ({TRAIN['template']}, {args.images} images 96x96, image_size 64, CPU)")
        job_dir = work / job["dir"]
        # wait until training steps run (the log grows past the plan), so the load is real
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            j = json.loads((await client.fetch(f"{base}cvat-train/api/jobs/{job['id']}", headers=headers)).body)
            if j["state"] != "running" and j["state"] != "queued":
                raise RuntimeError(f"the training job ended early: {j['state']} {j['message']}")
            if (j["progress"] or {}).get("done"):
                break
            await asyncio.sleep(0.5)
        print(f"training is stepping: {j['progress']}")

        stop = time.monotonic() + args.seconds
        jobs_lat, status_lat, written, arrivals = [], [], {}, {}
        done = asyncio.Event()
        ws_url = f"ws://127.0.0.1:{port}/cvat-train/api/jobs/{job['id']}/stream"
        log_size = (job_dir / "job.log").stat().st_size
        follow = asyncio.ensure_future(follower(f"{ws_url}?log_offset={log_size}", headers, arrivals, done))
        await asyncio.sleep(0.5)
        tasks = [
            poller(base + "cvat-train/api/jobs", headers, args.interval, stop, jobs_lat) for _ in range(args.clients)
        ]
        tasks += [poller(base + "api/status", headers, args.interval, stop, status_lat) for _ in range(args.clients)]
        tasks.append(marker_writer(job_dir / "job.log", args.marker_interval, stop, written))
        load = os.getloadavg()[0]
        await asyncio.gather(*tasks)
        await asyncio.sleep(1.0)  # the last markers arrive
        await client.fetch(
            f"{base}cvat-train/api/jobs/{job['id']}", method="DELETE", headers=headers, allow_nonstandard_methods=True
        )
        await asyncio.wait_for(done.wait(), 60)
        last = await follow
        delays = [arrivals[s] - written[s] for s in written if s in arrivals]
        ms = 1000.0
        print(
            f"{args.clients} clients x 2 endpoints, {args.interval}s between requests each, {args.seconds}s, "
            f"load average at start {load:.1f} on {os.cpu_count()} cores"
        )
        print(
            f"GET cvat-train/api/jobs  n={len(jobs_lat):5d}  p50 {pct(jobs_lat, 50) * ms:7.2f} ms  "
            f"p99 {pct(jobs_lat, 99) * ms:7.2f} ms  (goal p99 < 50 ms)"
        )
        print(
            f"GET api/status (base)    n={len(status_lat):5d}  p50 {pct(status_lat, 50) * ms:7.2f} ms  "
            f"p99 {pct(status_lat, 99) * ms:7.2f} ms"
        )
        print(
            f"ratio jobs/status        p50 {pct(jobs_lat, 50) / pct(status_lat, 50):.2f}  "
            f"p99 {pct(jobs_lat, 99) / pct(status_lat, 99):.2f}"
        )
        print(
            f"log delay (job.log -> websocket)  n={len(delays)}/{len(written)}  p50 {pct(delays, 50) * ms:6.1f} ms  "
            f"p95 {pct(delays, 95) * ms:6.1f} ms  max {max(delays) * ms:6.1f} ms  (goal p95 < 250 ms)"
        )
        print(f"stream ended with: {last.get('type')} {last.get('job', {}).get('state')}")
        return 0
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--interval", type=float, default=0.5, help="seconds each client waits between requests")
    p.add_argument("--marker-interval", type=float, default=0.05)
    p.add_argument("--images", type=int, default=20)  # 16 train images: no batch of 1
    args = p.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
