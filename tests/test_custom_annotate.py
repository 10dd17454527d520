"""A custom template's own ``annotate`` command and ``shell: true``: the example trained
through the CLI from a git repository made by the test, then the annotate job (CLI) runs
the template's annotate.py, whose COCO JSON becomes a CVAT zip that Datumaro imports back;
the threshold and the label mapping apply as for our models; a template without the
command says so. The injection value stays a value with and without a shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import datumaro as dm
import pytest
from test_custom_templates import make_repo, write_template

from jupyter_cvat_train.datasets import generate_sample
from jupyter_cvat_train.models.catalog import load_template
from jupyter_cvat_train.models.custom import parameter_values, render_annotate, render_command

INJECTION = "1; rm -rf ~; touch pwned; $(touch pwned2) `touch pwned3`"


def cli(*args, cwd: Path, home: Path, timeout=180) -> subprocess.CompletedProcess:
    """The CLI in a subprocess whose HOME is a canary folder (an injection would empty it)."""
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    (h / "canary.txt").write_text("still here")
    return h


def _import_cvat(zip_path: Path, names: list[str], dest: Path):
    """Datumaro's import of an annotation-only CVAT zip (its reader wants a file per image)."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    for n in names:
        (dest / "images" / n).parent.mkdir(parents=True, exist_ok=True)
        (dest / "images" / n).touch()
    return dm.Dataset.import_from(str(dest), "cvat")


