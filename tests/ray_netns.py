"""A real 2-node Ray cluster on this machine, in two network namespaces made for the test
(a helper for tests, not a test file): :func:`two_node_cluster`.

As root it picks a /24 in 10.213.0.0/16 that no route or address of this (the root)
namespace overlaps, makes a bridge here (address .254) and two namespaces
``cvt<pid>a`` / ``cvt<pid>b``, each joined to the bridge by a veth whose end inside the
namespace is named ``cvt0`` in both (so ``GLOO_SOCKET_IFNAME=cvt0`` names the right
interface on both nodes), with addresses .1 and .2 and ``lo`` up. The namespaces have no
default route: Ray's traffic stays on those addresses and the bridge. It then starts a Ray
head in namespace A (node ip .1, dashboard on .1, 1 CPU) and a worker node in namespace B
(node ip .2, 1 CPU) through :mod:`jupyter_cvat_train.jobs.backends.ray_head` (``ip netns
exec NS`` as the command's prefix), both with ``GLOO_SOCKET_IFNAME=cvt0`` (and
``NCCL_SOCKET_IFNAME``) in their environment: the host name resolves to 127.0.0.1 here,
where gloo would otherwise bind. At the end both nodes are stopped, the namespaces, the
veths and the bridge deleted, and it asserts that no process was left in the namespaces
or the nodes' folders and no namespace or link is left.

Skips (``pytest.skip`` with the reason) when not root, when ``ip`` is missing, when ``ip
netns add`` fails (a container without CAP_SYS_ADMIN) or the bridge and veths cannot be
made, or when ray is not installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jupyter_cvat_train.jobs.backends.ray_head import (
    LocalHead,
    LocalWorker,
    _working_in,
    alive_nodes,
    ray_cli,
    start_head,
    start_worker,
    stop_head,
)

#: the interface name inside both namespaces (GLOO_SOCKET_IFNAME)
IFNAME = "cvt0"
SUPERNET = ipaddress.ip_network("10.213.0.0/16")


@dataclass
class TwoNodeCluster:
    """A running 2-node cluster of :func:`two_node_cluster`. ``address``: the head's
    dashboard (``http://10.213.X.1:PORT``, for the ray backend); ``head_ip`` /
    ``worker_ip``: the nodes' addresses (.1 and .2); ``token``: Ray's auth token (None:
    auth off); ``namespaces``: (head's, worker's); ``up_seconds``: how long bringing the
    cluster up took (network, head, worker joined), in seconds."""

    address: str
    head_ip: str
    worker_ip: str
    token: str | None
    namespaces: tuple[str, str]
    head: LocalHead
    worker: LocalWorker
    up_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    rejoin: Callable[[], LocalWorker] | None = None

    def stop_worker(self, timeout: float = 120) -> None:
        """Stop the worker node (its ``ray start`` and everything it started) as a node
        lost mid-job; the head marks it dead on its own time."""
        self.worker.stop(timeout=timeout)

    def cut_off_worker(self, cut: bool = True) -> None:
        """Take the worker node's network link down (``cut``), as a node that dies or is
        cut off without a word (no connection is closed: its peers wait for it), or
        up again."""
        _ip("-n", self.namespaces[1], "link", "set", IFNAME, "down" if cut else "up")

    def restart_worker(self) -> None:
        """Start the worker node again (same namespace, address and folder) after
        :meth:`stop_worker`; returns once the head lists it alive."""
        assert self.rejoin is not None
        self.worker = self.rejoin()

    def alive_nodes(self) -> list[dict]:
        """The nodes the head's dashboard lists alive now (``[]`` when it does not answer)."""
        return alive_nodes(self.address, self.token) or []


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``ip ARGS``; raises RuntimeError with ip's message when ``check`` and it fails."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _used_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks of this namespace's routes (every table) and addresses."""
    nets = []
    lines = _ip("-4", "route", "show", "table", "all").stdout.splitlines()
    lines += [line.split()[3] for line in _ip("-4", "-o", "addr", "show").stdout.splitlines() if len(line.split()) > 3]
    for line in lines:
        word = line.split()[0] if line.split() else ""
        if word in ("broadcast", "local", "unicast", "multicast") and len(line.split()) > 1:
            word = line.split()[1]
        if word == "default":
            continue
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.ip_network(word, strict=False))
    return nets


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 10.213.0.0/16 that no route or address of this namespace overlaps
    (starting from one picked by this process's pid, so that two runs at once differ).
    Raises RuntimeError when all are taken."""
    used = _used_networks()
    subnets = list(SUPERNET.subnets(new_prefix=24))
    start = os.getpid() % len(subnets)
    for net in subnets[start:] + subnets[:start]:
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(f"every /24 of {SUPERNET} is in use here")


def _skip_unless_possible() -> None:
    """pytest.skip with the reason when namespaces or Ray are not at hand."""
    if os.geteuid() != 0:
        pytest.skip("a 2-node Ray cluster in network namespaces needs root (ip netns add)")
    if shutil.which("ip") is None:
        pytest.skip("the ip command (iproute2) is not installed: it makes the network namespaces")
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'jupyter_cvat_train[ray]')")
    try:
        ray_cli()
    except FileNotFoundError as e:
        pytest.skip(str(e))


