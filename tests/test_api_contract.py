"""The server's real replies match its one API contract, jupyter_cvat_train/server/api-schema.json.

The contract is an OpenAPI 3.1 document: the routes under ``{base_url}cvat-train/api/``,
their request bodies, every documented status with its JSON body (errors are
``{message, code, details}``), and the websocket messages of ``jobs/{job_id}/stream``
(``x-websocket``). The panel's TypeScript types are generated from it (src/api/schema.ts).

Checked here: the documented routes and methods are exactly the server's handlers; the
enums follow the core (job states, kinds, template tasks); src/api/schema.ts is current; and
a real Jupyter server (pytest-jupyter) answers every route, on success and on error, with a
documented status and a body valid for that status, and streams messages valid for the
stream's schema.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from test_server_jobs import long_training
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

import jupyter_cvat_train
from jupyter_cvat_train.datasets import generate_sample

pytest_plugins = ["pytest_jupyter.jupyter_server"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = Path(jupyter_cvat_train.__file__).parent / "server" / "api-schema.json"
DOC = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
BASE_URI = "urn:jupyter-cvat-train:api-schema"
REGISTRY = Registry().with_resource(BASE_URI, Resource.from_contents(DOC, default_specification=DRAFT202012))
TEMPLATE = "fasterrcnn-mobilenet-v3-fpn"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def validator(*pointer: str) -> Draft202012Validator:
    """A validator for the schema at JSON pointer parts ``pointer`` of the contract."""
    return Draft202012Validator({"$ref": f"{BASE_URI}#{_pointer(*pointer)}"}, registry=REGISTRY)


def assert_valid(v: Draft202012Validator, instance, what: str) -> None:
    errors = [best_match([e]) for e in sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path))]
    assert not errors, f"{what} breaks the contract:\n" + "\n".join(
        f"  at /{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in errors[:10]
    )


def schema(name: str) -> Draft202012Validator:
    return validator("components", "schemas", name)


def check_request(method: str, route: str, body) -> None:
    """A request body we send as a valid one is valid for the route's requestBody schema."""
    assert_valid(
        validator("paths", route, method, "requestBody", "content", "application/json", "schema"),
        body,
        f"the request body of {method.upper()} {route}",
    )


def check_reply(method: str, route: str, status: int, body) -> None:
    """``status`` is documented for ``method route`` and ``body`` matches its schema
    (no body where none is documented)."""
    responses = DOC["paths"][route][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {route} answered {status}, which the contract does not list"
    content = responses[str(status)].get("content")
    if content is None:
        assert body is None, f"{method.upper()} {route} {status} has a body the contract does not describe: {body!r}"
        return
    v = validator("paths", route, method, "responses", str(status), "content", "application/json", "schema")
    assert_valid(v, body, f"{method.upper()} {route} {status}")
    if status >= 400:
        assert body["code"] == status


async def call(jp_fetch, method: str, route: str, *, body=None, params=None, headers=None, **path):
    """Call ``method route`` (a contract path such as ``/jobs/{job_id}``) on the real server,
    check the reply against the contract, and return (status, JSON body or None)."""
    url = route.format(**{k: quote(v, safe="") for k, v in path.items()})
    kwargs = {"method": method.upper(), "params": params, "request_timeout": 120}
    if headers:
        kwargs["headers"] = headers
    if body is not None:
        kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
    elif method in ("post", "put", "patch"):
        kwargs["body"] = "{}"
    if method == "delete":
        kwargs["allow_nonstandard_methods"] = True
    try:
        r = await jp_fetch("cvat-train", "api", *url.strip("/").split("/"), **kwargs)
    except HTTPClientError as e:
        r = e.response
        assert r is not None, e
    if r.body:
        assert r.headers["Content-Type"].startswith("application/json"), (route, r.headers["Content-Type"])
    data = json.loads(r.body) if r.body else None
    check_reply(method, route, r.code, data)
    return r.code, data


async def stream(jp_ws_fetch, job_id: str, timeout: float = 120, **params) -> list[dict]:
    """Every message of a job's stream until the server closes it, each checked against
    StreamMessage."""
    ws = await jp_ws_fetch("cvat-train", "api", "jobs", job_id, "stream", params={k: str(v) for k, v in params.items()})
    v = validator("paths", "/jobs/{job_id}/stream", "get", "x-websocket", "messages")
    messages = []
    deadline = time.monotonic() + timeout
    while True:
        msg = await asyncio.wait_for(ws.read_message(), max(0.1, deadline - time.monotonic()))
        if msg is None:
            return messages
        message = json.loads(msg)
        assert_valid(v, message, f"stream message {len(messages)} ({str(message)[:200]})")
        messages.append(message)


async def ws_refused(jp_ws_fetch, job_id: str, **params) -> int:
    """The HTTP status with which the stream's handshake is refused (a documented one)."""
    with pytest.raises(HTTPClientError) as refused:
        await jp_ws_fetch("cvat-train", "api", "jobs", job_id, "stream", params=params)
    code = refused.value.code
    assert str(code) in DOC["paths"]["/jobs/{job_id}/stream"]["get"]["responses"], code
    return code


@pytest.fixture
def tensorboard_enabled() -> bool:
    return True


@pytest.fixture
def jp_server_config(tensorboard_enabled):
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True, "jupyter_server_proxy": True}},
            "CvatTrainApp": {
                "cancel_grace_seconds": 1.0,
                "poll_interval": 0.1,
                "tensorboard_enabled": tensorboard_enabled,
            },
        }
    )


