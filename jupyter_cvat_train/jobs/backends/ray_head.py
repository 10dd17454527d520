"""A single-node Ray head on this machine, for trying the ray backend and for the tests:
``python -m jupyter_cvat_train.jobs.backends.ray_head start|stop|status [--dir DIR]``
(``make ray-cluster`` / ``make ray-stop``).

``start`` runs ``ray start --head --block`` (Ray's CLI, from the ``ray`` extra: nothing
here imports ray) in a session of its own, with DIR as Ray's temp folder and working
folder, waits until the dashboard answers and a job can be submitted, and writes
``DIR/head.json`` (``{pid, address, gcs_address}``). ``stop`` ends *that* head only:
SIGTERM to its ``ray start --block`` process (which stops the processes it started),
then SIGKILL to any process still working in DIR. Unlike ``ray stop``, which ends every
Ray process of the machine, another head on the same machine (another user's, another
test run's) is left alone.

The dashboard listens on 127.0.0.1 only unless ``--dashboard-host`` says otherwise. With
``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN`` in the environment, Ray's token auth is
on (the token is passed to Ray through the environment, never printed).

For a cluster of several nodes on one machine (the tests' two network namespaces,
``tests/ray_netns.py``), :func:`start_head` and :func:`start_worker` take a ``prefix``
for Ray's command (e.g. ``["ip", "netns", "exec", NS]``, which runs it in namespace NS)
and a ``node_ip``. :func:`start_worker` runs ``ray start --address=GCS --block`` with a
temp folder of its own and waits until the head's dashboard lists the new node alive
(``GET /api/v0/nodes``); :func:`stop_head` on that folder stops that node alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .ray import NODES_PATH, alive_nodes_in

#: Ray's socket paths live under its temp folder and must stay under ~100 characters
MAX_DIR_LENGTH = 40
STATE_FILE = "head.json"


@dataclass
class LocalHead:
    """A head started by :func:`start_head`: ``address`` (the dashboard's URL, for the
    ray backend), ``gcs_address`` (``host:port``, for ``ray start --address`` on another
    node), ``pid`` (its ``ray start --block`` process), ``folder`` (Ray's temp folder)."""

    address: str
    gcs_address: str
    pid: int
    folder: Path

    def stop(self, timeout: float = 120) -> None:
        """Stop this head (see :func:`stop_head`)."""
        stop_head(self.folder, timeout=timeout)


@dataclass
class LocalWorker:
    """A worker node started by :func:`start_worker`: ``node_id`` and ``node_ip`` (as the
    head's dashboard lists them), ``pid`` (its ``ray start --block`` process), ``folder``
    (its own Ray temp folder)."""

    node_id: str
    node_ip: str
    pid: int
    folder: Path

    def stop(self, timeout: float = 120) -> None:
        """Stop this worker node alone (see :func:`stop_head`)."""
        stop_head(self.folder, timeout=timeout)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at ``host`` now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ray_cli() -> str:
    """The ``ray`` command next to this interpreter, else on PATH. Raises
    FileNotFoundError saying how to install it."""
    here = Path(sys.executable).with_name("ray")
    found = str(here) if here.exists() else shutil.which("ray")
    if not found:
        raise FileNotFoundError(
            "the ray command is not installed here: pip install 'jupyter_cvat_train[ray]' (Ray's own CLI starts the head)"
        )
    return found


def _call(address: str, token: str | None, path: str, body: dict | None = None, timeout: float = 10) -> dict | None:
    """The JSON answer of the dashboard at ``address`` to GET ``path`` (POST ``body``), or
    None when it does not answer with a 2xx."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(address + path, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - our own local URL
            out = json.loads(resp.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return out if isinstance(out, dict) else {}


def _spawn(cmd: list[str], folder: Path, env: dict[str, str], node_ip: str | None) -> subprocess.Popen:
    """Run Ray's ``cmd`` (plus ``--node-ip-address node_ip`` when given) in a session of
    its own, output appended to ``folder/ray-start.log``, with ``folder`` as its working
    folder: started in a checkout, the cluster's interpreters would import the package
    from there, as no real cluster node does."""
    if node_ip:
        cmd = [*cmd, "--node-ip-address", node_ip]
    with open(folder / "ray-start.log", "ab") as log:
        return subprocess.Popen(
            cmd,
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _start_once(
    folder: Path | str,
    *,
    num_cpus: int = 2,
    num_gpus: int | None = None,
    port: int | None = None,
    dashboard_port: int | None = None,
    dashboard_host: str = "127.0.0.1",
    node_ip: str | None = None,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
    timeout: float = 300,
) -> LocalHead:
    """Start a Ray head whose temp folder is ``folder`` (made; an absolute path of at most
    :data:`MAX_DIR_LENGTH` characters, for Ray's socket paths) with ``num_cpus`` CPUs
    and ``num_gpus`` GPUs (None: those Ray finds; a number: declared, even without one),
    its GCS on ``port`` and its dashboard on ``dashboard_host:dashboard_port`` (free
    ports when None), and wait (up to ``timeout`` s) until it takes jobs: a first job
    (``true``) is submitted and must succeed, so the first real job does not wait for
    Ray's job agent. ``env``: the environment of the head (default: this process's, less
    ``RAY_ADDRESS``). ``prefix``: put before Ray's command, e.g. ``["ip", "netns", "exec",
    NS]`` to run the head in network namespace NS (then ports left None are ones free on
    this namespace's loopback, which a fresh namespace has free too; ``dashboard_host``
    must be reachable from here). Raises RuntimeError (with Ray's output) when it does not
    come up; the head is stopped then."""
    folder = _node_folder(folder)
    env, token = _node_env(env)
    port = port or free_port()
    if prefix:  # dashboard_host is an address of another namespace: not bindable here
        dashboard_port = dashboard_port or free_port()
    else:
        dashboard_port = dashboard_port or free_port(dashboard_host if dashboard_host != "0.0.0.0" else "127.0.0.1")
    cmd = [
        *(prefix or []),
        ray_cli(),
        "start",
        "--head",
        "--block",
        "--num-cpus",
        str(num_cpus),
        "--port",
        str(port),
        "--dashboard-host",
        dashboard_host,
        "--dashboard-port",
        str(dashboard_port),
        "--disable-usage-stats",
        "--temp-dir",
        str(folder),
        *(["--num-gpus", str(num_gpus)] if num_gpus is not None else []),
    ]
    proc = _spawn(cmd, folder, env, node_ip)
    host = "127.0.0.1" if dashboard_host in ("0.0.0.0", "") else dashboard_host
    address = f"http://{host}:{dashboard_port}"
    head = LocalHead(address, f"{node_ip or '127.0.0.1'}:{port}", proc.pid, folder)
    (folder / STATE_FILE).write_text(json.dumps({"pid": proc.pid, "address": address, "gcs_address": head.gcs_address}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        info = _call(address, token, "/api/jobs/ready-check")
        if info is None:  # not up yet, or the check job not submitted yet (or lost)
            _call(address, token, "/api/jobs/", {"entrypoint": "true", "submission_id": "ready-check"}, timeout=30)
        elif info.get("status") in ("SUCCEEDED", "FAILED", "STOPPED"):
            return head
        time.sleep(0.5)
    output = (folder / "ray-start.log").read_text(errors="replace")[-3000:]
    stop_head(folder)
    raise RuntimeError(f"the Ray head did not come up within {timeout:.0f} s; ray start said:\n{output}")


def _node_folder(folder: Path | str) -> Path:
    """``folder`` as an absolute path, made; ValueError when too long for Ray's socket
    paths, RuntimeError when a node started there still runs."""
    folder = Path(folder).absolute()
    if len(str(folder)) > MAX_DIR_LENGTH:
        raise ValueError(f"the Ray node folder {folder} is too long for Ray's socket paths: use a short one under /tmp")
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / STATE_FILE).exists() and _head_pid(folder) is not None:
        raise RuntimeError(f"a Ray node started in {folder} is still running: stop it first")
    return folder


def _node_env(env: dict[str, str] | None) -> tuple[dict[str, str], str | None]:
    """A node's environment (``env``, default this process's) less ``RAY_ADDRESS``, and
    the token the dashboard then wants (None when token auth is off)."""
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "RAY_ADDRESS"}
    token = env.get("RAY_AUTH_TOKEN") if env.get("RAY_AUTH_MODE", "").lower() == "token" else None
    return env, token


def alive_nodes(address: str, token: str | None = None) -> list[dict] | None:
    """The alive nodes of the cluster whose dashboard is at ``address`` (``GET
    /api/v0/nodes``, Ray's state API): ``[{node_id, node_ip, is_head_node, state, ...}]``,
    or None when the dashboard does not answer."""
    out = _call(address, token, NODES_PATH)
    return None if out is None else alive_nodes_in(out)


def _start_worker_once(
    folder: Path | str,
    head: LocalHead,
    *,
    node_ip: str | None = None,
    num_cpus: int = 1,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
    timeout: float = 300,
) -> LocalWorker:
    """One try of :func:`start_worker`."""
    folder = _node_folder(folder)
    env, token = _node_env(env)
    before = alive_nodes(head.address, token)
    if before is None:
        raise RuntimeError(f"the Ray head's dashboard at {head.address} does not answer: start the head first")
    known = {n.get("node_id") for n in before}
    cmd = [
        *(prefix or []),
        ray_cli(),
        "start",
        "--address",
        head.gcs_address,
        "--block",
        "--num-cpus",
        str(num_cpus),
        "--disable-usage-stats",
        "--temp-dir",
        str(folder),
    ]
    proc = _spawn(cmd, folder, env, node_ip)
    (folder / STATE_FILE).write_text(json.dumps({"pid": proc.pid, "gcs_address": head.gcs_address}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for node in alive_nodes(head.address, token) or []:
            if node.get("node_id") not in known and (node_ip is None or node.get("node_ip") == node_ip):
                return LocalWorker(str(node["node_id"]), str(node.get("node_ip")), proc.pid, folder)
        time.sleep(0.5)
    output = (folder / "ray-start.log").read_text(errors="replace")[-3000:]
    stop_head(folder)
    raise RuntimeError(f"the Ray worker node did not join within {timeout:.0f} s; ray start said:\n{output}")


def start_worker(folder: Path | str, head: LocalHead, *, attempts: int = 3, **options) -> LocalWorker:
    """Start a worker node of ``head``'s cluster: ``ray start --address=<head's GCS>
    --block`` in a session of its own, with ``folder`` (made; at most
    :data:`MAX_DIR_LENGTH` characters) as its Ray temp folder and working folder, and
    wait until the head's dashboard lists it alive. ``options``: ``node_ip`` (its
    ``--node-ip-address``; the node waited for has this ip), ``num_cpus`` (default 1),
    ``env`` (default this process's, less ``RAY_ADDRESS``; with token auth on the head,
    ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN`` must be in it too), ``prefix`` (put
    before Ray's command, e.g. ``["ip", "netns", "exec", NS]``), ``timeout`` (s, default
    300). Tried up to ``attempts`` times, as :func:`start_head`. Stop it with
    ``stop_head(folder)`` (or the returned worker's ``stop()``): that node alone. Raises
    RuntimeError with Ray's output when it does not join."""
    for attempt in range(attempts):
        try:
            return _start_worker_once(folder, head, **options)
        except RuntimeError as e:
            if attempt == attempts - 1 or "still running" in str(e) or "does not answer" in str(e):
                raise
    raise AssertionError("not reached")


def start_head(folder: Path | str, *, attempts: int = 3, **options) -> LocalHead:
    """Start a Ray head in ``folder`` (see :func:`_start_once` for ``options``), trying
    again up to ``attempts`` times when ``ray start`` gives up: Ray waits only a fixed
    30 s for its raylet, which a loaded machine can exceed. Raises RuntimeError with
    Ray's output of the last attempt."""
    for attempt in range(attempts):
        try:
            return _start_once(folder, **options)
        except RuntimeError as e:
            if attempt == attempts - 1 or "still running" in str(e):
                raise
    raise AssertionError("not reached")


def _head_pid(folder: Path) -> int | None:
    """The pid of the ``ray start --block`` of ``folder``'s head.json when that process
    still runs it (its command line names the folder), else None."""
    try:
        pid = int(json.loads((folder / STATE_FILE).read_text())["pid"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if str(folder).encode() in cmdline else None


def _working_in(folder: Path) -> list[int]:
    """Pids (not this one) whose working folder is ``folder`` or under it."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == str(folder) or cwd.startswith(str(folder) + os.sep):
            out.append(int(entry.name))
    return out


def stop_head(folder: Path | str, timeout: float = 120) -> bool:
    """Stop the Ray node (a head, or a worker of :func:`start_worker`) started in
    ``folder``: SIGTERM to its ``ray start --block`` (Ray then stops the processes it
    started), wait up to ``timeout`` s, then SIGKILL to every process still working in
    ``folder`` (Ray's workers and dashboard modules start there). True when a node was
    running. Never touches another node's processes."""
    folder = Path(folder).absolute()
    pid = _head_pid(folder)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            try:  # our own child: reap it
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.2)
    for _ in range(3):
        left = _working_in(folder)
        if not left:
            break
        for other in left:
            try:
                os.kill(other, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
    try:
        (folder / STATE_FILE).unlink()
    except OSError:
        pass
    return pid is not None


def main(argv: list[str] | None = None) -> None:
    """The command line (see the module's doc)."""
    parser = argparse.ArgumentParser(
        prog="python -m jupyter_cvat_train.jobs.backends.ray_head",
        description="Start or stop a single-node Ray head on this machine, for trying the ray job backend.",
    )
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--dir", default=f"/tmp/cvat-train-ray-{os.getuid()}", help="Ray's temp folder (short)")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--dashboard-port", type=int, default=8265)
    parser.add_argument("--dashboard-host", default="127.0.0.1", help="0.0.0.0 to let other machines submit jobs")
    args = parser.parse_args(argv)
    folder = Path(args.dir).absolute()
    if args.action == "stop":
        print("stopped the Ray head in " + str(folder) if stop_head(folder) else f"no Ray head runs in {folder}")
        return
    if args.action == "status":
        pid = _head_pid(folder)
        if pid is None:
            sys.exit(f"no Ray head runs in {folder}")
        print(json.loads((folder / STATE_FILE).read_text())["address"])
        return
    try:
        head = start_head(
            folder, num_cpus=args.num_cpus, dashboard_port=args.dashboard_port, dashboard_host=args.dashboard_host
        )
    except (RuntimeError, ValueError, FileNotFoundError) as e:
        sys.exit(f"cvat-train: {e}")
    token = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    print(f"Ray head running (pid {head.pid}, folder {folder}); dashboard and Jobs API at {head.address}")
    print(
        f"  jupyter lab --CvatTrainApp.ray_address={head.address}"
        + (" --CvatTrainApp.ray_token=$RAY_AUTH_TOKEN" if token else "")
    )
    print(f"  or for the CLI and notebooks: export CVAT_TRAIN_RAY_ADDRESS={head.address}")
    print(f"  another node joins with: ray start --address={head.gcs_address}")
    print("  stop it with: make ray-stop (or python -m jupyter_cvat_train.jobs.backends.ray_head stop)")


if __name__ == "__main__":
    main()
