"""Custom training templates: loading checks (file and line), the catalog, the command's
argv, and the run through the CLI (real git, real subprocesses, a YOLO export converted
to the template's COCO dump)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jupyter_cvat_train.datasets import generate_sample
from jupyter_cvat_train.models import load_catalog
from jupyter_cvat_train.models.catalog import TemplateError, load_template
from jupyter_cvat_train.models.custom import parameter_values, render_command

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom-template"


def make_repo(dest: Path) -> str:
    """A local git repository holding the example's code; returns its commit."""
    dest.mkdir(parents=True)
    for name in ("train.py", "annotate.py", "requirements.txt"):
        shutil.copy(EXAMPLE / name, dest / name)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}

    def run(*a):
        return subprocess.run(
            ["git", *a], cwd=dest, check=True, capture_output=True, env={**env, "PATH": "/usr/bin:/bin"}
        )

    run("init", "-q", "-b", "main")
    run("add", ".")
    run("commit", "-q", "-m", "example")
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=dest, check=True, capture_output=True, text=True
    ).stdout.strip()


def write_template(folder: Path, repo: Path, *, name="my-baseline", command=None, **extra) -> Path:
    """The example template, its code pointed at ``repo`` (git), with ``command`` and other keys replaced."""
    doc = yaml.safe_load((EXAMPLE / "mean-box-baseline.yaml").read_text())
    doc["name"] = name
    doc["code"] = {"git": f"file://{repo}", "revision": "main"}
    if command is not None:
        doc["command"] = command
    doc.update(extra)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    return path, make_repo(path)


