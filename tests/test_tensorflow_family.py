"""The TensorFlow family (KerasHub RetinaNet) end to end, with real CPU runs on generated shapes.

One training run (the module fixture, in a job process of its own) gives the output
contract and the quality floor; the other tests resume it, fine-tune from it on an export
with other labels and polygons only, cancel a run with SIGTERM, and annotate with its
model into COCO and CVAT zips that Datumaro imports back. TensorFlow runs only in the
job processes (``python -m jupyter_cvat_train ...``), never in the test process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from jupyter_cvat_train.jobs.runtime import JobDir, run_job
from jupyter_cvat_train.models.registry import tf_missing_modules
from jupyter_cvat_train.training import train_job

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = "retinanet-tiny-keras"
# The quality floor: best mAP@.5 on the validation split within EPOCHS epochs (80 generated
# images, 64 train / 16 val, 128 px, from scratch). Measured before it was set, exports of
# seeds 0-4 with this very run: 0.704, 0.759, 0.722, 0.624, 0.613 (epochs 1-2 stay near 0:
# from scratch; 0.52-0.76 at epoch 3).
QUALITY_FLOOR = 0.5
EPOCHS = 5
HP = "image_size=128,batch_size=8,precise_bn_batches=2"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(tf_missing_modules()),
        reason=f"TensorFlow's extra is not installed ({', '.join(tf_missing_modules())} missing): make setup installs it",
    ),
]


def cli(*args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    """``cvat-train ARGS`` in a process of its own (TensorFlow stays out of the test process)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check:
        assert proc.returncode == 0, (
            f"cvat-train {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def events(job: Path, kind: str) -> list[dict]:
    return [e for e in JobDir(job).read_events() if e["type"] == kind]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    from jupyter_cvat_train.datasets import generate_sample

    return generate_sample(tmp_path_factory.mktemp("tf-data") / "shapes.zip", images=80, seed=0)


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory) -> Path:
    """A job folder: retinanet-tiny-keras trained EPOCHS epochs on the shapes."""
    job = tmp_path_factory.mktemp("tf-train") / "job"
    cli("train", str(shapes), "--model", TEMPLATE, "--output", str(job), "--epochs", str(EPOCHS), "--hp", HP)
    return job


def test_output_contract(trained):
    out = trained / "output"
    status = JobDir(trained).read_status()
    assert status["state"] == "succeeded", status
    outputs = status["outputs"]
    assert outputs["epochs"] == EPOCHS and 1 <= outputs["best_epoch"] <= EPOCHS
    assert Path(outputs["model_dir"]) == out / "model"
    for f in ("model.keras", "model.weights.h5", "classes.csv", "model.json"):
        assert (out / "model" / f).is_file(), f
    assert (out / "model" / "classes.csv").read_text().splitlines() == [
        "labels,id",
        "circle,1",
        "square,2",
        "triangle,3",
    ]
    info = json.loads((out / "model" / "model.json").read_text())
    assert info["framework"] == "tensorflow" and info["template"] == TEMPLATE
    assert info["labels"] == ["circle", "square", "triangle"] and info["input_size"] == 128
    for name in ("last", "best"):
        for suffix in (".weights.h5", ".optimizer.npz", ".json"):
            assert (out / "checkpoints" / f"{name}{suffix}").is_file()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["framework"] == "tensorflow" and len(metrics["history"]) == EPOCHS
    assert metrics["evaluator"] in ("faster-coco-eval", "pycocotools")
    (plan,) = events(trained, "plan")
    assert plan["framework"] == "tensorflow" and plan["train_images"] == 64 and plan["val_images"] == 16
    assert [e["epoch"] for e in events(trained, "metrics")] == list(range(1, EPOCHS + 1))
    progress = events(trained, "progress")
    assert progress and progress[-1]["done"] == progress[-1]["total"] == EPOCHS * 8


