"""Sync jobs attacked through the HTTP API of a real Jupyter server with a token:
storage URIs in many spellings, overlapping folders, the runs root, missing storage,
endpoints the server must not sign requests for."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from test_security_storage import escaping_spellings
from test_server_jobs import api
from traitlets.config import Config

pytest_plugins = ["pytest_jupyter.jupyter_server"]

ALLOWED = "http://Minio.Example:9000/"


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True}},
            "CvatTrainApp": {"cancel_grace_seconds": 1.0, "poll_interval": 0.1, "allowed_endpoint_urls": [ALLOWED]},
        }
    )


@pytest.fixture
def victim(jp_root_dir) -> Path:
    """A folder outside the server root with a file that must survive."""
    v = jp_root_dir.parent / "victim"
    v.mkdir(exist_ok=True)
    (v / "precious.txt").write_text("must survive")
    return v


@pytest.fixture
def ws(jp_root_dir) -> Path:
    w = jp_root_dir / "ws"
    w.mkdir()
    (w / "a.txt").write_text("a")
    return w


async def jobs_created(jp_fetch) -> list:
    return (await api(jp_fetch, "jobs"))[1]["jobs"]


def job_spec(root: Path, job: dict) -> dict:
    return json.loads((root / job["dir"] / "job.json").read_text())


async def test_storage_outside_the_root_is_refused_in_every_spelling(jp_fetch, jp_root_dir, victim, ws):
    (jp_root_dir / "link-out").symlink_to(victim)
    root = Path(os.path.realpath(jp_root_dir))
    spellings = escaping_spellings(root, victim) + [
        f"file://{root}/%252e%252e/victim",  # decoded once: a folder named '%2e%2e' inside the root (missing)
        f"file://evil.example{victim}",
        f"file://{victim}?x",
        f"file://{root}/%00/x",
        "file:victim",
        "file://" + "/a" * 3000,
    ]
    for storage in spellings:
        for direction in ("down", "up"):
            code, err = await api(
                jp_fetch,
                "jobs",
                method="POST",
                body={"kind": "sync", "direction": direction, "workspace": "ws", "storage": storage, "delete": True},
            )
            assert code in (400, 403, 404), (storage, code, err)
            assert set(err) == {"message", "code", "details"} and err["message"].startswith("storage")
            assert len(err["message"]) < 600 and "Traceback" not in json.dumps(err)
    assert await jobs_created(jp_fetch) == []
    assert sorted(os.listdir(victim)) == ["precious.txt"] and sorted(os.listdir(ws)) == ["a.txt"]


async def test_spellings_of_a_folder_inside_the_root_are_stored_canonical(jp_fetch, jp_root_dir, ws):
    root = Path(os.path.realpath(jp_root_dir))
    (root / "store").mkdir()
    (root / "alias").symlink_to(root / "store")
    for storage in (
        f"FILE://{root}/store/",
        f"file:{root}/store",
        f"file://localhost{root}/st%6Fre",
        f"File://LOCALHOST{root}/alias/",
    ):
        code, job = await api(
            jp_fetch,
            "jobs",
            method="POST",
            body={"kind": "sync", "direction": "up", "workspace": "ws", "storage": storage, "dry_run": True},
        )
        assert code == 201, (storage, job)
        assert job_spec(jp_root_dir, job)["storage"] == f"file://{root}/store"


@pytest.mark.parametrize(
    "workspace,storage,word",
    [
        (".", "s3://bkt/x", "cvat-train-runs"),  # the server root holds the runs root
        (".", "file://{root}/store", "overlap"),
        ("cvat-train-runs/..", "file://{root}/store", "'..'"),
        ("ws", "file://{root}/ws/backup", "overlap"),  # storage inside the workspace
        ("ws/inner", "file://{root}/ws", "overlap"),  # workspace inside the storage
        ("ws", "file://{root}/ws", "overlap"),
        ("ws", "file://{root}", "overlap"),
    ],
)
async def test_overlapping_folders_and_the_runs_root_are_refused(jp_fetch, jp_root_dir, ws, workspace, storage, word):
    root = Path(os.path.realpath(jp_root_dir))
    (root / "store").mkdir()
    (ws / "backup").mkdir()
    (ws / "inner").mkdir()
    for direction in ("up", "down"):
        code, err = await api(
            jp_fetch,
            "jobs",
            method="POST",
            body={
                "kind": "sync",
                "direction": direction,
                "workspace": workspace,
                "storage": storage.format(root=root),
                "delete": True,
            },
        )
        assert code in (400, 403) and word in err["message"], err
    assert await jobs_created(jp_fetch) == []


async def test_a_missing_storage_folder_is_refused(jp_fetch, jp_root_dir, ws):
    code, err = await api(
        jp_fetch,
        "jobs",
        method="POST",
        body={
            "kind": "sync",
            "direction": "down",
            "workspace": "ws",
            "storage": f"file://{jp_root_dir}/stor-typo",
            "delete": True,
        },
    )
    assert code == 404 and "does not exist" in err["message"] and "create it" in err["message"]
    assert sorted(os.listdir(ws)) == ["a.txt"]


async def test_endpoints_come_from_the_servers_configuration(jp_fetch, ws, monkeypatch):
    body = {"kind": "sync", "direction": "up", "workspace": "ws", "storage": "s3://bkt/x", "dry_run": True}
    for endpoint in (
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:22",
        "http://localhost:8888",
        "https://attacker.example",
        "http://minio.example:9001",
        "http://[::1]:9000",
    ):
        code, err = await api(jp_fetch, "jobs", method="POST", body={**body, "endpoint_url": endpoint})
        assert code == 403 and "allowed_endpoint_urls" in err["message"], (endpoint, err)
    for endpoint in ("ftp://minio.example", "http://u:p@minio.example:9000", "http://minio.example:9000/?a=b", 7):
        code, err = await api(jp_fetch, "jobs", method="POST", body={**body, "endpoint_url": endpoint})
        assert code == 400 and "endpoint_url" in err["message"], (endpoint, err)
    assert await jobs_created(jp_fetch) == []
    # the allow-list, in any spelling of the same URL
    code, job = await api(jp_fetch, "jobs", method="POST", body={**body, "endpoint_url": "HTTP://minio.example:9000"})
    assert code == 201 and job_spec_endpoint(job, ws) == "http://minio.example:9000"
    # the user's own configured endpoint
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9999")
    code, job = await api(jp_fetch, "jobs", method="POST", body={**body, "endpoint_url": "http://127.0.0.1:9999/"})
    assert code == 201, job


def job_spec_endpoint(job: dict, ws: Path) -> str:
    return json.loads((ws.parent / job["dir"] / "job.json").read_text())["endpoint_url"]


async def test_an_allowed_endpoint_passes_the_check_again_when_the_job_starts(jp_fetch, ws):
    code, job = await api(
        jp_fetch,
        "jobs",
        method="POST",
        body={
            "kind": "sync",
            "direction": "up",
            "workspace": "ws",
            "storage": "s3://bkt/x",
            "dry_run": True,
            "endpoint_url": ALLOWED,
        },
    )
    assert code == 201
    for _ in range(300):
        code, now = await api(jp_fetch, "jobs", job["id"])
        if now["state"] not in ("queued", "running"):
            break
        await asyncio.sleep(0.1)
    assert "not started" not in now["message"], now