def _pids_in(namespace: str) -> list[int]:
    """Pids of processes in network namespace ``namespace`` (``ip netns pids``)."""
    out = _ip("netns", "pids", namespace, check=False).stdout.split()
    return [int(p) for p in out if p.isdigit()]


@contextlib.contextmanager
def two_node_cluster(folder: Path | str | None = None, token: str | None = None) -> Iterator[TwoNodeCluster]:
    """A real 2-node Ray cluster in two network namespaces (see the module's doc), torn
    down at the end. ``folder``: a short folder (Ray's socket paths) for the nodes' temp
    folders ``h`` and ``w``; default a new one under /tmp, removed at the end. ``token``:
    turns Ray's token auth on (``RAY_AUTH_MODE=token``) with that token on both nodes.
    Skips when namespaces cannot be made here; raises AssertionError at the end when
    something was left running (after removing it)."""
    _skip_unless_possible()
    own_folder = folder is None
    base = Path(tempfile.mkdtemp(prefix="rn", dir="/tmp") if own_folder else folder).absolute()
    base.mkdir(parents=True, exist_ok=True)
    tag = f"cvt{os.getpid()}"
    ns_a, ns_b, bridge = tag + "a", tag + "b", tag + "br"
    veths = (tag + "va", tag + "vb")
    t0 = time.monotonic()
    made: list[str] = []  # namespaces made, for the teardown
    links: list[str] = []
    try:
        probe = _ip("netns", "add", ns_a, check=False)
        if probe.returncode != 0:
            pytest.skip(f"network namespaces cannot be made here: ip netns add said {probe.stderr.strip()}")
        made.append(ns_a)
        net = free_subnet()
        hosts = list(net.hosts())
        head_ip, worker_ip, bridge_ip = str(hosts[0]), str(hosts[1]), str(hosts[253])
        try:
            _ip("link", "add", bridge, "type", "bridge")
            links.append(bridge)
            _ip("addr", "add", f"{bridge_ip}/24", "dev", bridge)
            _ip("link", "set", bridge, "up")
            _ip("netns", "add", ns_b)
            made.append(ns_b)
            for ns, veth, ip in ((ns_a, veths[0], head_ip), (ns_b, veths[1], worker_ip)):
                _ip("link", "add", veth, "type", "veth", "peer", "name", IFNAME, "netns", ns)
                links.append(veth)
                _ip("link", "set", veth, "master", bridge, "up")
                _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", IFNAME)
                _ip("-n", ns, "link", "set", IFNAME, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except RuntimeError as e:  # no bridge or veth support here (a kernel module, a capability)
            pytest.skip(f"the namespaces' network cannot be made here: {e}")
        t_net = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(GLOO_SOCKET_IFNAME=IFNAME, NCCL_SOCKET_IFNAME=IFNAME)
        if token:
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
        head = start_head(
            base / "h",
            num_cpus=1,
            node_ip=head_ip,
            dashboard_host=head_ip,
            env=env,
            prefix=["ip", "netns", "exec", ns_a],
        )
        t_head = time.monotonic()

        def join() -> LocalWorker:
            return start_worker(
                base / "w", head, node_ip=worker_ip, num_cpus=1, env=env, prefix=["ip", "netns", "exec", ns_b]
            )

        worker = join()
        t_up = time.monotonic()
        cluster = TwoNodeCluster(
            head.address,
            head_ip,
            worker_ip,
            token,
            (ns_a, ns_b),
            head,
            worker,
            up_seconds=t_up - t0,
            timings={"network": t_net - t0, "head": t_head - t_net, "worker_joined": t_up - t_head},
            rejoin=join,
        )
        yield cluster
    finally:
        _teardown(base, made, links, remove=own_folder)


def _teardown(base: Path, namespaces: list[str], links: list[str], *, remove: bool) -> None:
    """Stop both nodes, kill what is left in the namespaces and folders, delete the
    namespaces and links; AssertionError (after cleaning up) naming what was left."""
    left: list[str] = []
    for sub in ("w", "h"):
        if (base / sub).exists():
            stop_head(base / sub)
            for pid in _working_in(base / sub):
                left.append(f"pid {pid} still working in {base / sub}")
    for ns in namespaces:
        for pid in _pids_in(ns):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
            except OSError:
                cmd = "?"
            left.append(f"pid {pid} still in namespace {ns}: {cmd}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
    for link in reversed(links):
        _ip("link", "del", link, check=False)
    for ns in namespaces:
        _ip("netns", "del", ns, check=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # a veth goes with its namespace, asynchronously
        names = set(_ip("netns", "list").stdout.split()) & set(namespaces)
        shown = _ip("-o", "link", "show").stdout
        remaining = [link for link in links if f" {link}:" in shown or f" {link}@" in shown]
        if not names and not remaining:
            break
        time.sleep(0.2)
    else:
        left += [f"namespace {n} not deleted" for n in names] + [f"link {link} not deleted" for link in remaining]
    if remove:
        shutil.rmtree(base, ignore_errors=True)
    assert not left, "the 2-node cluster left behind: " + "; ".join(left)
