"""The CVAT connection, pull, push, auto-annotate and serve.

Without a server: the settings and their messages (no host, no credentials, secrets kept
out of reprs and command lines), an unreachable host on a closed loopback port, a model
folder that does not load, the push's shapes built from a real annotate job's zip with
the SDK's real models, no shared labels.

With a real CVAT server (``CVAT_TEST_HOST`` and ``CVAT_TEST_ACCESS_TOKEN`` or
``CVAT_TEST_USERNAME``/``CVAT_TEST_PASSWORD``): a task is created from the sample images,
pulled, pushed to, auto-annotated, and deleted. Skipped with that reason otherwise; no
stand-in server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("cvat_sdk", reason="the cvat extra is not installed (pip install 'jupyter_cvat_train[cvat]')")

from test_cvat_function import LABELS, images, sample, ssd_dir  # noqa: E402, F401 - module fixtures

from jupyter_cvat_train.cvat.connection import (  # noqa: E402
    CvatError,
    CvatSettings,
    connect,
    settings_from_environment,
)

CLI = [sys.executable, "-m", "jupyter_cvat_train"]


def _clean_env(tmp_path, **extra) -> dict:
    """The test process's environment without any CVAT settings, with a HOME (and so an
    SDK profile store) of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CVAT_") and k != "PASS"}
    env.update(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"), **extra)
    return env


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _cli(args, env, cwd):
    return subprocess.run(CLI + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


# --- no server needed ---------------------------------------------------------------------


def test_settings_messages_and_secrets():
    with pytest.raises(CvatError, match="no CVAT host configured: set CVAT_HOST"):
        settings_from_environment({}, use_profile=False)
    with pytest.raises(CvatError, match="no CVAT credentials for https://h: set CVAT_ACCESS_TOKEN"):
        settings_from_environment({"CVAT_HOST": "https://h"}, use_profile=False)
    with pytest.raises(CvatError, match="CVAT_USERNAME is set but no password"):
        settings_from_environment({"CVAT_HOST": "https://h", "CVAT_USERNAME": "u"}, use_profile=False)
    s = settings_from_environment({"CVAT_HOST": "https://h", "CVAT_ACCESS_TOKEN": "tok-SECRET"})
    assert s.token == "tok-SECRET" and "SECRET" not in repr(s)
    assert "SECRET" not in " ".join(s.cli_arguments())
    env = s.child_environment({"PASS": "old"})
    assert env["CVAT_ACCESS_TOKEN"] == "tok-SECRET" and "PASS" not in env
    p = settings_from_environment({"CVAT_HOST": "h:8080", "CVAT_USERNAME": "u", "PASS": "pw-SECRET"})
    assert p.password == "pw-SECRET" and "SECRET" not in repr(p)
    assert p.cli_arguments() == ["--server-host", "h:8080", "--auth", "u"]
    assert p.child_environment({})["PASS"] == "pw-SECRET"


def test_unreachable_host_is_one_clear_message():
    host = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(CvatError, match=rf"the CVAT server at {host} cannot be reached .*Connection refused"):
        connect(CvatSettings(host, token="t"))
    with pytest.raises(CvatError, match="cannot be reached"):
        connect(CvatSettings(host, username="u", password="p"))
    with pytest.raises(CvatError, match="is not a server URL"):
        connect(CvatSettings("ftp://x", token="t"))


def test_cli_without_host_and_with_an_unreachable_one(tmp_path):
    r = _cli(["cvat", "pull", "1", "out.zip"], _clean_env(tmp_path), tmp_path)
    assert r.returncode == 1 and "no CVAT host configured" in r.stderr and "Traceback" not in r.stderr
    env = _clean_env(tmp_path, CVAT_HOST=f"http://127.0.0.1:{_closed_port()}", CVAT_ACCESS_TOKEN="tok-SECRET")
    for args in (["cvat", "check"], ["cvat", "pull", "1", "out.zip"], ["cvat", "push", "x.zip", "1"]):
        r = _cli(args, env, tmp_path)
        assert r.returncode == 1, r.stderr
        assert "cannot be reached" in r.stderr or "not found" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and "SECRET" not in r.stderr + r.stdout
    assert not any(tmp_path.glob("*.zip")) and not any(tmp_path.glob(".out.zip.partial-*"))


def test_serve_refuses_a_model_folder_that_does_not_load_before_the_server(tmp_path):
    (tmp_path / "m").mkdir()
    env = _clean_env(tmp_path, CVAT_HOST=f"http://127.0.0.1:{_closed_port()}", CVAT_ACCESS_TOKEN="t")
    r = _cli(["cvat", "serve", str(tmp_path / "m"), "--name", "x"], env, tmp_path)
    assert r.returncode == 1 and "classes.csv" in r.stderr and "Traceback" not in r.stderr


def _annotate(ssd_dir, images, folder: Path, fmt: str) -> Path:
    from jupyter_cvat_train.annotate import run_annotate
    from jupyter_cvat_train.jobs.runtime import JobDir, run_job

    spec = {"kind": "annotate", "images": str(images[0].parent), "model_dir": str(ssd_dir), "format": fmt}
    jd = JobDir(folder / "job").create({**spec, "threshold": 0.0})
    status = run_job(jd.path, run_annotate)
    assert status["state"] == "succeeded", status.get("message")
    return jd.path


@pytest.fixture(scope="module")
def annotate_job(ssd_dir, images, tmp_path_factory) -> Path:
    """A real annotate job (the tiny SSDlite on the sample images, COCO output: the default)."""
    return _annotate(ssd_dir, images, tmp_path_factory.mktemp("annotate"), "coco")


@pytest.mark.slow
def test_push_reads_a_cvat_xml_zip_without_images(ssd_dir, images, annotate_job, tmp_path):
    from jupyter_cvat_train.cvat.transfer import find_annotations, load_annotations

    job = _annotate(ssd_dir, images, tmp_path, "cvat")
    zip_path, fmt = find_annotations(job)
    assert fmt == "cvat"
    ds = load_annotations(zip_path, fmt)
    coco = load_annotations(*find_annotations(annotate_job))
    assert sorted(Path(str(it.image_path)).name for it in ds.items) == sorted(p.name for p in images)
    assert ds.annotation_count == coco.annotation_count > 0
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(CvatError, match="cannot be read as annotations"):
        load_annotations(tmp_path / "bad.zip")


@pytest.mark.slow
def test_push_shapes_from_an_annotate_job(annotate_job, images):
    import cvat_sdk.models as models

    from jupyter_cvat_train.cvat.transfer import build_shapes, find_annotations, load_annotations, shared_labels

    zip_path, fmt = find_annotations(annotate_job)
    assert zip_path.name == "annotations.zip" and fmt == "coco"
    ds = load_annotations(zip_path, fmt)
    frames = [f"sub/{p.name}" for p in images] + ["other.jpg"]  # task frames may sit in folders
    ids = {"circle": 11, "square": 12}  # the task has no 'triangle'
    shapes, report = build_shapes(ds, frames, ids)
    assert report["images_matched"] == len(images) and report["images_unmatched"] == []
    expected = sum(1 for it in ds.items for a in it.annotations if a.label in ids)
    assert len(shapes) == expected == sum(report["counts"].values()) > 0
    assert report["skipped_labels"].get("triangle", 0) == sum(
        1 for it in ds.items for a in it.annotations if a.label == "triangle"
    )
    for s in shapes:
        assert isinstance(s, models.LabeledShapeRequest) and s.label_id in (11, 12)
        assert s.type.value == "rectangle" and 0 <= s.frame < len(images) and s.source == "auto"
    # the request the upload sends is built (and checked) by the SDK's models
    models.LabeledDataRequest(tags=[], shapes=shapes, tracks=[])
    with pytest.raises(CvatError, match="shares no label with .*Nothing was sent"):
        shared_labels(LABELS, ["car", "person"], what="the model", task_id=5)
    with pytest.raises(CvatError, match="no finished annotate output"):
        find_annotations(images[0].parent)


# --- against a real CVAT server -------------------------------------------------------------


def _server_settings() -> CvatSettings:
    host = os.environ.get("CVAT_TEST_HOST")
    if not host:
        pytest.skip(
            "no CVAT server for the tests: set CVAT_TEST_HOST and CVAT_TEST_ACCESS_TOKEN (or _USERNAME/_PASSWORD)"
        )
    token = os.environ.get("CVAT_TEST_ACCESS_TOKEN")
    user, password = os.environ.get("CVAT_TEST_USERNAME"), os.environ.get("CVAT_TEST_PASSWORD")
    if not token and not (user and password):
        pytest.skip("CVAT_TEST_HOST is set without CVAT_TEST_ACCESS_TOKEN or CVAT_TEST_USERNAME/CVAT_TEST_PASSWORD")
    return CvatSettings(host, token=token, username=user, password=password)


def _env_for(settings: CvatSettings, tmp_path) -> dict:
    extra = {"CVAT_HOST": settings.host}
    if settings.token:
        extra["CVAT_ACCESS_TOKEN"] = settings.token
    else:
        extra.update(CVAT_USERNAME=settings.username, CVAT_PASSWORD=settings.password)
    return _clean_env(tmp_path, **extra)


@pytest.fixture(scope="module")
def server():
    return _server_settings()


@pytest.fixture
def task(server, images):
    """A new task with the sample labels and images; deleted afterwards."""
    import cvat_sdk.models as models

    with connect(server) as client:
        t = client.tasks.create_from_data(
            spec=models.TaskWriteRequest(
                name="jupyter-cvat-train test", labels=[models.PatchedLabelRequest(name=n) for n in LABELS]
            ),
            resources=[str(p) for p in images],
        )
        try:
            yield t.id
        finally:
            client.tasks.remove_by_ids([t.id])


@pytest.mark.slow
def test_server_check_and_wrong_credentials(server, tmp_path):
    r = _cli(["cvat", "check"], _env_for(server, tmp_path), tmp_path)
    assert r.returncode == 0 and f"connected to {server.host}" in r.stdout, r.stderr
    bad = CvatSettings(server.host, token="not-a-token")
    with pytest.raises(CvatError, match="refused the credentials"):
        connect(bad)


@pytest.mark.slow
def test_server_pull_push_auto_annotate(server, task, annotate_job, ssd_dir, tmp_path):
    env = _env_for(server, tmp_path)
    r = _cli(["cvat", "pull", "999999999", "x.zip"], env, tmp_path)
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = _cli(["cvat", "pull", str(task), "t.zip", "--format", "no-such-format"], env, tmp_path)
    assert r.returncode == 1 and "no export format" in r.stderr and not (tmp_path / "t.zip").exists()
    r = _cli(["cvat", "pull", str(task), "t.zip", "--format", "cvat"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert zipfile.is_zipfile(tmp_path / "t.zip") and not list(tmp_path.glob(".t.zip.partial-*"))
    r = _cli(["cvat", "push", str(annotate_job), str(task), "--replace", "--json"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    import json

    rep = json.loads(r.stdout)
    assert rep["sent"] > 0 and rep["task_shapes_after"] == rep["sent"]
    r = _cli(["cvat", "push", str(annotate_job), str(task), "--json"], env, tmp_path)
    assert json.loads(r.stdout)["task_shapes_after"] == 2 * rep["sent"]
    r = _cli(["cvat", "auto-annotate", str(task), str(ssd_dir), "--replace", "--threshold", "0"], env, tmp_path)
    assert r.returncode == 0 and "now has" in r.stdout, r.stderr


@pytest.mark.slow
def test_server_no_shared_labels_refused_before_upload(server, ssd_dir, images, tmp_path):
    import cvat_sdk.models as models

    from jupyter_cvat_train.cvat.transfer import auto_annotate

    with connect(server) as client:
        t = client.tasks.create_from_data(
            spec=models.TaskWriteRequest(name="jct no shared labels", labels=[models.PatchedLabelRequest(name="car")]),
            resources=[str(images[0])],
        )
        try:
            with pytest.raises(CvatError, match="shares no label"):
                auto_annotate(client, server, t.id, ssd_dir)
            assert len(t.get_annotations().shapes) == 0
        finally:
            client.tasks.remove_by_ids([t.id])


@pytest.mark.slow
def test_server_serve_registers_serves_and_removes(server, ssd_dir, tmp_path):
    env = _env_for(server, tmp_path)
    r = _cli(["cvat", "serve", str(ssd_dir), "--name", "jct test", "--burst"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    fid = int(r.stdout.split("registered function ")[1].split()[0])
    r = _cli(["cvat", "serve", "--remove", str(fid)], env, tmp_path)
    assert r.returncode == 0, r.stderr