def test_quality_floor(trained):
    """mAP@.5 on the validation split, by the evaluator and split the PyTorch models use."""
    best = json.loads((trained / "output" / "metrics.json").read_text())["best"]
    assert best["map_50"] >= QUALITY_FLOOR, best


def test_same_split_and_evaluator_as_pytorch(trained, shapes):
    """The plan (hence the split) is the PyTorch family's: the same validation images."""
    from jupyter_cvat_train.training.plan import make_plan

    torch_plan = make_plan(
        {"template": "ssdlite320-mobilenet-v3", "dataset": str(shapes), "parameters": "pretrained=false"},
        trained / "output",
        log=lambda m: None,
    )
    tf_plan = make_plan({"template": TEMPLATE, "dataset": str(shapes)}, trained / "output", log=lambda m: None)
    assert [it.id for it in tf_plan.val_items] == [it.id for it in torch_plan.val_items]


def test_resume_extends_the_run(trained, tmp_path):
    job = tmp_path / "job"
    shutil.copytree(trained, job)
    cli("train", json.loads((job / "job.json").read_text())["dataset"], "--model", TEMPLATE, "--output", str(job),
        "--resume", "--epochs", str(EPOCHS + 1), "--hp", HP)  # fmt: skip
    status = JobDir(job).read_status()
    assert status["state"] == "succeeded" and status["outputs"]["epochs"] == EPOCHS + 1
    ck = json.loads((job / "output" / "checkpoints" / "last.json").read_text())
    assert ck["epoch"] == EPOCHS + 1 and ck["step"] == (EPOCHS + 1) * 8
    assert [h["epoch"] for h in ck["history"]] == list(range(1, EPOCHS + 2))
    # resuming a finished run without more epochs says how to extend it
    proc = cli("train", str(job / "x.zip"), "--model", TEMPLATE, "--output", str(job), "--resume", check=False)
    assert proc.returncode != 0


def _polygons_with_other_labels(tmp_path: Path) -> Path:
    """A CVAT for images 1.1 export (polygons only, no boxes) whose 'triangle' is called 'hexagon'."""
    from jupyter_cvat_train.datasets import generate_sample

    src = generate_sample(tmp_path / "cvat.zip", format="cvat", images=24, seed=3)
    out = tmp_path / "cvat-other-labels.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(".xml"):
                text = data.decode()
                assert "<polygon" in text and "<box" not in text
                data = text.replace("triangle", "hexagon").encode()
            zout.writestr(info, data)
    return out


def test_finetune_with_other_labels_from_polygons(trained, tmp_path):
    data = _polygons_with_other_labels(tmp_path)
    job = tmp_path / "ft"
    cli("train", str(data), "--model", TEMPLATE, "--output", str(job), "--epochs", "1",
        "--checkpoint", str(trained / "output" / "model"), "--hp", HP)  # fmt: skip
    status = JobDir(job).read_status()
    assert status["state"] == "succeeded", status
    warnings = [e["message"] for e in events(job, "warning")]
    assert any("label head was rebuilt" in w for w in warnings), warnings
    assert (job / "output" / "model" / "classes.csv").read_text().splitlines()[1:] == [
        "circle,1",
        "square,2",
        "hexagon,3",
    ]


