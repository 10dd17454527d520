"""The server side of the panel's Sync section, on a real Jupyter server (pytest-jupyter)
with a real S3 endpoint (moto's server on 127.0.0.1) and real sync job processes:
POST storage/check (identity, endpoint, bucket, list, write; file:// folders; the
refusals), the preview as a dry-run sync job whose plan GET jobs/{id}/plan serves, and
a second sync of the same pair refused while the first runs. Every reply is checked
against the API contract."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
from test_api_contract import call, check_request
from traitlets.config import Config

pytest_plugins = ["pytest_jupyter.jupyter_server"]

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-do-not-show",
    "AWS_DEFAULT_REGION": "us-east-1",
}
NO_CREDENTIALS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


@pytest.fixture(scope="module")
def moto_endpoint():
    """A real S3 HTTP API on loopback, with dummy credentials in the environment (the
    Jupyter server of pytest-jupyter runs in this process and reads them)."""
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


@pytest.fixture(scope="module")
def silent_endpoint():
    """An endpoint that accepts connections and never answers (a sync there stays
    running until cancelled): ``(url, stop)``."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % srv.getsockname()[1]
    stop.set()
    t.join(5)
    for s in held:
        s.close()
    srv.close()


@pytest.fixture(scope="module")
def dead_endpoint():
    """An endpoint nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "http://127.0.0.1:%d" % s.getsockname()[1]


@pytest.fixture
def jp_server_config(moto_endpoint, silent_endpoint, dead_endpoint):
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True}},
            "CvatTrainApp": {
                "cancel_grace_seconds": 1.0,
                "poll_interval": 0.1,
                "allowed_endpoint_urls": [moto_endpoint, silent_endpoint, dead_endpoint],
            },
        }
    )


def s3(endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def new_bucket(endpoint) -> str:
    name = f"bkt-{uuid.uuid4().hex[:12]}"
    s3(endpoint).create_bucket(Bucket=name)
    return name


def keys(endpoint, bucket) -> dict[str, int]:
    listing = s3(endpoint).list_objects_v2(Bucket=bucket)
    return {o["Key"]: o["Size"] for o in listing.get("Contents", [])}


def steps(check: dict) -> dict[str, dict]:
    return {s["name"]: s for s in check["steps"]}


async def wait_final(jp_fetch, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        code, job = await call(jp_fetch, "get", "/jobs/{job_id}", job_id=job_id)
        assert code == 200
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.2)


@pytest.fixture
def ws(jp_root_dir) -> Path:
    w = jp_root_dir / "ws"
    (w / "images").mkdir(parents=True)
    for i in range(3):
        (w / "images" / f"im{i}.jpg").write_bytes(bytes([i]) * (100 + i))
    (w / "labels.txt").write_text("cell\n")
    return w


# -- POST storage/check ----------------------------------------------------------------------


async def test_check_of_a_reachable_bucket_names_the_identity_and_leaves_nothing(jp_fetch, moto_endpoint):
    bucket = new_bucket(moto_endpoint)
    body = {"storage": f"s3://{bucket}/exports", "endpoint_url": moto_endpoint}
    check_request("post", "/storage/check", body)
    code, check = await call(jp_fetch, "post", "/storage/check", body=body)
    assert code == 200 and check["ok"], check
    assert [s["status"] for s in check["steps"]] == ["ok"] * 5
    assert list(steps(check)) == ["credentials", "endpoint", "bucket", "list", "write"]
    identity = check["identity"]
    assert identity["method"] == "env" and "AWS_ACCESS_KEY_ID" in identity["source"]
    assert identity["access_key_hint"] == "…y-id" and identity["region"] == "us-east-1"
    text = json.dumps(check)
    assert DUMMY_ENV["AWS_SECRET_ACCESS_KEY"] not in text and DUMMY_ENV["AWS_ACCESS_KEY_ID"] not in text
    assert keys(moto_endpoint, bucket) == {}  # the probe object was removed

    code, check = await call(jp_fetch, "post", "/storage/check", body={**body, "write": False})
    assert code == 200 and steps(check)["write"]["status"] == "skipped"


async def test_check_failures_say_what_is_wrong_and_the_fix(jp_fetch, moto_endpoint, dead_endpoint, monkeypatch):
    code, check = await call(
        jp_fetch,
        "post",
        "/storage/check",
        body={"storage": "s3://no-such-bucket-here/x", "endpoint_url": moto_endpoint},
    )
    s = steps(check)
    assert code == 200 and not check["ok"]
    assert s["endpoint"]["status"] == "ok" and s["bucket"]["status"] == "failed"
    assert "does not exist" in s["bucket"]["message"] and "Create the bucket" in s["bucket"]["fix"]
    assert s["list"]["status"] == s["write"]["status"] == "skipped"

    t0 = time.monotonic()
    code, check = await call(
        jp_fetch, "post", "/storage/check", body={"storage": "s3://b/x", "endpoint_url": dead_endpoint}
    )
    s = steps(check)
    assert code == 200 and s["endpoint"]["status"] == "failed" and dead_endpoint in s["endpoint"]["message"]
    assert "endpoint URL" in s["endpoint"]["fix"] and time.monotonic() - t0 < 60

    code, err = await call(
        jp_fetch, "post", "/storage/check", body={"storage": "s3://b/x", "endpoint_url": "http://evil.example:9000"}
    )
    assert code == 403 and "allowed_endpoint_urls" in err["message"]
    for body in ({"storage": "ftp://x/y"}, {"storage": 7}, {"storage": "s3://b/x", "write": "yes"}, [1]):
        assert (await call(jp_fetch, "post", "/storage/check", body=body))[0] == 400, body

    for name in NO_CREDENTIALS_ENV:  # the server runs in this process: its credential chain is now empty
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    code, check = await call(
        jp_fetch, "post", "/storage/check", body={"storage": "s3://b/x", "endpoint_url": moto_endpoint}
    )
    s = steps(check)
    assert code == 200 and s["credentials"]["status"] == "failed" and check["identity"]["found"] is False
    assert "AWS_ACCESS_KEY_ID" in s["credentials"]["fix"] and "never typed into the browser" in s["credentials"]["fix"]
    assert all(s[n]["status"] == "skipped" for n in ("endpoint", "bucket", "list", "write"))


async def test_refused_credentials_are_named(jp_fetch, moto_endpoint):
    from moto import settings

    bucket = new_bucket(moto_endpoint)
    old = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # moto now checks the key against its IAM: unknown
    try:
        code, check = await call(
            jp_fetch, "post", "/storage/check", body={"storage": f"s3://{bucket}", "endpoint_url": moto_endpoint}
        )
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = old
    s = steps(check)
    assert code == 200 and s["credentials"]["status"] == "failed", check
    assert "refused the credentials" in s["credentials"]["message"] and "AWS_ACCESS_KEY_ID" in s["credentials"]["fix"]


async def test_check_of_file_folders_and_workspace_overlap(jp_fetch, jp_root_dir, ws):
    store = jp_root_dir / "store"
    store.mkdir()
    code, check = await call(jp_fetch, "post", "/storage/check", body={"storage": f"file://{store}", "workspace": "ws"})
    assert code == 200 and check["ok"] and list(steps(check)) == ["folder", "list", "write", "workspace"], check
    assert check["identity"]["source"] == "the Jupyter server's user" and os.listdir(store) == []

    code, check = await call(
        jp_fetch, "post", "/storage/check", body={"storage": f"file://{ws}/images", "workspace": "ws"}
    )
    s = steps(check)
    assert code == 200 and not check["ok"] and s["workspace"]["status"] == "failed"
    assert "contain each other" in s["workspace"]["message"]

    code, check = await call(jp_fetch, "post", "/storage/check", body={"storage": f"file://{jp_root_dir}/missing"})
    assert code == 200 and steps(check)["folder"]["status"] == "failed"
    outside = jp_root_dir.parent / "outside-store"
    outside.mkdir(exist_ok=True)
    code, err = await call(jp_fetch, "post", "/storage/check", body={"storage": f"file://{outside}"})
    assert code == 403 and err["message"].startswith("storage")


# -- the preview: a dry-run sync job and its plan ------------------------------------------------


async def test_preview_plan_is_served_by_pages_and_changes_nothing(jp_fetch, moto_endpoint, ws):
    bucket = new_bucket(moto_endpoint)
    s3(moto_endpoint).put_object(Bucket=bucket, Key="run/stale.bin", Body=b"x" * 10)
    spec = {
        "kind": "sync",
        "direction": "up",
        "workspace": "ws",
        "storage": f"s3://{bucket}/run",
        "endpoint_url": moto_endpoint,
        "delete": True,
        "dry_run": True,
    }
    check_request("post", "/jobs", spec)
    code, job = await call(jp_fetch, "post", "/jobs", body=spec)
    assert code == 201
    job = await wait_final(jp_fetch, job["id"])
    assert job["state"] == "succeeded", job
    assert "plan" not in job["outputs"] and job["outputs"]["copied"] == 4 and job["outputs"]["deleted"] == 1
    assert keys(moto_endpoint, bucket) == {"run/stale.bin": 10}  # nothing moved

    code, page = await call(jp_fetch, "get", "/jobs/{job_id}/plan", job_id=job["id"])
    assert code == 200 and page["complete"] and page["total"] == 5
    assert (page["copied"], page["updated"], page["deleted"], page["bytes"]) == (4, 0, 1, 100 + 101 + 102 + 5)
    ops = {a["key"]: (a["op"], a["bytes"]) for a in page["actions"]}
    assert ops["images/im2.jpg"] == ("copy", 102) and ops["stale.bin"] == ("delete", 0)
    assert [a["op"] for a in page["actions"]][-1] == "delete"  # deletes after transfers

    code, part = await call(jp_fetch, "get", "/jobs/{job_id}/plan", job_id=job["id"], params={"offset": 1, "limit": 2})
    assert code == 200 and part["actions"] == page["actions"][1:3] and not part["complete"]
    for params in ({"offset": "x"}, {"limit": 0}, {"limit": 5000}, {"offset": -1}):
        assert (await call(jp_fetch, "get", "/jobs/{job_id}/plan", job_id=job["id"], params=params))[0] == 400
    assert (await call(jp_fetch, "get", "/jobs/{job_id}/plan", job_id="no-such-job"))[0] == 404

    # a real sync keeps no plan; a job of another kind has none
    code, real = await call(jp_fetch, "post", "/jobs", body={**spec, "dry_run": False, "delete": False})
    real = await wait_final(jp_fetch, real["id"])
    assert real["state"] == "succeeded" and real["outputs"]["copied"] == 4
    code, err = await call(jp_fetch, "get", "/jobs/{job_id}/plan", job_id=real["id"])
    assert code == 409 and "not a preview" in err["message"]


async def test_second_sync_of_a_pair_is_refused_naming_the_running_one(jp_fetch, silent_endpoint, ws):
    spec = {
        "kind": "sync",
        "direction": "up",
        "workspace": "ws",
        "storage": "s3://bucket/prefix",
        "endpoint_url": silent_endpoint,
    }
    code, first = await call(jp_fetch, "post", "/jobs", body=spec)
    assert code == 201
    try:
        for again in (spec, {**spec, "workspace": "ws/", "storage": "S3://bucket/prefix/", "direction": "down"}):
            code, err = await call(jp_fetch, "post", "/jobs", body=again)
            assert code == 409, err
            assert first["id"] in err["message"] and err["details"]["job_id"] == first["id"]
        code, plan = await call(jp_fetch, "get", "/jobs/{job_id}/plan", job_id=first["id"])
        assert code == 409 and "no plan" in plan["message"]
        # a preview of the same pair, and a sync of another pair, are not refused
        code, preview = await call(jp_fetch, "post", "/jobs", body={**spec, "dry_run": True})
        assert code == 201
        code, other = await call(jp_fetch, "post", "/jobs", body={**spec, "storage": "s3://bucket/other"})
        assert code == 201
    finally:
        for job_id in [first["id"]] + [j["id"] for j in (locals().get("preview"), locals().get("other")) if j]:
            await call(jp_fetch, "delete", "/jobs/{job_id}", job_id=job_id)
    assert (await wait_final(jp_fetch, first["id"]))["state"] == "cancelled"