# ---- loading checks -------------------------------------------------------------------------
BROKEN = {
    "unknown key": (
        "name: t\ncode: {path: .}\ndump_format: cvat_coco\ncommand: python x.py\nepochz: 3\n",
        5,
        "unknown key 'epochz'",
    ),
    "no parameter": (
        "name: t\ncode: {path: .}\ndump_format: cvat_coco\nparameters:\n  - {name: epochs, value: '1'}\n"
        "command: python x.py --lr {{parameters.lr}}\n",
        6,
        "{{parameters.lr}} names no parameter; declared: epochs",
    ),
    "dump format": (
        "name: t\ncode: {path: .}\ndump_format: cvat_xml9\ncommand: python x.py\n",
        3,
        "dump_format 'cvat_xml9' is not a known format",
    ),
    "no command": ("name: t\ncode: {path: .}\ndump_format: cvat_coco\n", 1, "'command' is missing"),
    "missing code": (
        "name: t\ncode:\n  path: ./nowhere\ndump_format: cvat_coco\ncommand: python x.py\n",
        3,
        "does not exist",
    ),
    "annotate input": (
        "name: t\ncode: {path: .}\ndump_format: cvat_coco\ncommand: python x.py\n"
        "annotate: python p.py {{inputs.dataset}} {{output}}\n",
        5,
        "{{inputs.dataset}} is not an input of annotate; use {{inputs.images}} or {{inputs.model}}",
    ),
    "annotate parameter": (
        "name: t\ncode: {path: .}\ndump_format: cvat_coco\ncommand: python x.py\n"
        "annotate: python p.py {{parameters.th}}\n",
        5,
        "{{parameters.th}} names no parameter",
    ),
    "annotate quotes": (
        "name: t\ncode: {path: .}\ndump_format: cvat_coco\ncommand: python x.py\nannotate: python 'p.py\n",
        5,
        "the annotate command cannot be split into words",
    ),
    "shell not a flag": (
        "name: t\ncode: {path: .}\ndump_format: cvat_coco\ncommand: python x.py\nshell: sometimes\n",
        5,
        "shell must be true",
    ),
    "missing repo": (
        "name: t\ncode:\n  git: file:///nonexistent/repo\ndump_format: cvat_coco\ncommand: python x.py\n",
        3,
        "the repository /nonexistent/repo does not exist",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_template_names_file_and_line(tmp_path, case):
    text, line, message = BROKEN[case]
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(TemplateError) as e:
        load_template(path)
    assert f"{path}:{line}: " in str(e.value) and message in str(e.value), str(e.value)


def test_broken_templates_are_listed_and_the_catalog_still_loads(tmp_path, repo):
    folder = tmp_path / "templates"
    write_template(folder, repo[0])
    (folder / "broken.yaml").write_text(BROKEN["dump format"][0])
    (folder / "shadow.yaml").write_text(
        "name: ssdlite320-mobilenet-v3\ncode: {path: .}\ndump_format: cvat_coco\ncommand: python x.py\n"
    )
    catalog = load_catalog([folder])
    assert "my-baseline" in catalog.templates and "ssdlite320-mobilenet-v3" in catalog.templates
    assert catalog.templates["ssdlite320-mobilenet-v3"].builtin  # not replaced
    skipped = "\n".join(catalog.skipped)
    assert "broken.yaml:3: dump_format" in skipped
    assert "shadow.yaml: template name 'ssdlite320-mobilenet-v3' is taken" in skipped
    shown = catalog.templates["my-baseline"].to_dict()
    assert shown["family"] == "custom" and shown["unavailable"] is None and shown["hyperparameter_keys"] == {}
    assert [p["name"] for p in shown["parameters"]] == ["epochs", "note"]


def test_a_parameter_value_stays_one_argument(tmp_path, repo):
    t = load_template(write_template(tmp_path, repo[0]))
    values = parameter_values(t.custom, {"note": "1; rm -rf ~ $(touch x) `id` && echo", "epochs": 3})
    argv = render_command(t.custom, values, {"dataset": "/d s", "checkpoint": ""}, "/out")
    assert argv == [
        "python",
        "-u",
        "train.py",
        "--data",
        "/d s",
        "--output",
        "/out",
        "--epochs",
        "3",
        "--note",
        "1; rm -rf ~ $(touch x) `id` && echo",
    ]
    with pytest.raises(ValueError, match="unknown parameter 'lr'"):
        parameter_values(t.custom, {"lr": "0.1"})
    with pytest.raises(ValueError, match="'epochs' must be a number"):
        parameter_values(t.custom, {"epochs": "3; reboot"})


# ---- the run through the CLI ------------------------------------------------------------------
def cli(*args, cwd: Path, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_cli_trains_a_custom_template_on_a_yolo_export(tmp_path, repo):
    path, commit = repo
    write_template(tmp_path / "cvat-train-templates", path)
    generate_sample(tmp_path / "yolo.zip", format="yolo", images=6, width=64, height=48)
    listed = cli("models", cwd=tmp_path)
    assert "my-baseline" in listed.stdout and "from " in listed.stdout
    checked = cli("template", "check", "cvat-train-templates/my-baseline.yaml", cwd=tmp_path)
    assert checked.returncode == 0 and "epochs (input.number)" in checked.stdout, checked.stderr
    r = cli("train", "yolo.zip", "--model", "my-baseline", "--output", "run", "--hp", "note: 1; rm -rf ~", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "run" / "output"
    assert json.loads((out / "args.json").read_text())["note"] == "1; rm -rf ~"
    assert (out / "classes.csv").read_text().splitlines()[0] == "labels,id"
    assert set(json.loads((out / "model.json").read_text())) <= {"circle", "square", "triangle"}
    assert (tmp_path / "run" / "data" / "datasets" / "coco" / "annotations").is_dir()  # converted from YOLO
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "succeeded" and status["outputs"]["code_commit"] == commit


def test_cli_failing_script_fails_with_its_last_lines(tmp_path, repo):
    write_template(
        tmp_path / "cvat-train-templates",
        repo[0],
        command="python -u train.py --data {{inputs.dataset}} --output {{output}} --fail",
        environment={},
    )
    generate_sample(tmp_path / "coco.zip", format="coco", images=4, width=64, height=48)
    r = cli("train", "coco.zip", "--model", "my-baseline", "--output", "run", cwd=tmp_path)
    assert r.returncode == 1
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed"
    assert "exit code 3" in status["message"] and "asked to fail (--fail)" in status["message"], status["message"]


def test_cli_missing_model_output_fails_naming_it(tmp_path, repo):
    write_template(tmp_path / "cvat-train-templates", repo[0], outputs={"model": "*.pth"}, environment={})
    generate_sample(tmp_path / "coco.zip", format="coco", images=4, width=64, height=48)
    r = cli("train", "coco.zip", "--model", "my-baseline", "--output", "run", cwd=tmp_path)
    assert r.returncode == 1
    message = json.loads((tmp_path / "run" / "status.json").read_text())["message"]
    assert "outputs.model '*.pth' matches nothing" in message, message