def test_sigterm_cancels_after_saving(shapes, tmp_path):
    job = tmp_path / "cancel"
    JobDir(job).create({"kind": "train", "template": TEMPLATE, "dataset": str(shapes), "parameters": HP, "epochs": 200})
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    with open(job / "job.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_cvat_train.training", str(job)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        while not events(job, "progress"):
            assert proc.poll() is None, (job / "job.log").read_text()[-3000:]
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGTERM)  # as the launcher does: the whole process group
        assert proc.wait(timeout=300) == 0, (job / "job.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    status = JobDir(job).read_status()
    assert status["state"] == "cancelled", status
    assert "last checkpoint saved" in status["message"]
    ck = json.loads((job / "output" / "checkpoints" / "last.json").read_text())
    assert ck["step"] >= 1 and ck["epoch"] < 200 and ck["framework"] == "tensorflow"
    assert (job / "output" / "checkpoints" / "last.weights.h5").is_file()


@pytest.mark.parametrize("fmt", ["coco", "cvat"])
def test_annotate_a_folder_into_importable_zips(trained, tmp_path, fmt):
    import datumaro as dm

    from jupyter_cvat_train.datasets import generate_sample

    src = generate_sample(tmp_path / "new.zip", images=6, seed=9)
    folder = tmp_path / "images"
    with zipfile.ZipFile(src) as zf:
        names = [n for n in zf.namelist() if n.endswith(".jpg")]
        folder.mkdir()
        for n in names:
            (folder / Path(n).name).write_bytes(zf.read(n))
    (folder / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / f"pred-{fmt}.zip"
    cli("annotate", str(folder), "--model-dir", str(trained / "output" / "model"), "--output", str(out),
        "--format", fmt, "--threshold", "0.3")  # fmt: skip
    summary = json.loads(out.with_name(f"pred-{fmt}.summary.json").read_text())
    assert summary["engine"] == "tensorflow"
    assert [f["image"] for f in summary["failed"]] == ["broken.jpg"]
    extracted = tmp_path / f"x-{fmt}"
    with zipfile.ZipFile(out) as zf:
        zf.extractall(extracted)
    (extracted / "images").mkdir(exist_ok=True)
    for n in names:
        (extracted / "images" / Path(n).name).touch()
    ds = dm.Dataset.import_from(str(extracted), {"coco": "coco_instances", "cvat": "cvat"}[fmt])
    label_names = [c.name for c in ds.categories()[dm.AnnotationType.label]]
    assert set(label_names) >= {"circle", "square", "triangle"}
    boxes = [a for item in ds for a in item.annotations if a.type == dm.AnnotationType.bbox]
    assert len(ds) >= len(names) and len(boxes) >= len(names)  # the shapes are found


def test_onepanel_tfod_form_with_num_clones_trains_under_mirrored_strategy(tmp_path):
    """Onepanel's TFOD spellings as pasted; num_clones 2 on the CPU = two logical CPU replicas."""
    from jupyter_cvat_train.datasets import generate_sample

    data = generate_sample(tmp_path / "m.zip", images=24, seed=2)
    job = tmp_path / "mirrored"
    hp = "num-steps: 2\nbatch_size: 4\ninitial_learning_rate: 0.001\nnum-clones: 2\nimage_size: 96\nprecise_bn_batches: 1"
    cli("train", str(data), "--model", TEMPLATE, "--output", str(job), "--device", "cpu", "--hp", hp)
    status = JobDir(job).read_status()
    assert status["state"] == "succeeded", status
    (plan,) = events(job, "plan")
    assert plan["gpus"] == 2 and plan["epochs"] == 1 and "CPU:1" in plan["device"]
    ck = json.loads((job / "output" / "checkpoints" / "last.json").read_text())
    assert ck["params"]["num_gpus"] == 2 and ck["params"]["learning_rate"] == 0.001


PRESET_PROBE = """
import os, numpy as np
from jupyter_cvat_train.models import get_template, keras_retinanet as kr, parse_hyperparameters
tf, keras, keras_hub = kr.import_keras()
t = get_template("tiny-pretrained")
params = parse_hyperparameters({"image_size": 96}, t.name)
try:
    kr.build_retinanet(t.name, 4, params)
except kr.PretrainedWeightsUnavailable as e:
    print("ABSENT", e)
saved = keras_hub.models.ResNetBackbone(image_shape=(None, None, 3), **t.raw["backbone"])
saved.save_to_preset(os.path.join(os.environ["KERAS_HOME"], "presets", "tiny_resnet_test"))
model, how = kr.build_retinanet(t.name, 4, params)
same = all(np.array_equal(a, b) for a, b in zip(model.backbone.image_encoder.get_weights(), saved.get_weights()))
print("PRETRAINED", params["pretrained"], same, how)
"""


def test_pretrained_backbone_from_the_local_keras_cache(tmp_path):
    """weights_backbone names a KerasHub preset: absent -> the offline message; saved into
    $KERAS_HOME/presets -> its weights fill the backbone (nothing is downloaded)."""
    tpl = tmp_path / "templates"
    tpl.mkdir()
    text = (REPO / "jupyter_cvat_train" / "models" / "templates" / f"{TEMPLATE}.yaml").read_text()
    text = text.replace(f"name: {TEMPLATE}", "name: tiny-pretrained").replace(
        "task: detection", "task: detection\nweights_backbone: tiny_resnet_test"
    )
    (tpl / "tiny-pretrained.yaml").write_text(text)
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        CVAT_TRAIN_TEMPLATE_PATH=str(tpl),
        KERAS_HOME=str(tmp_path / "keras"),
        KAGGLEHUB_CACHE=str(tmp_path / "kagglehub"),
    )
    proc = subprocess.run([sys.executable, "-c", PRESET_PROBE], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ABSENT pretrained weights for tiny-pretrained (KerasHub preset tiny_resnet_test)" in proc.stdout
    assert "pretrained: false" in proc.stdout
    assert "PRETRAINED True True backbone pretrained from" in proc.stdout, proc.stdout


# ---- bad input (checked before TensorFlow is imported: in this process) -----------------------


def _run(tmp_path: Path, **spec) -> dict:
    job = JobDir(tmp_path / "job").create({"kind": "train", "template": TEMPLATE, **spec})
    return run_job(job.path, train_job, handle_sigterm=False)


def test_batch_size_above_the_split_is_refused(shapes, tmp_path):
    status = _run(tmp_path, dataset=str(shapes), parameters="batch_size=100")
    assert status["state"] == "failed"
    assert "batch_size 100 is larger than the training split" in status["message"]


def test_pytorch_checkpoint_is_refused_with_the_reason(shapes, tmp_path):
    from jupyter_cvat_train import models

    torch_dir = tmp_path / "torch-model"
    params = models.parse_hyperparameters("pretrained=false", "ssdlite320-mobilenet-v3")
    model = models.build_model("ssdlite320-mobilenet-v3", 4, params)
    models.save_model_dir(torch_dir, model, "ssdlite320-mobilenet-v3", ["circle", "square", "triangle"], params)
    for resume in (False, True):
        status = _run(tmp_path / str(resume), dataset=str(shapes), checkpoint=str(torch_dir), resume=resume)
        assert status["state"] == "failed"
        assert "is a PyTorch model" in status["message"] and "TensorFlow (Keras) template" in status["message"]


def test_export_without_labels_is_refused(tmp_path):
    from PIL import Image

    root = tmp_path / "nolabels"
    (root / "images" / "default").mkdir(parents=True)
    (root / "annotations").mkdir()
    Image.new("RGB", (64, 48)).save(root / "images" / "default" / "a.jpg")
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}], "annotations": [], "categories": []}
    (root / "annotations" / "instances_default.json").write_text(json.dumps(doc))
    status = _run(tmp_path, dataset=str(root))
    assert status["state"] == "failed"
    assert "label" in status["message"], status["message"]


def test_without_the_tf_extra_the_message_names_the_install_command(shapes, tmp_path):
    """TensorFlow made unfindable in a fresh process (as on an install without the extra)."""
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras', 'keras_hub'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from jupyter_cvat_train.cli import main\n"
        "main()\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    job = tmp_path / "job"
    proc = subprocess.run(
        [sys.executable, "-c", code, "train", str(shapes), "--model", TEMPLATE, "--output", str(job)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "needs the `tf` extra" in text and "jupyter_cvat_train[tf]" in text and "--no-deps keras-hub" in text, text
    listing = subprocess.run(
        [sys.executable, "-c", code, "models"], capture_output=True, text=True, env=env, timeout=300
    ).stdout
    assert "unavailable here" in listing.split("retinanet-tiny-keras", 1)[1].split("\n\n", 1)[0]