@pytest.mark.slow
def test_the_templates_annotate_command_writes_a_cvat_zip(tmp_path, home):
    repo = tmp_path / "repo"
    make_repo(repo)
    write_template(tmp_path / "cvat-train-templates", repo)
    generate_sample(tmp_path / "yolo.zip", format="yolo", images=6, width=64, height=48)
    r = cli("train", "yolo.zip", "--model", "my-baseline", "--output", "run", cwd=tmp_path, home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "run" / "output"
    info = json.loads((out / "custom-run.json").read_text())
    assert info["template"] == "my-baseline" and info["annotate"] is True and info["code"] == "../code"
    model = json.loads((out / "model.json").read_text())  # the user's own model file, untouched
    labels = sorted(model)

    images = tmp_path / "new-images"
    images.mkdir()
    export = generate_sample(tmp_path / "new.zip", images=3, width=80, height=60, seed=5)
    with zipfile.ZipFile(export) as zf:
        for m in zf.namelist():
            if m.lower().endswith((".jpg", ".png")):
                (images / Path(m).name).write_bytes(zf.read(m))
    names = sorted(p.name for p in images.iterdir())
    r = cli(
        "annotate", "new-images", "--model-dir", "run/output", "--output", "pred.zip", "--format", "cvat",
        "--preview", "1", "--no-progress", cwd=tmp_path, home=home,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((tmp_path / "pred.summary.json").read_text())
    assert summary["engine"] == "template annotate command" and summary["images_done"] == 3
    assert summary["annotations"] == 3 * len(labels) and len(summary["previews"]) == 1
    ds = _import_cvat(tmp_path / "pred.zip", names, tmp_path / "imported")
    cats = ds.categories()[dm.AnnotationType.label]
    assert sorted(c.name for c in cats) == labels
    boxes = [a for item in ds for a in item.annotations if a.type == dm.AnnotationType.bbox]
    assert len(boxes) == 3 * len(labels) and len(ds) == 3
    for b in boxes:  # clipped to the image, the mean size of its label (a baseline)
        assert 0 <= b.x and b.x + b.w <= 80 + 1e-6 and 0 <= b.y and b.y + b.h <= 60 + 1e-6 and b.w > 0

    # the threshold applies as for our models (the example scores 0.9); a mapping too
    r = cli(
        "annotate", "new-images", "--model-dir", "run/output", "--output", "none.zip", "--threshold", "0.95",
        "--no-progress", cwd=tmp_path, home=home,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((tmp_path / "none.summary.json").read_text())["annotations"] == 0
    r = cli(
        "annotate", "new-images", "--model-dir", "run/output", "--output", "mapped.zip",
        "--map", f"{labels[0]}=thing", "--no-progress", cwd=tmp_path, home=home,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    mapped = json.loads((tmp_path / "mapped.summary.json").read_text())
    assert mapped["counts"]["thing"] == 3 and labels[0] not in mapped["counts"]
    # custom-run.json is untrusted like every job file: a "code" planted in it is not run
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "annotate.py").write_text(f"open({str(tmp_path / 'pwned')!r}, 'w').close()\n")
    (out / "custom-run.json").write_text(json.dumps({**info, "code": str(evil)}))
    r = cli(
        "annotate", "new-images", "--model-dir", "run/output", "--output", "again.zip", "--no-progress",
        cwd=tmp_path, home=home,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (tmp_path / "pwned").exists()
    assert (home / "canary.txt").is_file()


@pytest.mark.slow
def test_a_custom_model_without_an_annotate_command_is_refused_with_the_fix(tmp_path, home):
    repo = tmp_path / "repo"
    make_repo(repo)
    write_template(tmp_path / "cvat-train-templates", repo, annotate=None, environment={})
    generate_sample(tmp_path / "coco.zip", format="coco", images=4, width=64, height=48)
    r = cli("train", "coco.zip", "--model", "my-baseline", "--output", "run", cwd=tmp_path, home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli(
        "annotate",
        "coco.zip",
        "--model-dir",
        "run/output",
        "--output",
        "p.zip",
        "--no-progress",
        cwd=tmp_path,
        home=home,
    )
    assert r.returncode != 0
    assert (
        "our annotate engine cannot load its model, and the template has no 'annotate' command" in r.stderr + r.stdout
    )


def test_annotate_placeholders(tmp_path):
    repo = tmp_path / "repo"
    make_repo(repo)
    t = load_template(write_template(tmp_path, repo))
    argv = render_annotate(t.custom, parameter_values(t.custom, None), {"images": "/i m", "model": "/m"}, "/o")
    assert argv == [
        "python",
        "-u",
        "annotate.py",
        "--images",
        "/i m",
        "--model",
        "/m",
        "--output",
        "/o/annotations.json",
    ]


# ---- the injection case, with and without a shell ------------------------------------------------
WRITE_NOTE = (
    "python -c \"import sys; open(sys.argv[2], 'w').write(sys.argv[1])\" {{parameters.note}} {{output}}/note.txt"
)
SHELL_NOTE = "printf '%s' {{parameters.note}} > {{output}}/note.txt && echo ok > {{output}}/after.txt"


@pytest.mark.parametrize("shell", [False, True], ids=["argv", "shell"])
def test_a_value_stays_a_value_in_both_modes(tmp_path, home, shell):
    repo = tmp_path / "repo"
    make_repo(repo)
    t = load_template(write_template(tmp_path, repo, command=SHELL_NOTE if shell else WRITE_NOTE, shell=shell))
    values = parameter_values(t.custom, {"note": INJECTION})
    out = tmp_path / "out dir"  # a space too
    out.mkdir()
    argv = render_command(t.custom, values, {"dataset": "/d", "checkpoint": ""}, str(out))
    if shell:
        assert argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3
    else:
        assert INJECTION in argv
    if argv[0] == "python":
        argv[0] = sys.executable
    subprocess.run(argv, cwd=tmp_path, check=True, env={**os.environ, "HOME": str(home)}, timeout=60)
    assert (out / "note.txt").read_text() == INJECTION
    assert not list(tmp_path.glob("pwned*")) and (home / "canary.txt").is_file()
    if shell:
        assert (out / "after.txt").read_text() == "ok\n"  # the template's own shell syntax still works


@pytest.mark.slow
def test_a_shell_template_trains_through_the_cli_with_the_value_intact(tmp_path, home):
    repo = tmp_path / "repo"
    make_repo(repo)
    command = (
        "python -u train.py --data {{inputs.dataset}} --output {{output}} --note {{parameters.note}} "
        "&& echo trained > {{output}}/after.txt"
    )
    write_template(tmp_path / "cvat-train-templates", repo, command=command, shell=True)
    generate_sample(tmp_path / "coco.zip", format="coco", images=4, width=64, height=48)
    r = cli(
        "train", "coco.zip", "--model", "my-baseline", "--output", "run", "--hp", f"note: '{INJECTION}'",
        cwd=tmp_path, home=home,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "run" / "output"
    assert json.loads((out / "args.json").read_text())["note"] == INJECTION
    assert (out / "after.txt").read_text() == "trained\n"
    assert not list(tmp_path.rglob("pwned*")) and (home / "canary.txt").is_file()
