"""The HTTP API against a client's mistakes and abuse, on a real Jupyter server with a
token: bad paths (NUL, too long, huge), bad bodies (not JSON, nested 100000 deep, not an
object), wrong types in every field: a 400 with a short JSON {message, code}, never a
traceback, never the huge input echoed back. Annotate outputs that would overwrite what
the user has. Heavy validation in a pool of its own, so log requests are answered while
validations run, and a full pool answers 503 with Retry-After."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import zipfile
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from jupyter_cvat_train.datasets import generate_sample

pytest_plugins = ["pytest_jupyter.jupyter_server"]

TEMPLATE = "fasterrcnn-mobilenet-v3-fpn"
HUGE = "a/" * (2 * 1024 * 1024)  # a 4 MB path of 2 million parts


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True}},
            "CvatTrainApp": {"poll_interval": 0.1, "validation_workers": 2, "validation_queue": 4},
        }
    )


async def call(jp_fetch, *parts, method="GET", body=None, params=None, headers=None):
    """(status, JSON body, response headers); HTTP errors are returned, not raised."""
    kwargs = {"method": method, "params": params, "request_timeout": 300}
    if headers:
        kwargs["headers"] = headers
    if body is not None:
        kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
    try:
        r = await jp_fetch("cvat-train", "api", *parts, **kwargs)
    except HTTPClientError as e:
        r = e.response
        assert r is not None, e
    return r.code, (json.loads(r.body) if r.body else None), r.headers


def assert_client_error(code, err, status=400, words=()):
    """A short JSON error: the status, {message, code, details}, no traceback, nothing huge."""
    assert code == status, (code, err)
    assert set(err) == {"message", "code", "details"} and err["code"] == status, err
    text = json.dumps(err)
    assert "Traceback" not in text and 'File "' not in text, text[:2000]
    assert len(err["message"]) < 600, err["message"][:1000]
    for w in words:
        assert w in err["message"], (w, err["message"])


@pytest.fixture
def files(jp_root_dir) -> dict:
    """A small export, a model folder stand-in, a notebook and a job index in the root."""
    out = {
        "sample": generate_sample(jp_root_dir / "data" / "sample.zip", images=2, width=64, height=48),
        "images": generate_sample(jp_root_dir / "imgs", images=2, width=64, height=48),
        "model": jp_root_dir / "model",
        "notebook": jp_root_dir / "analysis.ipynb",
    }
    out["model"].mkdir()
    (out["model"] / "model.pt").write_bytes(b"weights")
    (out["model"] / "classes.csv").write_text("labels,id\ncircle,1\n")
    out["notebook"].write_text('{"cells": []}')
    return out


BAD_PATHS = [
    ("data/sample.zip\x00.txt", "NUL"),
    ("x" * 5000, "4096 bytes"),
    ("data/" + "n" * 300 + "/x.zip", "255 bytes"),
    (HUGE, "4096 bytes"),
    ("\ud800.zip", "not a valid file name"),
    (12, "expected a path"),
    (["data/sample.zip"], "expected a path"),
    ({"path": "x"}, "expected a path"),
    (True, "expected a path"),
    ("", "expected a path"),
]


@pytest.mark.timeout(600)
async def test_bad_paths_are_refused_with_a_short_400(jp_fetch, files):
    good_train = {"kind": "train", "template": TEMPLATE, "dataset": "data/sample.zip", "parameters": {}}
    good_annotate = {"kind": "annotate", "images": "imgs", "model": "model"}
    for bad, word in BAD_PATHS:
        requests = [
            ("datasets/validate", {"path": bad}),
            ("jobs", {"kind": "validate", "dataset": bad}),
            ("jobs", {**good_train, "dataset": bad}),
            ("jobs", {**good_train, "checkpoint": bad}),
            ("jobs", {**good_annotate, "images": bad}),
            ("jobs", {**good_annotate, "model": bad}),
            ("jobs", {**good_annotate, "output": bad}),
        ]
        for route, body in requests:
            if bad == "" and ("checkpoint" in body or "output" in body):
                continue  # an empty optional path means "none"
            code, err, _ = await call(jp_fetch, route, method="POST", body=body)
            assert_client_error(code, err, 400, [word])
            if isinstance(bad, str) and len(bad) > 200:
                assert bad[:150] not in err["message"]  # at most a short excerpt comes back
    code, jobs, _ = await call(jp_fetch, "jobs")
    assert jobs == {"jobs": []}  # nothing was launched


async def test_bad_bodies_are_refused_with_a_short_400(jp_fetch, files):
    bodies = [
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
        (b"{" + b'"a":{' * 50000 + b"1" + b"}" * 50001, "nested too deeply"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b'{"path": "' + b"x" * 100000, "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"data/sample.zip"', "JSON object"),
        (b"42", "JSON object"),
        (b"null", "JSON object"),
    ]
    for route in ("datasets/validate", "jobs"):
        for body, word in bodies:
            code, err, _ = await call(jp_fetch, route, method="POST", body=body)
            assert_client_error(code, err, 400, [word])
            assert "x" * 200 not in err["message"]


async def test_wrong_types_in_every_field_are_a_400(jp_fetch, files):
    train = {"kind": "train", "template": TEMPLATE, "dataset": "data/sample.zip", "parameters": {}}
    annotate = {"kind": "annotate", "images": "imgs", "model": "model", "output": "new.zip"}
    cases = [
        ({"path": "data/sample.zip", "format": 5}, "datasets/validate", "format"),
        ({"path": "data/sample.zip", "format": ["coco"]}, "datasets/validate", "format"),
        ({"kind": 5}, "jobs", "kind"),
        ({"kind": None}, "jobs", "kind"),
        ({"kind": ["train"]}, "jobs", "kind"),
        ({**train, "template": 5}, "jobs", "template"),
        ({**train, "template": {"a": 1}}, "jobs", "template"),
        ({**train, "parameters": 5}, "jobs", "parameters"),
        ({**train, "format": 3}, "jobs", "format"),
        ({**annotate, "threshold": "high"}, "jobs", "threshold"),
        ({**annotate, "threshold": 7}, "jobs", "threshold"),
        ({**annotate, "max_detections": "3"}, "jobs", "max_detections"),
        ({**annotate, "max_detections": 0}, "jobs", "max_detections"),
        ({**annotate, "keep_existing": "yes"}, "jobs", "keep_existing"),
        ({**annotate, "overwrite": "true"}, "jobs", "overwrite"),
        ({**annotate, "overwrite": 1}, "jobs", "overwrite"),
        ({**annotate, "preview": -1}, "jobs", "preview"),
        ({**annotate, "preview": 2.5}, "jobs", "preview"),
        ({**annotate, "mapping": [1, 2]}, "jobs", "mapping"),
        ({**annotate, "mapping": {"a": 1}}, "jobs", "mapping"),
        ({**annotate, "format": 7}, "jobs", "format"),
        ({**annotate, "format": "voc"}, "jobs", "format"),
        ({**annotate, "engine": []}, "jobs", "engine"),
        ({**annotate, "device": 0}, "jobs", "device"),
        ({**annotate, "batch_size": 10**12}, "jobs", "batch_size"),
        ({**annotate, "workers": "8"}, "jobs", "workers"),
    ]
    for body, route, word in cases:
        code, err, _ = await call(jp_fetch, route, method="POST", body=body)
        assert_client_error(code, err, 400, [word])
    code, jobs, _ = await call(jp_fetch, "jobs")
    assert jobs == {"jobs": []}


async def test_bad_ids_and_offsets(jp_fetch, jp_ws_fetch, files):
    code, err, _ = await call(jp_fetch, "jobs", "j" * 5000)
    assert_client_error(code, err, 404)
    assert "j" * 200 not in err["message"]
    code, err, _ = await call(jp_fetch, "jobs", "j" * 5000, "log")
    assert_client_error(code, err, 404)
    code, job, _ = await call(jp_fetch, "jobs", method="POST", body={"kind": "validate", "dataset": "data/sample.zip"})
    assert code == 201
    for offset in ("x", "9" * 5000, "1e3", "0x10"):
        code, err, _ = await call(jp_fetch, "jobs", job["id"], "log", params={"offset": offset})
        assert_client_error(code, err, 400, ["offset"])
    with pytest.raises(HTTPClientError) as e:
        await jp_ws_fetch("cvat-train", "api", "jobs", job["id"], "stream", params={"events_offset": "9" * 5000})
    assert e.value.code == 400


async def test_annotate_outputs_that_would_overwrite_are_refused(jp_fetch, files, jp_root_dir):
    before = {p: p.read_bytes() for p in (files["sample"], files["notebook"], files["model"] / "model.pt")}
    (jp_root_dir / "link.zip").symlink_to(files["sample"])
    (jp_root_dir / "cvat-train-runs").mkdir(exist_ok=True)
    index = jp_root_dir / "cvat-train-runs" / "jobs.sqlite"
    assert index.exists()  # the job index of this server
    base = {"kind": "annotate", "images": "data/sample.zip", "model": "model"}
    never = ["data/sample.zip", "link.zip", "./data//sample.zip", "model/model.pt", "model/new.zip"]
    for output in never:  # the input itself or inside an input folder: refused even with overwrite
        for overwrite in (False, True):
            code, err, _ = await call(
                jp_fetch, "jobs", method="POST", body={**base, "output": output, "overwrite": overwrite}
            )
            assert_client_error(code, err, 409, ["would overwrite the"])
    code, err, _ = await call(
        jp_fetch,
        "jobs",
        method="POST",
        body={**base, "images": "imgs", "output": "imgs/annotations.zip", "overwrite": True},
    )
    assert_client_error(code, err, 409, ["would overwrite the images"])
    for output in ("analysis.ipynb", "cvat-train-runs/jobs.sqlite"):  # existing files: only when asked
        code, err, _ = await call(jp_fetch, "jobs", method="POST", body={**base, "output": output})
        assert_client_error(code, err, 409, ["already exists", "overwrite"])
    code, err, _ = await call(jp_fetch, "jobs", method="POST", body={**base, "output": "no/such/folder/a.zip"})
    assert_client_error(code, err, 404, ["does not exist"])
    (jp_root_dir / "results").mkdir()
    code, err, _ = await call(jp_fetch, "jobs", method="POST", body={**base, "output": "results", "overwrite": True})
    assert_client_error(code, err, 409, ["is a folder"])
    code, err, _ = await call(jp_fetch, "jobs", method="POST", body={**base, "output": "data", "overwrite": True})
    assert_client_error(code, err, 409, ["would overwrite the images"])  # a folder holding the input
    code, jobs, _ = await call(jp_fetch, "jobs")
    assert jobs == {"jobs": []}
    assert {p: p.read_bytes() for p in before} == before
    # asked for: accepted (the job then fails on the stand-in model, before writing anything)
    code, job, _ = await call(
        jp_fetch, "jobs", method="POST", body={**base, "output": "analysis.ipynb", "overwrite": True}
    )
    assert code == 201, job
    for _ in range(1200):
        code, now, _ = await call(jp_fetch, "jobs", job["id"])
        if now["state"] in ("succeeded", "failed", "cancelled"):
            break
        await asyncio.sleep(0.1)
    assert now["state"] == "failed" and "model" in now["message"], now
    assert files["notebook"].read_bytes() == before[files["notebook"]]


def _big_coco_zip(path: Path, n: int, tag: str) -> Path:
    """A real COCO 1.0 export of ``n`` tiny PNGs, each with one box (distinct per ``tag``)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 10, 10)).save(buf, "PNG")
    images = [{"id": i + 1, "file_name": f"{tag}{i:06d}.png", "width": 16, "height": 12} for i in range(n)]
    anns = [
        {"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0}
        for i in range(n)
    ]
    coco = {"categories": [{"id": 1, "name": "box"}], "images": images, "annotations": anns}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("annotations/instances_default.json", json.dumps(coco))
        for im in images:
            z.writestr("images/" + im["file_name"], buf.getvalue())
    return path


def _service(jp_serverapp):
    return jp_serverapp.web_app.settings["cvat_train"]


async def _finished_job(jp_fetch) -> str:
    code, job, _ = await call(jp_fetch, "jobs", method="POST", body={"kind": "validate", "dataset": "data/sample.zip"})
    assert code == 201
    for _ in range(1200):
        code, now, _ = await call(jp_fetch, "jobs", job["id"])
        if now["state"] in ("succeeded", "failed"):
            return job["id"]
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job['id']} did not finish: {now}")


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_log_requests_are_answered_while_validations_run(jp_fetch, jp_serverapp, jp_root_dir, files):
    job_id = await _finished_job(jp_fetch)
    pool = _service(jp_serverapp).validation_pool
    exports = [_big_coco_zip(jp_root_dir / "big" / f"e{k}.zip", 8000, f"e{k}_") for k in range(4)]
    order: list[str] = []

    async def validate(p: Path):
        code, report, _ = await call(
            jp_fetch, "datasets/validate", method="POST", body={"path": str(p.relative_to(jp_root_dir))}
        )
        order.append("validate")
        return code, report

    # four validations: more than the validation threads, as many as the old shared pool had
    tasks = [asyncio.ensure_future(validate(p)) for p in exports]
    for _ in range(6000):
        if pool.in_flight == len(exports) or order:
            break
        await asyncio.sleep(0.01)
    assert pool.in_flight == len(exports) and not order, "the validations did not all start before one ended"
    code, log, _ = await call(jp_fetch, "jobs", job_id, "log")
    order.append("log")
    in_flight_at_log = pool.in_flight
    results = await asyncio.gather(*tasks)
    assert code == 200 and log["text"]
    assert order[0] == "log" and in_flight_at_log == len(exports), order  # answered before any validation ended
    assert all(c == 200 and r["ok"] and r["images"] == 8000 for c, r in results), results


