"""``--engine onnx``: the ONNX Runtime engine gives the torch engine's detections, caches
its exports, and works end to end from the CLI. Skipped when onnxruntime (the optional
``onnx`` extra) is not installed.

Models have random weights, but with batch-norm statistics recomputed on the test
images (a train-mode forward pass of the backbone, cumulative averages), so that
activations have their real magnitude rather than the vanishing ones of an untrained
network, and 3 labels, so that scores lie around 0.25-0.5 and there are detections
above the threshold.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is an optional extra (pip install '.[onnx]')")

LABELS = ["cat", "dog", "bird"]
THRESHOLD = 0.3
TEMPLATES = {"ssdlite320-mobilenet-v3": {}, "fasterrcnn-mobilenet-v3-fpn": {"image_size": 320}}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """4 JPEGs of the sample generator's shapes; one portrait, so that R-CNN models see two
    input sizes."""
    import shutil

    from jupyter_cvat_train.datasets import generate_sample

    tmp = tmp_path_factory.mktemp("onnx-images")
    folder = tmp / "images"
    folder.mkdir()
    for seed, (w, h), n in [(0, (640, 480), 3), (1, (480, 640), 1)]:
        export = generate_sample(tmp / f"export-{seed}", images=n, seed=seed, width=w, height=h)
        for k, jpg in enumerate(sorted((export / "images" / "default").glob("*.jpg"))):
            shutil.copy(jpg, folder / f"img_{seed}_{k}.jpg")
    return folder


def _model_dir(folder: Path, template: str, params: dict, images: Path) -> Path:
    import torch
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    from jupyter_cvat_train.models import build_model, save_model_dir

    torch.manual_seed(0)
    params = {"pretrained": False, **params}
    model = build_model(template, len(LABELS) + 1, params)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one pass gives the batch's statistics
    batch = [pil_to_tensor(Image.open(p).convert("RGB")).float() / 255 for p in sorted(images.glob("*.jpg"))]
    model.train()
    with torch.no_grad():
        image_list, _ = model.transform(batch)
        model.backbone(image_list.tensors)
    return save_model_dir(folder, model.eval(), template, LABELS, params)


@pytest.fixture(scope="module", params=list(TEMPLATES))
def model_dir(request, images, tmp_path_factory) -> Path:
    return _model_dir(tmp_path_factory.mktemp("onnx-model") / "model", request.param, TEMPLATES[request.param], images)


def _engines(model_dir: Path):
    from jupyter_cvat_train.annotate.engine import TorchEngine, limit_postprocess
    from jupyter_cvat_train.annotate.onnx_engine import OnnxEngine
    from jupyter_cvat_train.models import load_trained_model

    models = [load_trained_model(model_dir).model for _ in range(2)]
    for m in models:
        limit_postprocess(m, THRESHOLD, 100)
    return TorchEngine(models[0], "cpu"), OnnxEngine(models[1], model_dir)


def _rows(d) -> np.ndarray:
    """Detections as rows (score, box, label), sorted: order among equal scores is free."""
    r = np.concatenate([d.scores[:, None], d.boxes, d.labels[:, None].astype(np.float32)], axis=1)
    return r[np.lexsort(r.T[::-1])]


def _unmatched(ref, got, score_tol: float = 1e-3, box_tol: float = 1e-2) -> list:
    """Rows of ``ref`` without a partner in ``got`` (same label, score within score_tol,
    box corners within box_tol pixels), one partner each. Matching instead of comparing
    sorted lists: two scores within float rounding may come out in either order."""
    a, b = _rows(ref), _rows(got)
    free = np.ones(len(b), bool)
    missing = []
    for row in a:
        ok = (
            free
            & (b[:, 5] == row[5])
            & (np.abs(b[:, 0] - row[0]) <= score_tol)
            & (np.abs(b[:, 1:5] - row[1:5]).max(axis=1, initial=0) <= box_tol)
        )
        if ok.any():
            free[np.argmax(ok)] = False
        else:
            missing.append(row)
    return missing


def test_onnx_detections_equal_torch(model_dir, images):
    from jupyter_cvat_train.annotate.inputs import open_input
    from jupyter_cvat_train.annotate.pipeline import decode_image

    torch_engine, onnx_engine = _engines(model_dir)
    total = 0
    sizes = set()
    first = None
    for source in open_input(str(images)).images:
        dec = decode_image(source, torch_engine.input_size)
        sizes.add(tuple(dec.tensor.shape[-2:]))
        ref, got = torch_engine.predict([dec.tensor])[0], onnx_engine.predict([dec.tensor])[0]
        assert len(got.scores) == len(ref.scores), source.name
        assert _unmatched(ref, got) == [], f"{source.name}: torch detections (score, box, label) not in onnx's"
        assert got.boxes.dtype == np.float32 and got.labels.dtype == np.int64
        total += len(ref.scores)
        first = got if first is None else first
    assert total > 0, "no detections: the comparison would prove nothing"
    # One graph per input size, cached in the model folder and reused by the next engine.
    exported = sorted((model_dir / "onnx").glob("*.onnx"))
    assert len([p for p in exported if not p.name.startswith("boxhead")]) == len(sizes)
    stamps = {p: p.stat().st_mtime_ns for p in exported}
    _, again = _engines(model_dir)
    dec = decode_image(open_input(str(images)).images[0], again.input_size)
    np.testing.assert_array_equal(_rows(again.predict([dec.tensor])[0]), _rows(first))
    assert {p: p.stat().st_mtime_ns for p in sorted((model_dir / "onnx").glob("*.onnx"))} == stamps


def test_onnx_batch_of_two_equals_one_by_one(model_dir, images):
    from jupyter_cvat_train.annotate.inputs import open_input
    from jupyter_cvat_train.annotate.pipeline import decode_image

    _, engine = _engines(model_dir)
    decs = [decode_image(s, engine.input_size) for s in open_input(str(images)).images[:2]]
    both = engine.predict([d.tensor for d in decs])
    for d, det in zip(decs, both):
        one = engine.predict([d.tensor])[0]
        assert len(det.scores) == len(one.scores) and _unmatched(one, det) == []


def test_cli_engine_onnx_writes_coco(model_dir, images, tmp_path):
    import datumaro as dm

    exe = Path(sys.executable).parent / "cvat-train"
    counts = {}
    for engine in ("onnx", "torch"):
        out = tmp_path / f"{engine}.zip"
        r = subprocess.run(
            [
                str(exe),
                "annotate",
                str(images),
                "--model-dir",
                str(model_dir),
                "--output",
                str(out),
                "--format",
                "coco",
                "--threshold",
                str(THRESHOLD),
                "--engine",
                engine,
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr
        summary = json.loads(out.with_name(out.stem + ".summary.json").read_text())
        assert summary["engine"] == engine and summary["images_done"] == 4 and summary["images_failed"] == 0
        with zipfile.ZipFile(out) as zf:
            coco = json.loads(zf.read("annotations/instances_default.json"))
        assert all(a["score"] >= THRESHOLD for a in coco["annotations"])
        extract = tmp_path / engine
        with zipfile.ZipFile(out) as zf:
            zf.extractall(extract)
        (extract / "images").mkdir(exist_ok=True)  # Datumaro's reader wants the images folder; CVAT does not
        ds = dm.Dataset.import_from(str(extract), "coco_instances")
        counts[engine] = sum(len(item.annotations) for item in ds)
        assert counts[engine] == summary["annotations"] == len(coco["annotations"])
    assert counts["onnx"] == counts["torch"] > 0
