"""An annotate run never writes over its input, nor over an existing file unless asked
(`cvat-train annotate --overwrite`): the CLI as a user would misuse it, and the check
the job and the server share (annotate.outputs.plan_outputs)."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_annotate_job import bccd_small, model_dir  # noqa: F401 - module fixtures: a real trained model

from jupyter_cvat_train.annotate.outputs import OutputError, plan_outputs
from jupyter_cvat_train.cli import main as cli_main
from jupyter_cvat_train.datasets import generate_sample


def _digest(path: Path) -> str:
    if path.is_dir():
        return hashlib.sha256(
            b"".join(p.name.encode() + p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())
        ).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def workspace(tmp_path) -> dict:
    """An images zip, an images folder, a fake model folder, a notebook and a job index."""
    ws = {
        "zip": generate_sample(tmp_path / "images.zip", images=2, width=64, height=48),
        "folder": generate_sample(tmp_path / "images", images=2, width=64, height=48),
        "model": tmp_path / "model",
        "notebook": tmp_path / "analysis.ipynb",
        "index": tmp_path / "jobs.sqlite",
    }
    ws["model"].mkdir()
    (ws["model"] / "model.pt").write_bytes(b"weights")
    (ws["model"] / "classes.csv").write_text("labels,id\ncircle,1\n")
    ws["notebook"].write_text('{"cells": []}')
    ws["index"].write_bytes(b"SQLite format 3\x00")
    return ws


def _annotate(images, model, output, *extra):
    args = ["annotate", str(images), "--model-dir", str(model), "-o", str(output), "--no-progress", *extra]
    return CliRunner().invoke(cli_main, args)


def test_cli_refuses_an_output_that_is_or_touches_the_input(workspace, tmp_path):
    before = {k: _digest(v) for k, v in workspace.items()}
    (tmp_path / "link.zip").symlink_to(workspace["zip"])
    cases = [
        (workspace["zip"], workspace["zip"], "images"),  # the input zip itself
        (workspace["zip"], tmp_path / "link.zip", "images"),  # a symlink to it
        (workspace["zip"], tmp_path / "." / "images.zip", "images"),  # another spelling of it
        (workspace["folder"], workspace["folder"] / "out.zip", "images"),  # a new file inside the input folder
        (workspace["folder"], workspace["folder"] / "annotations" / "x.zip", "images"),
        (workspace["zip"], workspace["model"] / "model.pt", "model folder"),  # the model's weights
        (workspace["zip"], workspace["model"] / "new.zip", "model folder"),
    ]
    for images, output, word in cases:
        for extra in ((), ("--overwrite",)):  # refused even when replacing is asked for
            r = _annotate(images, workspace["model"], output, *extra)
            assert r.exit_code == 1, (output, extra, r.output)
            assert f"would overwrite the {word}" in r.output and "Traceback" not in r.output, r.output
    # the previews folder beside the output (<stem>_previews) may not be the input folder either
    shots = generate_sample(tmp_path / "pred_previews", images=1, width=64, height=48)
    r = _annotate(shots, workspace["model"], tmp_path / "pred.zip", "--preview", "1", "--overwrite")
    assert r.exit_code == 1 and "would overwrite the images" in r.output, r.output
    assert {k: _digest(v) for k, v in workspace.items()} == before
    assert not (workspace["folder"] / "out.zip").exists() and not (tmp_path / "pred.summary.json").exists()


def test_cli_refuses_existing_files_unless_asked(workspace, tmp_path):
    before = {k: _digest(v) for k, v in workspace.items()}
    for target in (workspace["notebook"], workspace["index"]):
        r = _annotate(workspace["zip"], workspace["model"], target)
        assert r.exit_code == 1 and "already exists" in r.output and "--overwrite" in r.output, r.output
    # the summary written beside the output counts too
    (tmp_path / "pred.summary.json").write_text("{}")
    r = _annotate(workspace["zip"], workspace["model"], tmp_path / "pred.zip")
    assert r.exit_code == 1 and "pred.summary.json already exists" in r.output, r.output
    # a folder as output, and an output in a folder that does not exist
    r = _annotate(workspace["zip"], workspace["model"], tmp_path / "model-copy" / "out.zip")
    assert r.exit_code == 1 and "does not exist" in r.output, r.output
    (tmp_path / "adir").mkdir()
    r = _annotate(workspace["zip"], workspace["model"], tmp_path / "adir", "--overwrite")
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert {k: _digest(v) for k, v in workspace.items()} == before


@pytest.mark.slow
def test_cli_overwrite_replaces_only_the_output(tmp_path, model_dir):  # noqa: F811
    images = generate_sample(tmp_path / "images.zip", images=2, width=64, height=48)
    before = _digest(images)
    out = tmp_path / "notes.zip"
    out.write_bytes(b"an older file of the user")
    r = _annotate(images, model_dir, out)
    assert r.exit_code == 1 and "already exists" in r.output and out.read_bytes() == b"an older file of the user"
    r = _annotate(images, model_dir, out, "--overwrite", "--threshold", "0")
    assert r.exit_code == 0, r.output
    assert "annotations/instances_default.json" in zipfile.ZipFile(out).namelist()
    assert (tmp_path / "notes.summary.json").is_file() and _digest(images) == before
    again = _annotate(images, model_dir, out)  # the summary and the zip exist now: refused again
    assert again.exit_code == 1 and "already exists" in again.output


def test_plan_outputs_rules(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    model = tmp_path / "model"
    model.mkdir()
    inputs = [("images", folder), ("model folder", model)]
    plan = plan_outputs(tmp_path / "a.zip", inputs=inputs, previews=True)
    assert (plan.output, plan.summary, plan.partial, plan.partial_summary, plan.previews) == (
        tmp_path / "a.zip",
        tmp_path / "a.summary.json",
        tmp_path / "a.partial.zip",
        tmp_path / "a.partial.summary.json",
        tmp_path / "a_previews",
    )
    # the previews of "b.zip" go to "b_previews": not when that is the input folder
    (tmp_path / "b_previews").mkdir()
    with pytest.raises(OutputError) as e:
        plan_outputs(tmp_path / "b.zip", inputs=[("images", tmp_path / "b_previews")], previews=True, overwrite=True)
    assert "would overwrite the images" in str(e.value)
    # a partial result left by a cancelled run is an existing file too
    (tmp_path / "c.partial.zip").write_bytes(b"x")
    with pytest.raises(OutputError, match="c.partial.zip already exists"):
        plan_outputs(tmp_path / "c.zip", inputs=inputs)
    assert plan_outputs(tmp_path / "c.zip", inputs=inputs, overwrite=True).overwrite
    # the job's own folder is protected except output/
    job = tmp_path / "job"
    (job / "output").mkdir(parents=True)
    with pytest.raises(OutputError, match="job's own folder"):
        plan_outputs(job / "status.json", inputs=inputs, protected=[job], allowed=[job / "output"], overwrite=True)
    plan_outputs(job / "output" / "annotations.zip", inputs=inputs, protected=[job], allowed=[job / "output"])
    with pytest.raises(OutputError) as e:
        plan_outputs(tmp_path / "missing" / "a.zip", inputs=inputs)
    assert e.value.status == 404


def test_a_file_that_appears_during_the_run_is_not_replaced(tmp_path):
    from jupyter_cvat_train.annotate.writers import write_annotations

    out = tmp_path / "late.zip"
    plan = plan_outputs(out, inputs=[])  # checked at the start: new
    out.write_bytes(b"created by the user meanwhile")
    with pytest.raises(OutputError, match="appeared while the run"):
        write_annotations("coco", plan.output, [], ["a"], overwrite=plan.overwrite)
    assert out.read_bytes() == b"created by the user meanwhile"
    assert [p.name for p in tmp_path.iterdir()] == ["late.zip"]  # no temp file left
    long_name = tmp_path / ("n" * 251 + ".zip")  # a 255-byte name: its temp file must still fit
    write_annotations("coco", long_name, [], ["a"], overwrite=False)
    assert zipfile.is_zipfile(long_name) and sorted(os.listdir(tmp_path)) == sorted(["late.zip", long_name.name])