async def test_a_full_validation_pool_answers_503_and_logs_still_flow(jp_fetch, jp_serverapp, files):
    job_id = await _finished_job(jp_fetch)
    svc = _service(jp_serverapp)
    release = threading.Event()
    capacity = svc.validation_pool.workers + svc.validation_pool.queue
    blockers = [asyncio.ensure_future(svc.run_heavy(release.wait, 300)) for _ in range(capacity)]
    try:
        for _ in range(1000):
            if svc.validation_pool.in_flight == capacity:
                break
            await asyncio.sleep(0.01)
        for route, body in (
            ("datasets/validate", {"path": "data/sample.zip"}),
            ("jobs", {"kind": "train", "template": TEMPLATE, "dataset": "data/sample.zip"}),
        ):
            code, err, headers = await call(jp_fetch, route, method="POST", body=body)
            assert_client_error(code, err, 503, ["busy"])
            assert int(headers["Retry-After"]) > 0
        code, log, _ = await call(jp_fetch, "jobs", job_id, "log")  # the other pool is free
        assert code == 200 and log["text"]
        code, job, _ = await call(
            jp_fetch, "jobs", method="POST", body={"kind": "validate", "dataset": "data/sample.zip"}
        )
        assert code == 201  # a job kind without validation at request time is not held up either
    finally:
        release.set()
        await asyncio.gather(*blockers)
    code, report, _ = await call(jp_fetch, "datasets/validate", method="POST", body={"path": "data/sample.zip"})
    assert code == 200 and report["ok"]


