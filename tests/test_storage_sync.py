"""Storage sync against a real S3 HTTP endpoint (moto's ThreadedMotoServer on
127.0.0.1) and against file:// storage: copies both ways, change detection, deletes,
filters, dry runs, symlinks, the lock, interrupted runs, multipart and ranged transfers,
unsafe keys and error messages."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from jupyter_cvat_train.jobs.runtime import JobDir
from jupyter_cvat_train.storage import StorageError, SyncOptions, sync
from jupyter_cvat_train.storage.local import TEMP_MARK, UnsafeKeyError, check_key, walk
from jupyter_cvat_train.storage.lock import SyncLock
from jupyter_cvat_train.storage.plan import Filters
from jupyter_cvat_train.storage.s3 import matches_multipart_etag

REPO = Path(__file__).resolve().parents[1]
MiB = 1 << 20
DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def moto_endpoint():
    """A real S3 HTTP API on loopback, with dummy credentials in the environment."""
    from moto.server import ThreadedMotoServer

    old = {k: os.environ.get(k) for k in DUMMY_ENV}
    os.environ.update(DUMMY_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def s3_client(endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def new_bucket(endpoint) -> str:
    name = f"bkt-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


class Target:
    """One storage location under test: its URI, endpoint, and a way to list it."""

    def __init__(self, kind, tmp_path, endpoint=None):
        self.kind, self.endpoint = kind, endpoint
        if kind == "s3":
            self.bucket = new_bucket(endpoint)
            self.uri = f"s3://{self.bucket}/data/set"
        else:
            self.root = tmp_path / "object-store"
            self.root.mkdir()  # a storage folder must exist, as a bucket must
            self.uri = f"file://{self.root}"

    def options(self, direction, workspace, **kw):
        kw.setdefault("max_attempts", 2)
        return SyncOptions(direction, str(workspace), self.uri, endpoint_url=self.endpoint, **kw)

    def put_raw(self, key, data: bytes):
        """Place an object directly (as another tool would)."""
        if self.kind == "s3":
            s3_client(self.endpoint).put_object(Bucket=self.bucket, Key="data/set/" + key, Body=data)
        else:
            p = self.root / key
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)

    def hashes(self) -> dict[str, str]:
        """key -> sha256 of the stored content."""
        if self.kind == "s3":
            c = s3_client(self.endpoint)
            out = {}
            for page in c.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="data/set/"):
                for o in page.get("Contents", ()):
                    body = c.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()
                    out[o["Key"][len("data/set/") :]] = hashlib.sha256(body).hexdigest()
            return out
        return tree_hashes(self.root)


def tree_hashes(root) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root).replace(os.sep, "/")] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def temp_files(root) -> list[str]:
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if TEMP_MARK in f]


def make_workspace(root: Path, n=12, size=3000, seed=0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sub = root / ("images" if i % 2 else "labels") / f"part{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file{i:03d}.{'jpg' if i % 2 else 'txt'}").write_bytes(
            hashlib.sha256(f"{seed}-{i}".encode()).digest() * (size // 32 + i)
        )
    return root


@pytest.fixture(params=["file", "s3"])
def target(request, tmp_path):
    endpoint = request.getfixturevalue("moto_endpoint") if request.param == "s3" else None
    return Target(request.param, tmp_path, endpoint)


# --- both backends ------------------------------------------------------------------


def test_up_then_down_gives_identical_trees_and_resync_copies_nothing(target, tmp_path):
    ws = make_workspace(tmp_path / "ws")
    s = sync(target.options("up", ws))
    assert (s["copied"], s["updated"], s["skipped"], s["failed"]) == (12, 0, 0, 0)
    assert s["bytes"] == sum(p.stat().st_size for p in ws.rglob("*") if p.is_file())
    assert target.hashes() == tree_hashes(ws)

    again = sync(target.options("up", ws))
    assert (again["copied"], again["updated"], again["skipped"]) == (0, 0, 12)

    down = tmp_path / "down"
    s = sync(target.options("down", down))
    assert s["copied"] == 12 and tree_hashes(down) == tree_hashes(ws)
    assert temp_files(down) == []
    for key in ("down", "up"):  # a download leaves mtimes such that neither direction re-copies
        again = sync(target.options(key, down))
        assert (again["copied"], again["updated"], again["skipped"]) == (0, 0, 12), key


def test_changed_file_is_updated_both_ways(target, tmp_path):
    ws = make_workspace(tmp_path / "ws")
    sync(target.options("up", ws))
    f = ws / "labels" / "part0" / "file000.txt"
    f.write_bytes(b"changed content")
    s = sync(target.options("up", ws))
    assert (s["copied"], s["updated"], s["skipped"]) == (0, 1, 11)
    assert target.hashes()["labels/part0/file000.txt"] == hashlib.sha256(b"changed content").hexdigest()

    down = tmp_path / "down"
    sync(target.options("down", down))
    target.put_raw("labels/part0/file000.txt", b"changed again, remotely")
    if target.kind == "file":  # a stored file newer than the local copy
        t = time.time() + 60
        os.utime(target.root / "labels/part0/file000.txt", (t, t))
    s = sync(target.options("down", down))
    assert (s["copied"], s["updated"]) == (0, 1)
    assert (down / "labels/part0/file000.txt").read_bytes() == b"changed again, remotely"


def test_same_size_same_mtime_change_needs_checksum(target, tmp_path):
    ws = make_workspace(tmp_path / "ws", n=3)
    sync(target.options("up", ws))
    f = ws / "labels" / "part0" / "file000.txt"
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[0] ^= 0xFF
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert sync(target.options("up", ws))["updated"] == 0  # size + mtime cannot see it
    s = sync(target.options("up", ws, checksum=True))
    assert (s["updated"], s["skipped"]) == (1, 2)
    assert sync(target.options("up", ws, checksum=True))["updated"] == 0


def test_delete_only_when_asked(target, tmp_path):
    ws = make_workspace(tmp_path / "ws")
    sync(target.options("up", ws))
    target.put_raw("extra/remote-only.txt", b"keep me unless --delete")
    (ws / "images" / "part1" / "file001.jpg").unlink()
    s = sync(target.options("up", ws))
    assert s["deleted"] == 0 and "extra/remote-only.txt" in target.hashes()
    assert "images/part1/file001.jpg" in target.hashes()
    s = sync(target.options("up", ws, delete=True, exclude=["extra/*"]))
    assert s["deleted"] == 1  # excluded keys are never deleted
    assert "images/part1/file001.jpg" not in target.hashes() and "extra/remote-only.txt" in target.hashes()

    down = tmp_path / "down"
    sync(target.options("down", down))
    (down / "local-only.txt").write_text("local")
    assert sync(target.options("down", down))["deleted"] == 0 and (down / "local-only.txt").exists()
    s = sync(target.options("down", down, delete=True))
    assert s["deleted"] == 1 and not (down / "local-only.txt").exists()
    assert tree_hashes(down) == target.hashes()


def test_include_exclude(target, tmp_path):
    ws = make_workspace(tmp_path / "ws")
    s = sync(target.options("up", ws, exclude=["*"], include=["*.jpg"]))
    assert s["copied"] == 6 and all(k.endswith(".jpg") for k in target.hashes())
    s = sync(target.options("up", ws, exclude=["labels/part1/*"]))
    assert s["copied"] == 4 and not any(k.startswith("labels/part1/") for k in target.hashes())
    down = tmp_path / "down"
    s = sync(target.options("down", down, include=["images/part0/*"]))
    assert sorted(tree_hashes(down)) == ["images/part0/file003.jpg", "images/part0/file009.jpg"]


def test_dry_run_changes_nothing_and_prints_the_plan(target, tmp_path):
    ws = make_workspace(tmp_path / "ws")
    sync(target.options("up", ws, exclude=["labels/*"]))
    (ws / "images/part1/file001.jpg").write_bytes(b"new")
    target.put_raw("remote-only.bin", b"r" * 10)
    before_remote, before_local = target.hashes(), tree_hashes(ws)
    lines = []
    s = sync(target.options("up", ws, dry_run=True, delete=True), log=lines.append)
    assert target.hashes() == before_remote and tree_hashes(ws) == before_local
    assert (s["copied"], s["updated"], s["deleted"], s["dry_run"]) == (6, 1, 1, True)
    ops = {p["key"]: (p["op"], p["bytes"]) for p in s["plan"]}
    assert ops["images/part1/file001.jpg"] == ("update", 3) and ops["remote-only.bin"] == ("delete", 0)
    assert any(line.startswith("update") and "images/part1/file001.jpg" in line and "3 bytes" in line for line in lines)
    assert lines[-1].startswith("dry run: would copy 6, update 1, delete 1")
    down = tmp_path / "down"
    sync(target.options("down", down, dry_run=True))
    assert not down.exists() or not any(down.iterdir())


def test_symlinks_to_outside_are_not_followed(target, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    ws = make_workspace(tmp_path / "ws", n=2)
    (ws / "leak").symlink_to(outside)
    (ws / "leak.txt").symlink_to(outside / "secret.txt")
    (ws / "alias.txt").symlink_to(ws / "labels" / "part0" / "file000.txt")  # inside: followed
    warnings = []
    s = sync(target.options("up", ws), warn=warnings.append)
    assert s["copied"] == 3
    keys = set(target.hashes())
    assert "alias.txt" in keys and not any("secret" in k or k.startswith("leak") for k in keys)
    assert sum("symlink to outside" in w for w in warnings) == 2
    # Downloading through a workspace folder that links outside is refused.
    down = tmp_path / "down"
    down.mkdir()
    (down / "labels").symlink_to(outside)
    s = sync(target.options("down", down))
    assert s["failed"] == 1 and "symlink to outside" in s["errors"][0]
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_two_syncs_of_the_same_pair_do_not_run_at_once(target, tmp_path):
    ws = make_workspace(tmp_path / "ws", n=2)
    storage_id = target.uri + ("\0" + target.endpoint if target.endpoint else "")
    with SyncLock(str(ws), storage_id, direction="up"):
        with pytest.raises(StorageError) as e:
            sync(target.options("down", ws))
        assert f"pid {os.getpid()}" in str(e.value) and "another sync" in str(e.value)
        assert target.hashes() == {}
        # The second one may wait instead: it runs once the first releases the lock.
        result = {}
        t = threading.Thread(target=lambda: result.update(sync(target.options("up", ws, lock_timeout=20))))
        t.start()
        time.sleep(0.5)
        assert t.is_alive() and not result
    t.join(30)
    assert result["copied"] == 2


def test_job_process_runs_the_sync_job_kind(target, tmp_path):
    ws = make_workspace(tmp_path / "ws", n=5)
    jd = JobDir(tmp_path / "job").create(
        {
            "kind": "sync",
            "direction": "up",
            "workspace": str(ws),
            "storage": target.uri,
            "endpoint_url": target.endpoint,
        }
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train.storage", str(jd.path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    status = jd.read_status()
    assert status["state"] == "succeeded" and status["outputs"]["copied"] == 5
    assert json.loads((jd.output_dir / "summary.json").read_text())["copied"] == 5
    progress = [e for e in jd.read_events() if e["type"] == "progress"]
    assert progress and progress[-1]["unit"] == "bytes" and progress[-1]["done"] == progress[-1]["total"]
    assert progress[-1]["files_done"] == progress[-1]["files_total"] == 5 and "rate" in progress[-1]
    assert target.hashes() == tree_hashes(ws)
    for k, v in DUMMY_ENV.items():  # credentials are never written to the job folder
        if "KEY" in k:
            assert all(v not in p.read_text() for p in jd.path.rglob("*") if p.is_file())


@pytest.mark.slow
def test_killed_job_then_rerun_completes_without_temp_files(target, tmp_path):
    """SIGKILL a download job midway (no chance to clean up), then run it again."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"big{i}.bin").write_bytes(os.urandom(6 * MiB))
    sync(target.options("up", src))
    down = tmp_path / "down"
    spec = {
        "kind": "sync",
        "direction": "down",
        "workspace": str(down),
        "storage": target.uri,
        "endpoint_url": target.endpoint,
        "concurrency": 1,
    }
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    jd = JobDir(tmp_path / "job1").create(spec)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_cvat_train.storage", str(jd.path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not (down.exists() and any(down.iterdir())):
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    done_before = [k for k in tree_hashes(down) if TEMP_MARK not in k]
    jd2 = JobDir(tmp_path / "job2").create(spec)
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train.storage", str(jd2.path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    outputs = jd2.read_status()["outputs"]
    assert outputs["copied"] == 6 - len(done_before) and outputs["skipped"] == len(done_before)
    assert tree_hashes(down) == tree_hashes(src) and temp_files(down) == []


