"""``%cvat_train`` / ``%%cvat_train`` through a real IPython InteractiveShell, with real
job processes in a temporary runs root (tiny data, CPU)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from jupyter_cvat_train import api
from jupyter_cvat_train.api import config
from jupyter_cvat_train.api.display import JOB_MIME

TINY_HP = "pretrained: false\nepochs: 1\nimage_size: 64\nbatch_size: 4\nnum_workers: 0\ndetections_per_img: 10"


@pytest.fixture
def shell(tmp_path, monkeypatch):
    """An InteractiveShell with the extension loaded, working in ``tmp_path`` (the runs
    root is ./cvat-train-runs there: no variable from the environment)."""
    for name in (config.RUNS_ROOT_ENV, config.ROOT_DIR_ENV, "CVAT_TRAIN_SERVER_URL", "CVAT_TRAIN_SERVER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_cvat_train")
    ip.run_line_magic("config", "CvatTrainMagics.runs_root = ''")
    yield ip
    config.close_all()
    api.set_runs_root(None)


def magic(ip, line, cell=None):
    if cell is None:
        return ip.run_line_magic("cvat_train", line)
    return ip.run_cell_magic("cvat_train", line, cell)


def usage_error(ip, line, cell=None) -> str:
    with pytest.raises(UsageError) as e:
        magic(ip, line, cell)
    message = str(e.value)
    assert "\n" not in message and "Traceback" not in message, message
    return message


@pytest.fixture
def sample(tmp_path) -> Path:
    return api.sample_dataset(tmp_path / "sample.zip", images=8, width=96, height=72, seed=2)


def test_bad_input_is_one_usage_line_that_names_the_fix(shell, sample):
    msg = usage_error(shell, "bake export.zip")
    assert "unknown subcommand 'bake'" in msg
    for sub in ("validate", "models", "train", "annotate", "sync", "jobs", "logs", "cancel", "tensorboard"):
        assert sub in msg
    assert "required: DATASET" in usage_error(shell, "train")
    assert "required: PATH" in usage_error(shell, "validate")
    assert "missing.zip does not exist" in usage_error(shell, "validate missing.zip")
    assert "does not exist" in usage_error(shell, "train missing.zip")
    msg = usage_error(shell, "train sample.zip --hp nope=1")
    assert "unknown hyperparameter 'nope'" in msg and "Valid keys:" in msg and "batch_size" in msg
    msg = usage_error(shell, 'train sample.zip --hp "{nope: 1, epochs: 1}"')  # YAML braces reach the parser as typed
    assert "unknown hyperparameter 'nope'" in msg
    msg = usage_error(shell, "train sample.zip --model no-such-model")
    assert "no-such-model" in msg and "ssdlite320-mobilenet-v3" in msg
    msg = usage_error(shell, "train sample.zip --model ssdlite320-mobilenet-v3", "epochs: {nope")
    assert msg.startswith("hyperparameters:")
    assert "no job 'nosuchjob'" in usage_error(shell, "logs nosuchjob")
    assert "no job 'nosuchjob'" in usage_error(shell, "cancel nosuchjob")
    assert "no job 'nosuchjob'" in usage_error(shell, "tensorboard nosuchjob")
    assert "no job 'nosuchjob'" in usage_error(shell, "jobs show nosuchjob")
    assert "unknown format 'nope'" in usage_error(shell, "validate sample.zip --format nope")
    assert "'up' or 'down'" in usage_error(shell, "sync sideways . file:///tmp")
    assert "takes no cell body" in usage_error(shell, "validate sample.zip", "epochs: 1")
    assert "check the quotes" in usage_error(shell, "validate 'sample.zip")
    assert "--threshold" in usage_error(shell, "annotate imgs --model-dir m --threshold high")
    assert "neither an existing path nor a job id" in usage_error(shell, "annotate . --model-dir nomodel")
    assert "variable name" in usage_error(shell, "validate sample.zip --var 1x")
    assert not (Path.cwd() / "cvat-train-runs").exists() or not api.jobs()  # nothing was queued


def test_validate_models_jobs_return_objects(shell, sample, tmp_path):
    report = magic(shell, "validate sample.zip")
    assert isinstance(report, api.ValidationReport) and report.ok and report.summary["images"] == 8
    html = report._repr_html_()
    assert "OK: ready to train" in html and "<table" in html
    assert "8 images" in repr(report)
    assert magic(shell, "validate sample.zip --json")["images"] == 8

    broken = api.sample_dataset(tmp_path / "broken", images=3, width=64, height=48)
    next((broken / "images" / "default").iterdir()).unlink()
    shell.user_ns["path"] = str(broken)
    bad = magic(shell, "validate $path")  # $name is expanded from the user's variables
    assert not bad.ok and "missing-image" in bad._repr_html_() and "NOT READY" in repr(bad)

    assert magic(shell, "validate sample.zip -q") is None
    assert shell.user_ns["_cvat_train"].ok
    assert magic(shell, "validate sample.zip --var rep") is None and shell.user_ns["rep"].ok

    templates = magic(shell, "models")
    assert templates[0].name == "ssdlite320-mobilenet-v3" and "(default)" in templates._repr_html_()
    assert {t["name"] for t in magic(shell, "models --json")} >= {"ssdlite320-mobilenet-v3"}
    assert magic(shell, "jobs") == [] and magic(shell, "jobs list") == []
    shell.run_line_magic("cvat_train", "validate -h")  # prints the arguments, no error


@pytest.mark.slow
def test_train_cell_magic_annotate_sync_logs_cancel(shell, sample, tmp_path, capsys):
    job = magic(shell, "train sample.zip --model ssdlite320-mobilenet-v3 --output model-copy", TINY_HP)
    assert isinstance(job, api.Job) and job.kind == "train"
    bundle = job._repr_mimebundle_()
    assert set(bundle) == {JOB_MIME, "text/html", "text/plain"}
    assert bundle[JOB_MIME] == {"jobId": job.id, "name": "train ssdlite320-mobilenet-v3 on sample.zip", "kind": "train"}
    assert str(tmp_path) not in str(bundle[JOB_MIME])  # no paths

    job.wait(timeout=300)
    assert job.state == "succeeded" and Path(job.outputs["model_dir"], "model.pt").is_file()
    assert (tmp_path / "model-copy" / "model.pt").is_file()  # --output: copied once wait() saw it succeed
    assert list(job.metrics["epoch"]) == [1] and "AP/circle" in job.metrics.columns
    assert "last epoch" in job._repr_mimebundle_()["text/html"]
    assert "epoch 1" in job.plot()["text/plain"] and job.plot()["application/vnd.vegalite.v5+json"]["data"]["values"]

    assert magic(shell, f"logs {job.id[-6:]}") is None
    assert "epoch 1/1" in capsys.readouterr().out
    assert magic(shell, f"logs {job.id} -f") is None  # a finished job: its log, then its end
    assert f"[job {job.id} succeeded: mAP" in capsys.readouterr().out
    assert magic(shell, f"jobs show {job.id}") == job
    assert [j.id for j in magic(shell, "jobs")] == [job.id]

    ann = magic(
        shell, f"annotate sample.zip --model-dir {job.id} -o pre.zip --threshold 0.01 --preview 2 --format cvat"
    )
    ann.wait(timeout=300)
    with zipfile.ZipFile(ann.outputs["output"]) as z:
        assert "annotations.xml" in z.namelist()
    html = ann._repr_mimebundle_()["text/html"]
    assert html.count("data:image/png;base64,") == 2

    storage = tmp_path / "storage"
    storage.mkdir()
    up = magic(shell, f"sync up {Path(job.outputs['model_dir'])} {storage.as_uri()}")
    up.wait(timeout=120)
    assert (storage / "model.pt").is_file()

    assert magic(shell, f"cancel {job.id}").state == "succeeded"  # a finished job stays as it is
    msg = usage_error(shell, f"tensorboard {job.id}")
    assert "CVAT_TRAIN_SERVER_URL" in msg  # no server found: says what to set


def test_config_runs_root(shell, tmp_path):
    other = tmp_path / "elsewhere" / "runs"
    shell.run_line_magic("config", f"CvatTrainMagics.runs_root = '{other}'")
    assert api.runs_root() == other and api.root_dir() == other.parent
    shell.run_line_magic("config", "CvatTrainMagics.runs_root = ''")
    assert api.runs_root() == tmp_path / "cvat-train-runs"