async def _stream(jp_ws_fetch, job_id, **params) -> list[dict]:
    ws = await jp_ws_fetch("cvat-train", "api", "jobs", job_id, "stream", params={k: str(v) for k, v in params.items()})
    messages = []
    while True:
        msg = await asyncio.wait_for(ws.read_message(), 120)
        if msg is None:
            return messages
        messages.append(json.loads(msg))


async def test_stream_resumed_from_any_offset_is_labelled_with_what_was_read(jp_fetch, jp_ws_fetch, files, jp_root_dir):
    job_id = await _finished_job(jp_fetch)
    jd = jp_root_dir / "cvat-train-runs" / job_id
    log, events = (jd / "job.log").read_bytes(), (jd / "events.jsonl").read_bytes()
    line_starts = [0] + [i + 1 for i, b in enumerate(events) if b == ord("\n")][:-1]
    for log_offset, events_offset in ((10**12, 10**12), (3, line_starts[1] + 2), (len(log), len(events) - 1)):
        messages = await _stream(jp_ws_fetch, job_id, log_offset=log_offset, events_offset=events_offset)
        assert messages[-1]["type"] == "end"
        for m in messages:
            if m["type"] == "log":  # the text is exactly the file's bytes at the labelled offset
                assert log[m["offset"] : m["next_offset"]].decode() == m["text"], m
            elif m["type"] == "event":  # whole lines only, each at a line start, each parsed
                assert m["offset"] in line_starts and events[m["offset"] : m["next_offset"]].endswith(b"\n"), m
                assert (
                    m["event"] == json.loads(events[m["offset"] : m["next_offset"]])
                    and m["event"]["type"] != "unparsed"
                )
        evs = [m for m in messages if m["type"] == "event"]
        if events_offset > len(events):  # beyond the end: everything again, from 0
            assert [m["offset"] for m in evs] == line_starts
            assert "".join(m["text"] for m in messages if m["type"] == "log") == log.decode()
        elif events_offset == len(events) - 1:  # inside the last line: nothing more
            assert evs == []
        else:
            assert [m["offset"] for m in evs] == line_starts[2:]