# --- S3 only ------------------------------------------------------------------------


class CuttableProxy:
    """A TCP proxy in front of the S3 server that can be cut at once (every connection
    reset, listener closed), as when a server dies mid-sync."""

    def __init__(self, upstream: str):
        host, port = upstream.rsplit("//", 1)[1].split(":")
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = "http://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.is_cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets += [client, server]
                if self.is_cut:  # accepted while being cut
                    self._reset(client, server)
                    return
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while data := a.recv(1 << 16):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    @staticmethod
    def _reset(*sockets):
        for s in sockets:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def cut(self):
        with self.lock:
            self.is_cut = True
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() and refuses new connections
            self.listener.close()
            self._reset(*self.sockets)


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["up", "down"])
def test_server_stopped_mid_sync_then_rerun_completes(moto_endpoint, tmp_path, direction):
    bucket = new_bucket(moto_endpoint)
    uri = f"s3://{bucket}/run"
    src = make_workspace(tmp_path / "src", n=30, size=20000)
    (src / "large.bin").write_bytes(os.urandom(12 * MiB))  # multipart (5 MiB parts)
    small_parts = dict(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_attempts=2, concurrency=4)
    if direction == "down":
        sync(SyncOptions("up", str(src), uri, endpoint_url=moto_endpoint, **small_parts))
    ws = src if direction == "up" else tmp_path / "down"
    proxy = CuttableProxy(moto_endpoint)
    n = [0]

    def hook(action):
        n[0] += 1
        if n[0] == 8:
            proxy.cut()

    with pytest.raises(StorageError) as e:
        sync(SyncOptions(direction, str(ws), uri, endpoint_url=proxy.endpoint, on_transfer=hook, **small_parts))
    assert "cannot reach the storage endpoint" in str(e.value)
    first = e.value.summary
    assert 8 <= first["copied"] < 31
    if direction == "down":
        assert temp_files(ws) == []
        present = len(tree_hashes(ws))
    else:  # requests cut after the server stored the object count as present, not copied
        present = s3_client(moto_endpoint).list_objects_v2(Bucket=bucket, Prefix="run/")["KeyCount"]
    assert present >= first["copied"]
    again = sync(SyncOptions(direction, str(ws), uri, endpoint_url=moto_endpoint, **small_parts))
    assert again["copied"] == 31 - present and again["skipped"] == present and again["failed"] == 0
    check = tmp_path / "check"
    sync(SyncOptions("down", str(check), uri, endpoint_url=moto_endpoint))
    assert tree_hashes(check) == tree_hashes(src) == tree_hashes(ws)
    assert temp_files(ws) == [] and temp_files(check) == []
    assert s3_client(moto_endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_multipart_objects_roundtrip_and_checksum(moto_endpoint, tmp_path):
    bucket = new_bucket(moto_endpoint)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "model.pt").write_bytes(os.urandom(11 * MiB))
    opts = dict(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    sync(SyncOptions("up", str(ws), f"s3://{bucket}/m", endpoint_url=moto_endpoint, **opts))
    head = s3_client(moto_endpoint).head_object(Bucket=bucket, Key="m/model.pt")
    assert head["ETag"].strip('"').endswith("-3") and "mtime" in head["Metadata"]
    assert matches_multipart_etag(str(ws / "model.pt"), head["ETag"].strip('"'), 11 * MiB, (5 * MiB,))
    down = tmp_path / "down"
    sync(SyncOptions("down", str(down), f"s3://{bucket}/m", endpoint_url=moto_endpoint, **opts))
    assert tree_hashes(down) == tree_hashes(ws)
    s = sync(SyncOptions("down", str(down), f"s3://{bucket}/m", endpoint_url=moto_endpoint, checksum=True, **opts))
    assert s["skipped"] == 1 and s["updated"] == 0


def test_large_download_in_ranges_and_an_object_replaced_after_listing_fails(moto_endpoint, tmp_path):
    bucket = new_bucket(moto_endpoint)
    c = s3_client(moto_endpoint)
    first, second = os.urandom(12 * MiB), os.urandom(11 * MiB)
    c.put_object(Bucket=bucket, Key="r/a.bin", Body=first)
    c.put_object(Bucket=bucket, Key="r/b.bin", Body=second)
    replaced = os.urandom(11 * MiB)
    # Three 4-5 MiB ranges per object; one transfer at a time, largest first: a.bin, then b.bin,
    # which is replaced (same size) after the listing, so its ranges must not mix two versions.
    opts = dict(multipart_threshold=5 * MiB, download_chunksize=5 * MiB, concurrency=1)

    def replace_b(action):
        if action.key == "a.bin":
            c.put_object(Bucket=bucket, Key="r/b.bin", Body=replaced)

    down = tmp_path / "down"
    s = sync(
        SyncOptions("down", str(down), f"s3://{bucket}/r", endpoint_url=moto_endpoint, on_transfer=replace_b, **opts),
        warn=lambda m: None,
    )
    assert (s["copied"], s["failed"]) == (1, 1) and "b.bin" in s["errors"][0]
    assert (down / "a.bin").read_bytes() == first and not (down / "b.bin").exists() and temp_files(down) == []
    again = sync(SyncOptions("down", str(down), f"s3://{bucket}/r", endpoint_url=moto_endpoint, **opts))
    assert (again["copied"], again["skipped"], again["failed"]) == (1, 1, 0)
    assert (down / "b.bin").read_bytes() == replaced


def test_unsafe_keys_are_refused_and_the_rest_goes_on(moto_endpoint, tmp_path):
    bucket = new_bucket(moto_endpoint)
    c = s3_client(moto_endpoint)
    for key in ("ds/../evil.txt", "ds//abs.txt", "ds/a/../../evil2.txt", "ds/ok.txt", "ds/sub/ok2.txt"):
        c.put_object(Bucket=bucket, Key=key, Body=b"x")
    down = tmp_path / "sub" / "down"
    warnings = []
    s = sync(SyncOptions("down", str(down), f"s3://{bucket}/ds", endpoint_url=moto_endpoint), warn=warnings.append)
    assert (s["copied"], s["refused"], s["failed"]) == (2, 3, 0)
    assert sorted(tree_hashes(tmp_path)) == ["sub/down/ok.txt", "sub/down/sub/ok2.txt"]
    assert sum("refused key" in w for w in warnings) == 3


def test_wrong_endpoint_and_bad_credentials_give_one_clear_message(moto_endpoint, tmp_path):
    from moto import settings

    ws = make_workspace(tmp_path / "ws", n=2)
    bucket = new_bucket(moto_endpoint)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "jupyter_cvat_train", "sync", "up", str(ws), f"s3://{bucket}/x"]
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = "http://127.0.0.1:%d" % s.getsockname()[1]
    p = subprocess.run(cli + ["--endpoint-url", dead], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "cannot reach the storage endpoint" in errors[0] and dead in errors[0]

    p = subprocess.run(
        cli[:-1] + ["s3://no-such-bucket-here/x", "--endpoint-url", moto_endpoint],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1 and "bucket not found" in p.stderr and "Traceback" not in p.stderr

    old = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # the server now checks credentials against its IAM
    try:
        jd = JobDir(tmp_path / "job").create(
            {
                "kind": "sync",
                "direction": "up",
                "workspace": str(ws),
                "storage": f"s3://{bucket}/x",
                "endpoint_url": moto_endpoint,
            }
        )
        p = subprocess.run(
            [sys.executable, "-m", "jupyter_cvat_train.storage", str(jd.path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = old
    status = jd.read_status()
    assert p.returncode == 1 and status["state"] == "failed"
    assert "refused the credentials" in status["message"] and "Traceback" not in p.stderr
    everything = p.stdout + p.stderr + "".join(f.read_text() for f in jd.path.rglob("*") if f.is_file())
    assert DUMMY_ENV["AWS_SECRET_ACCESS_KEY"] not in everything and DUMMY_ENV["AWS_ACCESS_KEY_ID"] not in everything


def test_cli_foreground_sync_and_dry_run(moto_endpoint, tmp_path):
    ws = make_workspace(tmp_path / "ws", n=4)
    bucket = new_bucket(moto_endpoint)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = [sys.executable, "-m", "jupyter_cvat_train", "sync"]
    uri = f"s3://{bucket}/cli"
    p = subprocess.run(
        base + ["up", str(ws), uri, "--endpoint-url", moto_endpoint, "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        p.returncode == 0
        and sum(line.startswith("copy ") for line in p.stdout.splitlines()) == 4
        and "dry run: would copy 4" in p.stdout
    )
    job = tmp_path / "job"
    p = subprocess.run(
        base + ["up", str(ws), uri, "--endpoint-url", moto_endpoint, "--job-dir", str(job)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "copied 4, updated 0, deleted 0, skipped 0, failed 0" in p.stdout and "4/4 files" in p.stderr
    assert JobDir(job).read_status()["outputs"]["copied"] == 4
    p = subprocess.run(
        base + ["down", str(tmp_path / "d"), uri, "--endpoint-url", moto_endpoint, "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0 and "copied 4" in p.stdout and tree_hashes(tmp_path / "d") == tree_hashes(ws)


# --- units --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a\\..\\b", "a/", "", f"a/.x{TEMP_MARK}"]
)
def test_check_key_refuses_keys_outside_the_root(key):
    with pytest.raises(UnsafeKeyError):
        check_key(key)


def test_check_key_accepts_plain_keys():
    assert check_key("images/train/0001.jpg") == "images/train/0001.jpg"
    assert check_key("a..b/c...d") == "a..b/c...d"


def test_filters_semantics():
    only_jpg = Filters(include=["*.jpg"], exclude=["*"])
    assert only_jpg("a/b.jpg") and not only_jpg("a/b.txt")
    assert Filters(include=["*.jpg"])("x.jpg") and not Filters(include=["*.jpg"])("x.png")
    no_cache = Filters(exclude=["cache/*"], include=["cache/keep.txt"])
    assert not no_cache("cache/x") and no_cache("cache/keep.txt") and no_cache("other")
    assert Filters()("anything")


def test_walk_skips_temp_files_and_link_cycles(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.txt").write_text("x")
    (tmp_path / "a" / "loop").symlink_to(tmp_path)
    (tmp_path / f".f.txt.1.abcd{TEMP_MARK}").write_text("partial")
    temps = []
    keys = sorted(e.key for e in walk(tmp_path, temp_files=temps))
    assert keys == ["a/f.txt"] and len(temps) == 1