@pytest.fixture
def sample(jp_root_dir) -> Path:
    return generate_sample(jp_root_dir / "data" / "sample.zip", images=4, width=64, height=48)


# -- the contract itself ---------------------------------------------------------------------


def _route_template(pattern: str) -> str:
    return "/" + re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)


def test_the_contract_lists_exactly_the_server_routes_and_methods():
    from jupyter_cvat_train.server.handlers import JOB_ID, api_routes

    served = {_route_template(p): {m for m in HTTP_METHODS if m in h.__dict__} for p, h in api_routes()}
    documented = {route: {m for m in HTTP_METHODS if m in ops} for route, ops in DOC["paths"].items()}
    assert documented == served
    job_id = re.fullmatch(r"\(\?P<job_id>(.*)\)", JOB_ID).group(1)
    for route, ops in DOC["paths"].items():
        for param in ops.get("parameters", []):
            if param["name"] == "job_id":
                assert param["schema"]["pattern"] == f"^{job_id}$", route


def test_the_contract_enums_follow_the_core():
    from jupyter_cvat_train.jobs.registry import list_kinds
    from jupyter_cvat_train.jobs.runtime import STATES
    from jupyter_cvat_train.models.catalog import TASKS

    s = DOC["components"]["schemas"]
    assert s["JobState"]["enum"] == list(STATES)
    built_in = [k.name for k in list_kinds() if k.module.startswith("jupyter_cvat_train.")]  # tests add kinds
    assert sorted(s["JobKind"]["enum"]) == sorted(built_in)
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in s["JobSpec"]["oneOf"]} == {
        "".join(part.capitalize() for part in name.split("-")) + "Spec"
        for name in built_in  # cvat-pull: CvatPullSpec
    }
    assert s["Template"]["properties"]["task"]["enum"] == list(TASKS)
    for name in s:
        Draft202012Validator.check_schema(s[name])


def test_the_contract_rejects_what_the_server_never_sends():
    """The schemas are tight enough to catch a changed reply (not all-accepting)."""
    job = {
        "id": "j1",
        "kind": "validate",
        "state": "succeeded",
        "message": "",
        "dir": "cvat-train-runs/j1",
        "progress": {"done": 1, "total": 1, "unit": "images"},
        "outputs": {},
        "created_at": "2024-05-01T10:00:00.000Z",
        "started_at": None,
        "ended_at": None,
        "spec": {"kind": "validate", "dataset": "data/sample.zip"},
    }
    assert_valid(schema("Job"), job, "a well-formed job")
    for bad in (
        {**job, "state": "done"},
        {**job, "kind": "bake"},
        {k: v for k, v in job.items() if k != "dir"},
        {**job, "extra": 1},
        {**job, "progress": {"done": -1, "total": None, "unit": None}},
        {**job, "created_at": "yesterday"},
        {k: v for k, v in job.items() if k != "spec"},
        {**job, "spec": "x"},
    ):
        assert not schema("Job").is_valid(bad), bad
    assert not schema("Error").is_valid({"message": "x", "code": 200, "details": None})
    assert not schema("StreamMessage").is_valid({"type": "log", "offset": 0, "text": "x"})
    assert not schema("StreamMessage").is_valid({"type": "shout", "job": job})
    assert not schema("BoxStats").is_valid({"min": 1.0, "max": 2.0})  # all six percentiles or none
    assert schema("BoxStats").is_valid({}) and schema("BoxSize").is_valid({})


