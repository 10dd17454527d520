"""Model families, the framework seam and the catalog's search path, through the public
functions, the CLI and real (tiny) training jobs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from jupyter_cvat_train import models
from jupyter_cvat_train.jobs.runtime import JobDir, run_job
from jupyter_cvat_train.models import catalog
from jupyter_cvat_train.models.registry import tf_missing_modules
from jupyter_cvat_train.models.schema import Key
from jupyter_cvat_train.training import train_job

FAST = {
    "num_workers": 0,
    "image_size": 96,
    "batch_size": 2,
    "epochs": 1,
    "detections_per_img": 10,
    "precise_bn_batches": 2,
}
BUILTIN = {t.name for t in models.list_templates(search_path=[])}


def template_yaml(
    name: str,
    *,
    family: str = "ssdlite",
    builder: str | None = "ssdlite320_mobilenet_v3_large",
    framework: str = "pytorch",
    defaults: str = "batch_size: 2\nimage_size: 96",
    extra: str = "",
) -> str:
    lines = [f"name: {name}", f"displayName: {name}", f"framework: {framework}", f"family: {family}"]
    if builder:
        lines.append(f"builder: {builder}")
    lines += [
        "task: detection",
        "description: a user's template",
        extra,
        "parameters:",
        "  - name: epochs",
        "    value: ''",
        "    type: input.number",
        "  - name: hyperparameters",
        "    type: textarea.textarea",
        "    value: |-",
    ]
    lines += [f"      {ln}" for ln in defaults.splitlines()]
    return "\n".join(ln for ln in lines if ln) + "\n"


@pytest.fixture(autouse=True)
def _own_search_path(monkeypatch, tmp_path):
    """No template folder of the machine or of another test: an empty Jupyter config
    dir, no CVAT_TRAIN_TEMPLATE_PATH, nothing configured (restored afterwards)."""
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter-config"))
    for var in ("CVAT_TRAIN_TEMPLATE_PATH", "CVAT_TRAIN_TEMPLATE_DIRS"):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)


@pytest.fixture(scope="module")
def sample_zip(tmp_path_factory) -> Path:
    from jupyter_cvat_train.datasets import generate_sample

    return generate_sample(tmp_path_factory.mktemp("sample") / "shapes.zip", images=8, seed=1, width=160, height=120)


def run_train(job: Path, dataset: Path, template: str, params: dict) -> dict:
    JobDir(job).create({"kind": "train", "template": template, "dataset": str(dataset), "parameters": params})
    return run_job(job, train_job, handle_sigterm=False)


def test_catalog_search_path_order_and_env(tmp_path, monkeypatch):
    root, a, b = tmp_path / "root", tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("CVAT_TRAIN_TEMPLATE_PATH", os.pathsep.join([str(a), "", str(b)]))
    dirs = models.user_template_dirs(root)
    assert dirs == [root / "cvat-train-templates", tmp_path / "jupyter-config" / "cvat-train-templates", a, b]
    (a / "one.yaml").parent.mkdir()
    (a / "one.yaml").write_text(template_yaml("user-one"))
    assert "user-one" in {t.name for t in models.list_templates()}  # CVAT_TRAIN_TEMPLATE_PATH alone
    cfg = tmp_path / "jupyter-config" / "cvat-train-templates"
    cfg.mkdir(parents=True)
    (cfg / "two.yml").write_text(template_yaml("user-two"))
    (root / "cvat-train-templates").mkdir(parents=True)
    (root / "cvat-train-templates" / "three.yaml").write_text(template_yaml("user-three"))
    names = [t.name for t in models.list_templates(search_path=dirs)]
    assert {"user-one", "user-two", "user-three"} <= set(names) and BUILTIN <= set(names)
    assert names[0] == models.DEFAULT_TEMPLATE
    t = models.get_template("user-three", search_path=dirs)
    d = t.to_dict()
    assert (t.builtin, d["source"], d["unavailable"]) == (
        False,
        str(root / "cvat-train-templates" / "three.yaml"),
        None,
    )
    assert d["defaults"]["pretrained"] is False  # no weights named: nothing to start from
    json.dumps(d)


def test_configured_search_path_reaches_job_processes(tmp_path):
    folder = tmp_path / "root" / "cvat-train-templates"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text(template_yaml("user-root-template"))
    assert models.configure_search_path(root_dir=tmp_path / "root")[0] == folder
    assert models.get_template("user-root-template").path == folder / "mine.yaml"
    # a process started from here (as the server starts job processes) sees the same catalog
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from jupyter_cvat_train import models; print(models.get_template('user-root-template').path)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(folder / "mine.yaml")


BROKEN = {
    "not-yaml.yaml": "name: [unclosed\n",
    "a-list.yaml": "- name: x\n",
    "empty.yaml": "",
    "no-family.yaml": "name: user-no-family\nbuilder: ssd300_vgg16\n",
    "bad-name.yaml": template_yaml("../../etc/passwd"),
    "name-not-text.yaml": "name: 12\nfamily: ssd\n",
    "bad-task.yaml": template_yaml("user-bad-task").replace("task: detection", "task: keypoints"),
    "unknown-default.yaml": template_yaml("user-unknown-default", defaults="batch_size: 2\nwarp_speed: 9"),
    "wrong-type-default.yaml": template_yaml("user-wrong-type", defaults="batch_size: many"),
    "params-not-list.yaml": "name: user-params\nfamily: ssd\nparameters: {a: 1}\n",
    "alias-bomb.yaml": "name: user-bomb\nfamily: ssd\na: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b]\n",
    "shadows-builtin.yaml": template_yaml("ssdlite320-mobilenet-v3"),
}


def test_broken_user_templates_are_skipped_with_a_warning(tmp_path, caplog):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for name, text in BROKEN.items():
        (first / name).write_text(text)
    (first / "latin1.yaml").write_bytes(b"name: caf\xe9\nfamily: ssd\n")
    (first / "huge.yaml").write_text(template_yaml("user-huge") + "# " + "x" * 300_000 + "\n")
    (first / "good.yaml").write_text(template_yaml("user-good"))
    (second / "again.yaml").write_text(template_yaml("user-good"))  # taken by the first folder
    (first / "notes.txt").write_text("not a template")
    with caplog.at_level(logging.WARNING, logger="jupyter_cvat_train.models"):
        cat = models.load_catalog([first, second, tmp_path / "missing"])
    assert set(cat.templates) == BUILTIN | {"user-good"}
    assert cat.templates["ssdlite320-mobilenet-v3"].builtin  # not replaced
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for name in [*BROKEN, "latin1.yaml", "huge.yaml"]:
        assert str(first / name) in logged, name
        assert any(str(first / name) in s for s in cat.skipped), name
    assert str(second / "again.yaml") in logged and str(first / "good.yaml") in logged
    assert "give it another name" in logged and "a built-in template's" in logged
    assert "too large" in logged and "aliases" in logged and "unknown hyperparameter 'warp_speed'" in logged
    with pytest.raises(KeyError, match="user-good"):  # the message lists the valid names
        models.get_template("user-bad-task", search_path=[first])
    # the CLI lists the catalog all the same
    runner = CliRunner()
    from jupyter_cvat_train.cli import main

    os.environ["CVAT_TRAIN_TEMPLATE_PATH"] = str(first)
    res = runner.invoke(main, ["models", "--json"], catch_exceptions=False)
    assert res.exit_code == 0
    listed = {t["name"]: t for t in json.loads(res.stdout)}
    assert set(listed) == BUILTIN | {"user-good"} and listed["user-good"]["source"] == str(first / "good.yaml")


def test_a_changed_template_file_is_read_again(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("name: [broken\n")
    assert models.load_catalog([tmp_path]).skipped
    f.write_text(template_yaml("user-fixed", defaults="batch_size: 4\nimage_size: 128"))
    os.utime(f, ns=(1, 1_000_000_000))  # a different mtime even on a coarse clock
    assert models.get_template("user-fixed", search_path=[tmp_path]).defaults["image_size"] == 128


@pytest.mark.parametrize(
    "framework,needle",
    [
        # with the tf extra the framework exists, and a pytorch family under it is the fault
        (
            "tensorflow",
            "framework tensorflow needs the `tf` extra"
            if tf_missing_modules()
            else "says framework 'tensorflow', but its family ssdlite is a pytorch family",
        ),
        ("jax", "framework 'jax' is not implemented here (frameworks here: pytorch"),
    ],
)
def test_unknown_framework_is_refused_at_plan_time(tmp_path, monkeypatch, sample_zip, framework, needle):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "other.yaml").write_text(template_yaml(f"user-{framework}", framework=framework))
    monkeypatch.setenv("CVAT_TRAIN_TEMPLATE_PATH", str(folder))
    t = models.get_template(f"user-{framework}")  # listed, marked unavailable
    assert needle in t.to_dict()["unavailable"]
    status = run_train(tmp_path / "job", sample_zip, t.name, FAST)
    msg = status["message"]
    assert status["state"] == "failed" and needle in msg
    assert f"template user-{framework} ({folder / 'other.yaml'})" in msg and "Traceback" not in msg
    assert not (tmp_path / "job" / "output" / "checkpoints").exists()
    with pytest.raises(models.TemplateUnavailable, match="framework"):  # annotation rebuilds through here
        models.build_model(t, 3, {})
    monkeypatch.chdir(tmp_path)
    from jupyter_cvat_train.cli import main

    res = CliRunner().invoke(main, ["train", str(sample_zip), "--model", t.name, "--output", str(tmp_path / "cli")])
    assert res.exit_code == 1 and needle in res.output and not (tmp_path / "cli").exists()


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"family": "yolo"}, "names family 'yolo', which is not registered"),
        (
            {"builder": "no_such_model"},
            "builder 'no_such_model' is neither a registered builder nor a torchvision model",
        ),
        ({"builder": None}, "names no builder"),
        (
            {"extra": "weights: Nope_Weights.COCO_V1"},
            "weights 'Nope_Weights.COCO_V1' is not a torchvision weights name",
        ),
    ],
)
def test_unbuildable_templates_are_refused_at_plan_time(tmp_path, monkeypatch, sample_zip, change, needle):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "t.yaml").write_text(template_yaml("user-unbuildable", **change))
    monkeypatch.setenv("CVAT_TRAIN_TEMPLATE_PATH", str(folder))
    status = run_train(tmp_path / "job", sample_zip, "user-unbuildable", FAST)
    assert status["state"] == "failed" and needle in status["message"], status["message"]
    assert str(folder / "t.yaml") in status["message"]


def test_pretrained_without_weights_is_refused_at_plan_time(tmp_path, monkeypatch, sample_zip):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "t.yaml").write_text(template_yaml("user-no-weights"))
    monkeypatch.setenv("CVAT_TRAIN_TEMPLATE_PATH", str(folder))
    status = run_train(tmp_path / "job", sample_zip, "user-no-weights", {**FAST, "pretrained": True})
    assert status["state"] == "failed" and "names no pretrained weights" in status["message"]
    assert "pretrained: false" in status["message"]


@pytest.mark.slow
def test_user_template_trains(tmp_path, monkeypatch, sample_zip):
    folder = tmp_path / "root" / "cvat-train-templates"
    folder.mkdir(parents=True)
    (folder / "tiny.yaml").write_text(template_yaml("user-tiny-ssdlite", defaults="batch_size: 2\nimage_size: 96"))
    models.configure_search_path(root_dir=tmp_path / "root")
    status = run_train(
        tmp_path / "job", sample_zip, "user-tiny-ssdlite", {"num_workers": 0, "epochs": 1, "precise_bn_batches": 2}
    )
    assert status["state"] == "succeeded", status.get("message")
    tm = models.load_trained_model(tmp_path / "job" / "output" / "model")
    assert (tm.template, tm.image_size) == ("user-tiny-ssdlite", 96)
    assert json.loads((tmp_path / "job" / "output" / "metrics.json").read_text())["history"][0]["epoch"] == 1


def _tiny_ssdlite(template, num_classes: int, params: dict):
    """A family's build function written outside the project: torchvision's SSDlite at
    ``image_size``, recording the family-only hyperparameter it was given."""
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)
    size = int(params["image_size"])
    model.transform = GeneralizedRCNNTransform(
        size, size, model.transform.image_mean, model.transform.image_std, size_divisible=1, fixed_size=(size, size)
    )
    model.knob = params["test_knob"]
    BUILT.append((template.name, num_classes, params["test_knob"]))
    return model


BUILT: list = []


def test_family_registered_outside_the_project_is_used(tmp_path, monkeypatch, sample_zip):
    family = models.register_family(
        models.ModelFamily(
            name="test-tiny-ssdlite",
            build=_tiny_ssdlite,
            head_prefixes=("head.classification_head.",),
            hyperparameters=("test_knob",),
            extra_keys={"test_knob": Key(int, 3, "a knob only this family has", min=1)},
            min_batch_size=2,
            min_batch_size_reason="two images per step",
            max_labels=10,
        ),
        replace=True,
    )
    assert models.get_family("test-tiny-ssdlite") is family
    with pytest.raises(ValueError, match="already registered"):
        models.register_family(models.ModelFamily(name="test-tiny-ssdlite", build=_tiny_ssdlite))
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        models.register_family(models.ModelFamily(name="test-bad", build=_tiny_ssdlite, hyperparameters=("nope",)))
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "t.yaml").write_text(
        template_yaml(
            "user-registered-family",
            family="test-tiny-ssdlite",
            builder=None,
            defaults="batch_size: 2\nimage_size: 96\ntest_knob: 5",
        )
    )
    monkeypatch.setenv("CVAT_TRAIN_TEMPLATE_PATH", str(folder))
    t = models.get_template("user-registered-family")
    assert "test_knob" in models.valid_keys(t) and "max_proposals" not in models.valid_keys(t)
    assert t.to_dict()["hyperparameter_keys"]["test_knob"]["default"] == 5
    with pytest.raises(
        models.HyperparameterError,
        match="batch_size must be >= 2 for user-registered-family "
        r"\(two images per step\)",
    ):
        models.parse_hyperparameters("batch_size: 1", t)
    with pytest.raises(models.HyperparameterError, match="test_knob must be >= 1"):
        models.parse_hyperparameters("test_knob: 0", t)
    with pytest.raises(models.HyperparameterError, match="applies to other templates"):
        models.parse_hyperparameters("test_knob: 2", "ssdlite320-mobilenet-v3")
    BUILT.clear()
    status = run_train(tmp_path / "job", sample_zip, t.name, {**FAST, "test_knob": 7})
    assert status["state"] == "succeeded", status.get("message")
    assert ("user-registered-family", 4, 7) in BUILT  # 3 labels of the sample + background
    tm = models.load_trained_model(tmp_path / "job" / "output" / "model")
    assert tm.model.knob == 7 and tm.template == "user-registered-family"


def test_catalog_imports_neither_the_parser_nor_torch():
    code = (
        "import sys; from jupyter_cvat_train.models import catalog; "
        "import json; json.dumps([t.to_dict() for t in catalog.list_templates()]); "
        "bad = [m for m in ('torch', 'jupyter_cvat_train.models.hyperparameters', 'jupyter_server', 'tornado') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    src = Path(catalog.__file__).read_text()
    assert "hyperparameters import" not in src and "import hyperparameters" not in src
