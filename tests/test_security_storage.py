"""Storage sync attacked through the core and the CLI: storage URIs in many spellings,
deletes on incomplete listings, overlapping folders, remote error text, files changed
while uploaded, the lock's key, long names. Real folders, real subprocesses, moto's
real S3 server on loopback."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_storage_sync import (  # noqa: F401
    CuttableProxy,
    make_workspace,
    moto_endpoint,
    new_bucket,
    s3_client,
    tree_hashes,
)

from jupyter_cvat_train.storage import StorageError, SyncOptions, open_storage, sync
from jupyter_cvat_train.storage.local import TEMP_MARK, temp_path_for
from jupyter_cvat_train.storage.location import (
    LocationError,
    normalize_endpoint_url,
    parse_storage_uri,
)
from jupyter_cvat_train.storage.lock import SyncLock

REPO = Path(__file__).resolve().parents[1]
MiB = 1 << 20


def cli_env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


# --- one parse, one value: the spelling never changes the place ---------------------------


def escaping_spellings(root: Path, victim: Path) -> list[str]:
    """URIs that all name ``victim`` (outside ``root``), or try to by '..'."""
    r, v = str(root), str(victim)
    return [
        f"FILE://{v}",
        f"File://{v}",
        f"file:{v}",
        f"file://localhost{v}",
        f"FILE://LOCALHOST{v}/",
        f"file://{v}/",
        f"file:////{v.lstrip('/')}",
        f"file://{r}/%2e%2e/{victim.name}",
        f"file://{r}/%2E%2E/{victim.name}",
        f"fIlE://{r}%2F..%2F{victim.name}",
        f"file://{r}/sub/../../{victim.name}",
        f"file://{r}/./%2e./{victim.name}",
        f"file://{r}/link-out",
        f"file://{r}/link-out/",
        f"file://{r}/link-out/%2e",
    ]


def test_every_spelling_parses_to_the_place_the_backend_opens(tmp_path):
    root, victim = tmp_path / "root", tmp_path / "victim"
    root.mkdir()
    victim.mkdir()
    (root / "link-out").symlink_to(victim)
    for uri in escaping_spellings(root, victim):
        try:
            loc = parse_storage_uri(uri)
        except LocationError as e:
            assert e.status == 403 and "'..'" in str(e), (uri, e)
            continue
        # What a check sees is what is opened: the victim's real path, never a path under root.
        assert loc.path == victim.resolve(), uri
        assert open_storage(uri).root == str(victim.resolve())
        assert parse_storage_uri(loc.uri) == loc
    store = root / "st%re"  # a literal '%' in a name: decoded once, re-encoded in the canonical URI
    store.mkdir()
    for uri in (f"file://{root}/st%25re", f"FILE://localhost{root}/st%25re/", f"file:{root}/st%25re"):
        loc = parse_storage_uri(uri)
        assert loc.path == store and loc.uri == f"file://{root}/st%25re" and parse_storage_uri(loc.uri) == loc
    # double encoding is decoded once: %252e is the name '%2e', inside root, never '.'
    assert parse_storage_uri(f"file://{root}/%252e%252e/x").path == root / "%2e%2e" / "x"


@pytest.mark.parametrize(
    "uri,status",
    [
        ("file://evil.example/etc", 400),
        ("file://localhost:80/etc", 400),
        ("file:relative/path", 400),
        ("file:///tmp/x?delete=1", 400),
        ("file:///tmp/x#frag", 400),
        ("file:///tmp/a%00b", 400),
        ("file:///tmp/a\x00b", 400),
        ("file:///tmp/%0a", 400),
        ("file:///tmp/%ff%fe", 400),
        (" file:///tmp", 400),
        ("file:///tmp/x ", 400),
        ("s3://AKIAUSER:hunter2pw@bucket/x", 400),
        ("http://host/x", 400),
        ("/tmp/x", 400),
        ("s3://bucket/a/../b", 403),
        ("s3://bucket/a//b", 403),
        ("s3://", 400),
        ("s3://bu:cket/x", 400),
        ("file:///" + "a/" * 3000, 400),
        ("", 400),
        (None, 400),
    ],
)
def test_malformed_or_escaping_uris_are_refused_with_a_short_message(uri, status):
    with pytest.raises(LocationError) as e:
        parse_storage_uri(uri)
    assert e.value.status == status and len(str(e.value)) < 400
    assert "hunter2pw" not in str(e.value) and "AKIAUSER" not in str(e.value)


def test_s3_spellings_share_one_canonical_location():
    locs = {parse_storage_uri(u) for u in ("s3://bkt/data/set", "S3://bkt/data/set/", "s3://bkt//data/set//")}
    assert len(locs) == 1 and next(iter(locs)).uri == "s3://bkt/data/set"
    assert parse_storage_uri("s3://bkt/a%2e%2e").prefix == "a%2e%2e"  # keys are literal, as in the AWS CLI


# --- deletes only on sound listings -------------------------------------------------------


def stored(store: Path) -> dict:
    return tree_hashes(store)


@pytest.mark.parametrize("breakage", ["dangling-link", "link-loop"])
def test_delete_refused_when_a_workspace_folder_cannot_be_read(tmp_path, breakage):
    ws = make_workspace(tmp_path / "ws", n=4)
    mount = ws / ".disk" / "data"
    mount.mkdir(parents=True)
    (mount / "big.bin").write_bytes(b"model" * 100)
    (ws / "data").symlink_to(mount)
    store = tmp_path / "store"
    store.mkdir()
    uri = f"file://{store}"
    assert sync(SyncOptions("up", str(ws), uri))["copied"] == 6
    before = stored(store)
    # The disk behind ws/data goes away (or a link loop appears): its files look absent.
    shutil.rmtree(ws / ".disk")
    if breakage == "link-loop":
        (ws / "data").unlink()
        (ws / "data").symlink_to(ws / "loop")
        (ws / "loop").symlink_to(ws / "data")
    warnings = []
    s = sync(SyncOptions("up", str(ws), uri, delete=True), warn=warnings.append)
    assert s["deleted"] == 0 and stored(store) == before
    assert s["delete_refused"] and "'data'" in s["delete_refused"] and "nothing deleted" in s["delete_refused"]
    assert any("could not be read" in w for w in warnings)
    # through the CLI: exit status 1, one message naming the folder, files kept
    p = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train", "sync", "up", str(ws), uri, "--delete", "--no-progress"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1 and "'data'" in p.stderr and "Traceback" not in p.stderr
    assert stored(store) == before


def test_delete_refused_when_the_storage_listing_is_incomplete(tmp_path):
    store = tmp_path / "store"
    (store / "sub").mkdir(parents=True)
    (store / "sub" / "a.txt").write_text("a")
    (store / "gone").symlink_to(store / "nowhere")
    down = tmp_path / "down"
    down.mkdir()
    (down / "local.txt").write_text("mine")
    s = sync(SyncOptions("down", str(down), f"file://{store}", delete=True), warn=lambda m: None)
    assert s["copied"] == 1 and s["deleted"] == 0 and (down / "local.txt").read_text() == "mine"
    assert "storage" in s["delete_refused"] and "'gone'" in s["delete_refused"]


def test_delete_refused_for_a_folder_without_read_permission(tmp_path):
    """Permission denied for real: tests run as root, so the CLI runs without the
    capabilities that let root read any folder (setpriv drops CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH)."""
    ws = make_workspace(tmp_path / "ws", n=4)
    (ws / "private").mkdir()
    (ws / "private" / "notes.txt").write_text("kept")
    store = tmp_path / "store"
    store.mkdir()
    sync(SyncOptions("up", str(ws), f"file://{store}"))
    before = stored(store)
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: no way to make a folder unreadable")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    os.chmod(ws / "private", 0o000)
    try:
        p = subprocess.run(
            prefix
            + [
                sys.executable,
                "-m",
                "jupyter_cvat_train",
                "sync",
                "up",
                str(ws),
                f"file://{store}",
                "--delete",
                "--no-progress",
            ],
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.chmod(ws / "private", 0o755)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "'private'" in p.stderr and "Permission denied" in p.stderr and "Traceback" not in p.stderr
    assert stored(store) == before and "private/notes.txt" in before


def test_a_missing_storage_folder_is_an_error_not_an_empty_listing(tmp_path):
    ws = make_workspace(tmp_path / "ws", n=3)
    before = tree_hashes(ws)
    for direction in ("down", "up"):
        with pytest.raises(StorageError) as e:
            sync(SyncOptions(direction, str(ws), f"file://{tmp_path}/stor-typo", delete=True))
        assert "does not exist" in str(e.value) and "stor-typo" in str(e.value)
    assert tree_hashes(ws) == before and not (tmp_path / "stor-typo").exists()


@pytest.mark.parametrize("storage_of", [lambda ws: ws / "backup", lambda ws: ws.parent, lambda ws: ws])
def test_workspace_and_storage_that_overlap_are_refused(tmp_path, storage_of):
    ws = make_workspace(tmp_path / "ws", n=3)
    store = storage_of(ws)
    store.mkdir(exist_ok=True)
    before = tree_hashes(tmp_path)
    for direction in ("up", "down"):
        for uri in (f"file://{store}", f"FILE://{store}/"):
            with pytest.raises(StorageError, match="overlap"):
                sync(SyncOptions(direction, str(ws), uri, delete=True))
    assert tree_hashes(tmp_path) == before


def test_a_workspace_holding_the_jobs_own_folder_is_refused(tmp_path):
    ws = make_workspace(tmp_path / "ws", n=3)
    store = tmp_path / "store"
    store.mkdir()
    before = tree_hashes(ws)
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter_cvat_train",
            "sync",
            "down",
            str(ws),
            f"file://{store}",
            "--delete",
            "--job-dir",
            str(ws / "jobs" / "j1"),
            "--no-progress",
        ],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1 and "contains" in p.stderr and "Traceback" not in p.stderr
    assert {k: v for k, v in tree_hashes(ws).items() if not k.startswith("jobs/")} == before


# --- the lock: one key per place ---------------------------------------------------------


def test_the_lock_is_keyed_by_the_canonical_location(tmp_path):
    ws = make_workspace(tmp_path / "ws", n=2)
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "alias").symlink_to(store)
    (tmp_path / "ws-alias").symlink_to(ws)
    with SyncLock(str(ws), parse_storage_uri(f"file://{store}").uri, direction="up"):
        for w, uri in (
            (ws, f"FILE://{store}/"),
            (ws, f"file://localhost{tmp_path}/alias"),
            (tmp_path / "ws-alias", f"file:{store}"),
            (ws, f"file://{tmp_path}/st%6Fre"),
        ):
            with pytest.raises(StorageError, match="another sync"):
                sync(SyncOptions("up", str(w), uri))
    assert stored(store) == {}


def test_endpoint_urls_are_normalized_for_the_lock_and_the_allow_list():
    assert normalize_endpoint_url("HTTP://MinIO.Example:80/") == "http://minio.example"
    assert normalize_endpoint_url("https://h:9000/p/") == "https://h:9000/p"
    for bad in ("ftp://h", "http://u:p@h", "http://h/?x=1", "http://h:99999", "h:9000", ""):
        with pytest.raises(LocationError):
            normalize_endpoint_url(bad)


# --- names at the file-system limit ---------------------------------------------------------


def test_temp_names_are_short_whatever_the_final_name():
    assert len(os.path.basename(temp_path_for("/x/" + "n" * 255))) < 48
    assert TEMP_MARK in temp_path_for("/x/y")


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_a_255_byte_file_name_syncs_both_ways(kind, tmp_path, request):
    ws = tmp_path / "ws"
    ws.mkdir()
    name = "é" * 127 + "x"  # 255 bytes in UTF-8, the longest name a Linux folder takes
    assert len(name.encode()) == 255
    (ws / name).write_bytes(b"long name")
    if kind == "s3":
        endpoint = request.getfixturevalue("moto_endpoint")
        uri, kw = f"s3://{new_bucket(endpoint)}/n", {"endpoint_url": endpoint}
    else:
        (tmp_path / "store").mkdir()
        uri, kw = f"file://{tmp_path}/store", {}
    assert sync(SyncOptions("up", str(ws), uri, **kw))["copied"] == 1
    s = sync(SyncOptions("down", str(tmp_path / "down"), uri, **kw))
    assert (s["copied"], s["failed"]) == (1, 0) and (tmp_path / "down" / name).read_bytes() == b"long name"


# --- a file that changes while it is uploaded -------------------------------------------------


def test_a_file_changed_after_listing_is_stored_with_its_new_content_and_mtime(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a-big.bin").write_bytes(b"a" * 5000)
    (ws / "b.txt").write_bytes(b"old")
    store = tmp_path / "store"
    store.mkdir()

    def change_b(action):
        if action.key == "a-big.bin":  # the largest goes first; b.txt was listed before this change
            (ws / "b.txt").write_bytes(b"new and longer")
            t = time.time() + 30
            os.utime(ws / "b.txt", (t, t))

    s = sync(SyncOptions("up", str(ws), f"file://{store}", concurrency=1, on_transfer=change_b))
    assert (s["copied"], s["failed"]) == (2, 0)
    assert (store / "b.txt").read_bytes() == b"new and longer"
    assert abs((store / "b.txt").stat().st_mtime_ns - (ws / "b.txt").stat().st_mtime_ns) < 1000
    assert sync(SyncOptions("up", str(ws), f"file://{store}"))["skipped"] == 2


class ChangingProxy(CuttableProxy):
    """A TCP proxy to the S3 server that runs ``on_part_2()`` once, when the second
    UploadPart request of a multipart upload passes: with one transfer at a time, the
    first part has then been read and stored."""

    def __init__(self, upstream, on_part_2):
        self.on_part_2, self.fired = on_part_2, threading.Event()
        super().__init__(upstream)

    def _pump(self, a, b):
        try:
            while data := a.recv(1 << 16):
                if not self.fired.is_set() and re.search(rb"[?&]partNumber=2[& ]", data):
                    self.fired.set()
                    self.on_part_2()
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass


def test_a_file_changed_during_a_multipart_upload_is_not_kept_torn(moto_endpoint, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    f = ws / "model.pt"
    f.write_bytes(b"\x01" * (11 * MiB))
    final = b"\x02" * MiB + b"\x01" * (10 * MiB)

    def rewrite_head():  # same size, mtime 1 ms later (still before the upload ends)
        mtime = f.stat().st_mtime_ns
        with open(f, "r+b") as fh:
            fh.write(b"\x02" * MiB)
        os.utime(f, ns=(mtime + 1_000_000, mtime + 1_000_000))

    proxy = ChangingProxy(moto_endpoint, rewrite_head)
    bucket = new_bucket(moto_endpoint)
    opts = dict(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, concurrency=1, max_attempts=2)
    try:
        s = sync(SyncOptions("up", str(ws), f"s3://{bucket}/m", endpoint_url=proxy.endpoint, **opts))
        assert proxy.fired.is_set() and (s["copied"], s["failed"]) == (1, 0)
        c = s3_client(moto_endpoint)
        assert c.get_object(Bucket=bucket, Key="m/model.pt")["Body"].read() == final
        head = c.head_object(Bucket=bucket, Key="m/model.pt")
        assert abs(float(head["Metadata"]["mtime"]) - f.stat().st_mtime_ns / 1e9) < 2e-6  # the stored snapshot's
        again = sync(SyncOptions("up", str(ws), f"s3://{bucket}/m", endpoint_url=moto_endpoint, **opts))
        assert again["skipped"] == 1
    finally:
        proxy.cut()


# --- remote error text is summarized, never echoed -------------------------------------------


class HostileS3(http.server.BaseHTTPRequestHandler):
    """Answers every request with an S3-style error carrying text the server chose."""

    def _answer(self):
        body = (
            b"<?xml version='1.0'?><Error><Code>Invalid Request <b>" + b"A" * 300 + b"</b></Code>"
            b"<Message>INTERNAL-SECRET-TEXT from the metadata service " + b"x" * 5000 + b"</Message></Error>"
        )
        self.send_response(400)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer

    def log_message(self, *args):
        pass


def test_remote_error_text_is_not_echoed(tmp_path, monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostileS3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = "http://127.0.0.1:%d" % server.server_address[1]
        with pytest.raises(StorageError) as e:
            sync(SyncOptions("down", str(tmp_path / "d"), "s3://bkt/x", endpoint_url=endpoint, max_attempts=1))
        message = str(e.value)
        assert "INTERNAL-SECRET-TEXT" not in message and "<b>" not in message and len(message) < 400
        assert "HTTP 400" in message
    finally:
        server.shutdown()