def test_the_generated_typescript_types_are_current():
    """src/api/schema.ts is what scripts/generate-api.js makes of the contract now."""
    node = shutil.which("node")
    if node is None or not (REPO_ROOT / "node_modules" / "json-schema-to-typescript").is_dir():
        pytest.skip("node and the project's node_modules are needed (make setup, or jlpm install)")
    run = subprocess.run(
        [node, "scripts/generate-api.js", "--check"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr


# -- the real server's replies --------------------------------------------------------------


async def test_rest_replies_match_the_contract(jp_fetch, jp_ws_fetch, jp_root_dir, sample):
    assert (await call(jp_fetch, "get", "/version"))[0] == 200
    for authorization in ("", "token not-the-token"):
        code, _ = await call(jp_fetch, "get", "/version", headers={"Authorization": authorization})
        assert code == 403
    code, templates = await call(jp_fetch, "get", "/templates")
    assert code == 200 and TEMPLATE in [t["name"] for t in templates["templates"]]
    code, devices = await call(jp_fetch, "get", "/devices")  # probed in a subprocess that imports torch
    assert code == 200 and [d["id"] for d in devices["devices"]][:2] == ["auto", "cpu"], devices
    assert devices["gpus"] == len(devices["devices"]) - 2 and devices["torch"], devices
    code, backends = await call(jp_fetch, "get", "/backends")  # no cluster set: this machine only
    assert code == 200 and backends == {"default": "local", "backends": [{"id": "local", "name": "This machine"}]}

    # datasets/validate: a good export, one with findings, one that is no export, and mistakes
    broken = generate_sample(jp_root_dir / "broken", images=3, width=64, height=48)
    os.remove(next((broken / "images" / "default").iterdir()))
    (jp_root_dir / "junk.zip").write_bytes(b"not a zip")
    (jp_root_dir.parent / "outside.zip").write_bytes(b"x")
    for path, ok in (("data/sample.zip", True), ("broken", False), ("junk.zip", False)):
        check_request("post", "/datasets/validate", {"path": path})
        code, report = await call(jp_fetch, "post", "/datasets/validate", body={"path": path})
        assert (code, report["ok"]) == (200, ok), report
    assert report["format"] is None and report["box_size"] == {}  # junk.zip: unreadable
    for body, status in (
        ("{not json", 400),
        ([1, 2], 400),
        ({"path": 7}, 400),
        ({"path": "../outside.zip"}, 403),
        ({"path": str(jp_root_dir.parent / "outside.zip")}, 403),
        ({"path": "nope.zip"}, 404),
    ):
        assert (await call(jp_fetch, "post", "/datasets/validate", body=body))[0] == status, body

    # POST jobs: every refusal before anything is launched
    good = {"kind": "train", "template": TEMPLATE, "dataset": "data/sample.zip", "parameters": {}, "checkpoint": None}
    check_request("post", "/jobs", good)
    from jupyter_cvat_train.models.classes import write_classes_csv

    (jp_root_dir / "model").mkdir()
    write_classes_csv(jp_root_dir / "model" / "classes.csv", ["circle"])
    annotate = {"kind": "annotate", "images": "data/sample.zip", "model": "model", "output": "data/sample.zip"}
    check_request("post", "/jobs", annotate)
    for body, status in (
        ({**good, "dataset": "broken"}, 422),
        ({**good, "kind": "bake"}, 400),
        ({**good, "template": "no-such-model"}, 404),
        ({**good, "dataset": "../x.zip"}, 403),
        ({**good, "parameters": {"no_such_parameter": 1}}, 400),
        ([1, 2], 400),
        ({**good, "checkpoint": "missing.pt"}, 404),
        (annotate, 409),
        ({**annotate, "model": "data"}, 400),  # no classes.csv: not a trained model folder
    ):
        code, err = await call(jp_fetch, "post", "/jobs", body=body)
        assert code == status, (body, err)
        if status == 422:
            assert_valid(schema("ValidationReport"), err["details"], "the details of a 422")
    assert (await call(jp_fetch, "get", "/jobs"))[1] == {"jobs": []}

    # a job: created, streamed to its end, listed, read, its log read by offset, forgotten
    spec = {"kind": "validate", "dataset": "data/sample.zip"}
    check_request("post", "/jobs", spec)
    code, job = await call(jp_fetch, "post", "/jobs", body=spec)
    assert code == 201
    messages = await stream(jp_ws_fetch, job["id"])
    assert messages[0]["type"] == "state" and messages[-1]["type"] == "end"
    assert {"log", "event"} <= {m["type"] for m in messages}
    event_offsets = [m["next_offset"] for m in messages if m["type"] == "event"]
    resumed = await stream(jp_ws_fetch, job["id"], log_offset=3, events_offset=event_offsets[-2])
    assert [m["type"] for m in resumed if m["type"] == "event"] == ["event"]
    assert await ws_refused(jp_ws_fetch, "no-such-job") == 404
    assert await ws_refused(jp_ws_fetch, job["id"], log_offset="x") == 400

    code, listing = await call(jp_fetch, "get", "/jobs")
    assert [j["id"] for j in listing["jobs"]] == [job["id"]]
    code, done = await call(jp_fetch, "get", "/jobs/{job_id}", job_id=job["id"])
    assert done["state"] == "succeeded"
    code, log = await call(jp_fetch, "get", "/jobs/{job_id}/log", job_id=job["id"], params={"offset": 2})
    assert code == 200 and log["offset"] == 2 and log["next_offset"] > 2
    assert (await call(jp_fetch, "get", "/jobs/{job_id}/log", job_id=job["id"], params={"offset": "x"}))[0] == 400
    for route, method in (
        ("/jobs/{job_id}", "get"),
        ("/jobs/{job_id}/log", "get"),
        ("/jobs/{job_id}/tensorboard", "post"),
    ):
        assert (await call(jp_fetch, method, route, job_id="no-such-job"))[0] == 404
    assert (await call(jp_fetch, "delete", "/jobs/{job_id}", job_id=job["id"], params={"remove_files": "true"}))[
        0
    ] == 204
    assert (await call(jp_fetch, "delete", "/jobs/{job_id}", job_id=job["id"]))[0] == 404


async def test_cancel_reply_matches_the_contract(jp_fetch, sample):
    code, job = await call(jp_fetch, "post", "/jobs", body=long_training(sample))
    assert code == 201 and job["state"] in ("queued", "running")
    code, cancelling = await call(jp_fetch, "delete", "/jobs/{job_id}", job_id=job["id"])
    assert code == 202 and cancelling["id"] == job["id"]
    deadline = time.monotonic() + 60
    while (now := (await call(jp_fetch, "get", "/jobs/{job_id}", job_id=job["id"]))[1])["state"] not in (
        "cancelled",
        "failed",
        "succeeded",
    ) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert now["state"] == "cancelled"


@pytest.mark.parametrize("tensorboard_enabled", [False])
async def test_tensorboard_turned_off_reply_matches_the_contract(jp_fetch, tensorboard_enabled):
    code, err = await call(jp_fetch, "post", "/jobs/{job_id}/tensorboard", job_id="any")
    assert code == 409 and "tensorboard_enabled" in err["message"]


@pytest.mark.slow
async def test_tensorboard_reply_matches_the_contract(jp_fetch, jp_serverapp, jp_base_url, sample):
    code, job = await call(jp_fetch, "post", "/jobs", body={"kind": "validate", "dataset": "data/sample.zip"})
    (app,) = jp_serverapp.extension_manager.extension_apps["jupyter_cvat_train"]
    try:
        code, tb = await call(jp_fetch, "post", "/jobs/{job_id}/tensorboard", job_id=job["id"])
        assert code == 200 and tb["url"] == f"{jp_base_url}proxy/{tb['port']}/"
    finally:
        await app.service.tensorboards.stop_all()


async def test_planted_event_lines_still_stream_as_contract_events(jp_fetch, jp_ws_fetch, jp_root_dir, sample):
    """events.jsonl lies in the runs root, which Contents API users can write: whatever a
    line holds, the stream's event messages keep the contract's shape."""
    code, job = await call(jp_fetch, "post", "/jobs", body={"kind": "validate", "dataset": "data/sample.zip"})
    assert (await stream(jp_ws_fetch, job["id"]))[-1]["type"] == "end"
    with open(jp_root_dir / job["dir"] / "events.jsonl", "a", encoding="utf-8") as f:
        f.write('not json\n5\n[1]\n{"no": "type"}\n{"type": 7}\n')
    events = [m["event"] for m in await stream(jp_ws_fetch, job["id"]) if m["type"] == "event"]
    assert [e["type"] for e in events[-5:]] == ["unparsed"] * 5


async def test_template_check_replies_match_the_contract(jp_fetch, jp_root_dir):
    """POST templates/check: a good custom template (its form and commands), a broken one
    (FILE:LINE relative to the root), and each refusal of the path."""
    folder = jp_root_dir / "drafts"
    folder.mkdir()
    example = REPO_ROOT / "examples" / "custom-template"
    good = (example / "mean-box-baseline.yaml").read_text().replace("path: .", f"path: {json.dumps(str(example))}")
    (folder / "good.yaml").write_text(good)
    (folder / "bad.yml").write_text("name: b\ncode: {path: .}\ndump_format: cvat_xml9\ncommand: x {{parameters.n}}\n")
    (folder / "notes.txt").write_text("name: x\n")
    (jp_root_dir.parent / "outside.yaml").write_text(good)
    check_request("post", "/templates/check", {"path": "drafts/good.yaml"})
    code, reply = await call(jp_fetch, "post", "/templates/check", body={"path": "drafts/good.yaml"})
    assert code == 200 and reply["ok"] and reply["path"] == "drafts/good.yaml", reply
    assert [p["name"] for p in reply["template"]["parameters"]] == ["epochs", "note"]
    assert reply["template"]["source"] == "drafts/good.yaml" and reply["template"]["family"] == "custom"
    assert reply["commands"]["command"][:3] == ["python", "-u", "train.py"] and reply["commands"]["shell"] is False
    assert reply["commands"]["annotate"][:3] == ["python", "-u", "annotate.py"]
    code, reply = await call(jp_fetch, "post", "/templates/check", body={"path": "drafts/bad.yml"})
    assert code == 200 and not reply["ok"], reply
    assert any(e.startswith("drafts/bad.yml:3: dump_format 'cvat_xml9'") for e in reply["errors"]), reply
    assert any(e.startswith("drafts/bad.yml:4: {{parameters.n}} names no parameter") for e in reply["errors"]), reply
    (folder / "family.yaml").write_text(
        (Path(jupyter_cvat_train.__file__).parent / "models" / "templates" / f"{TEMPLATE}.yaml")
        .read_text()
        .replace(f"name: {TEMPLATE}", "name: my-fasterrcnn")
    )
    code, reply = await call(jp_fetch, "post", "/templates/check", body={"path": "drafts/family.yaml"})
    assert code == 200 and reply["ok"] and reply["commands"] == {}  # a built-in family's template
    for body, status in (
        ("{not json", 400),
        ({"path": 7}, 400),
        ({"path": "drafts/notes.txt"}, 400),
        ({"path": "drafts"}, 400),
        ({"path": "../outside.yaml"}, 403),
        ({"path": str(jp_root_dir.parent / "outside.yaml")}, 403),
        ({"path": "drafts/nope.yaml"}, 404),
    ):
        assert (await call(jp_fetch, "post", "/templates/check", body=body))[0] == status, body
