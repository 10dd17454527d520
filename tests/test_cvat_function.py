"""The trained model as a CVAT auto-annotation function, with the real cvat_sdk / cvat_cli
packages and no server: the spec passes the SDK's checks, the shapes pass the SDK's own
driver validation (the code path ``annotate_task`` and the agent use), the module loads
through cvat-cli's FunctionLoader (``--function-module ... -p model_dir=str:PATH``)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cvat_sdk", reason="the cvat extra is not installed (pip install 'jupyter_cvat_train[cvat]')")
pytest.importorskip("cvat_cli", reason="the cvat extra is not installed (pip install 'jupyter_cvat_train[cvat]')")

import cvat_sdk.auto_annotation as cvataa  # noqa: E402
import cvat_sdk.models as cvat_models  # noqa: E402
from cvat_sdk.auto_annotation.driver import _AnnotationMapper, _DetectionFunctionContextImpl  # noqa: E402
from PIL import Image  # noqa: E402
from test_annotate_job import _tiny_trained_model  # noqa: E402

from jupyter_cvat_train.jobs.runtime import JobError  # noqa: E402

MODULE = "jupyter_cvat_train.cvat.function"
LABELS = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    from jupyter_cvat_train.datasets import generate_sample

    return generate_sample(tmp_path_factory.mktemp("sample") / "shapes.zip", images=6, seed=1, width=160, height=120)


@pytest.fixture(scope="module")
def images(sample, tmp_path_factory) -> list[Path]:
    import zipfile

    out = tmp_path_factory.mktemp("images")
    with zipfile.ZipFile(sample) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(".jpg"))[:3]
        for n in names:
            (out / Path(n).name).write_bytes(zf.read(n))
    return sorted(out.iterdir())


@pytest.fixture(scope="module")
def ssd_dir(sample, tmp_path_factory) -> Path:
    """SSDlite after two real SGD steps on the sample export (tiny input size)."""
    return _tiny_trained_model(tmp_path_factory.mktemp("ssd") / "model", sample)


@pytest.fixture(scope="module")
def maskrcnn_dir(tmp_path_factory) -> Path:
    """A Mask R-CNN model folder (random weights, seeded; 96-pixel input): its untrained
    heads still score every class near 1/4, above the model's 0.05 floor, and give masks."""
    import torch

    from jupyter_cvat_train.models import build_model, save_model_dir

    torch.manual_seed(0)
    params = {"pretrained": False, "image_size": 96, "max_proposals": 50, "detections_per_img": 10}
    t = "maskrcnn-resnet50-fpn-v2"
    model = build_model(t, len(LABELS) + 1, params)
    return save_model_dir(tmp_path_factory.mktemp("mrcnn") / "model", model.eval(), t, LABELS, params)


def _load(model_dir: Path, **params):
    """The function as cvat-cli loads it: import the module by name, call create(**-p)."""
    from cvat_cli._internal.common import FunctionLoader

    return FunctionLoader(MODULE, None, {"model_dir": str(model_dir), **params}).load()


def _ctx(threshold):
    return _DetectionFunctionContextImpl(frame_name="x.jpg", conf_threshold=threshold, conv_mask_to_poly=False)


def _task_labels(names, type_="any"):
    return [cvat_models.Label(id=100 + i, name=n, type=type_, attributes=[], sublabels=[]) for i, n in enumerate(names)]


def _validate(fn, shapes, task_labels):
    """The SDK driver's own checks and remapping (what annotate_task does per frame)."""
    mapper = _AnnotationMapper(
        logging.getLogger("test"), fn.spec.labels, task_labels, allow_unmatched_labels=True, conv_mask_to_poly=False
    )
    return mapper.validate_and_remap(shapes, 3)


def _inside(points, w, h):
    xy = np.asarray(points, dtype=float).reshape(-1, 2)
    return bool((xy[:, 0] >= 0).all() and (xy[:, 0] <= w).all() and (xy[:, 1] >= 0).all() and (xy[:, 1] <= h).all())


@pytest.mark.slow
def test_detector_spec_shapes_and_threshold(ssd_dir, images):
    fn = _load(ssd_dir)
    assert isinstance(fn.spec, cvataa.DetectionFunctionSpec)
    assert [(lab.id, lab.name, lab.type) for lab in fn.spec.labels] == [
        (1, "circle", "rectangle"),
        (2, "square", "rectangle"),
        (3, "triangle", "rectangle"),
    ]
    # The spec is accepted by the SDK's validation and by the driver's mapping to a task.
    cvataa.DetectionFunctionSpec(labels=fn.spec.labels)
    assert fn.model_dir == ssd_dir
    total = 0
    for path in images:
        with Image.open(path) as im:
            im.load()
            w, h = im.size
            scores = sorted(a.score for a in fn.predict(im, 0.0))
            assert scores, "the tiny model gives some detections above its own floor"
            shapes_all = fn.detect(_ctx(0.0), im)
            # a threshold in the middle of the scores: exactly the objects at or above it
            t = scores[len(scores) // 2]
            expected = sum(s >= t for s in scores)
            shapes = fn.detect(_ctx(t), im)
        assert len(shapes) == expected < len(shapes_all) or len(shapes) == expected == len(shapes_all)
        for s in shapes_all:
            assert s.type.value == "rectangle" and s.frame == 0 and s.label_id in (1, 2, 3)
            assert _inside(s.points, w, h)
            assert s.points[2] > s.points[0] and s.points[3] > s.points[1]
        tags, remapped = _validate(fn, shapes_all, _task_labels(LABELS))
        assert tags == [] and len(remapped) == len(shapes_all)
        assert {s.label_id for s in remapped} <= {100, 101, 102} and all(s.frame == 3 for s in remapped)
        total += len(shapes_all)
    assert total > 0
    # A task with a subset of the labels: the others are dropped by the SDK's mapping.
    with Image.open(images[0]) as im:
        shapes = fn.detect(_ctx(0.0), im)
    squares = sum(s.label_id == 2 for s in shapes)  # counted first: the SDK remaps in place
    _, kept = _validate(fn, shapes, _task_labels(["square"]))
    assert len(kept) == squares
    # No threshold from CVAT: the function's default (0.5, or -p threshold=float:...)
    with Image.open(images[0]) as im:
        assert len(fn.detect(_ctx(None), im)) == sum(a.score >= 0.5 for a in fn.predict(im, 0.0))
        fn2 = _load(ssd_dir, threshold=0.0)
        assert len(fn2.detect(_ctx(None), im)) == len(fn.detect(_ctx(0.0), im))


@pytest.mark.slow
def test_detector_label_type_clash_is_the_sdks_error(ssd_dir):
    fn = _load(ssd_dir)
    with pytest.raises(cvataa.BadFunctionError, match="rectangle"):
        _validate(fn, [], _task_labels(LABELS, "polygon"))


@pytest.mark.slow
def test_mask_rcnn_gives_polygons(maskrcnn_dir, images):
    fn = _load(maskrcnn_dir, device="cpu")
    assert fn.task == "instance-segmentation"
    assert [lab.type for lab in fn.spec.labels] == ["polygon"] * 3
    n = 0
    for path in images:
        with Image.open(path) as im:
            im.load()
            w, h = im.size
            shapes = fn.detect(_ctx(0.0), im)
            again = fn.detect(_ctx(0.0), im)  # the SDK's validation remaps shapes in place
        for s in shapes:
            assert s.type.value == "polygon" and len(s.points) >= 6 and len(s.points) % 2 == 0
            assert _inside(s.points, w, h)
        _, remapped = _validate(fn, shapes, _task_labels(LABELS))
        assert len(remapped) == len(shapes)
        _, remapped = _validate(fn, again, _task_labels(LABELS, "polygon"))
        assert len(remapped) == len(shapes)
        n += len(shapes)
    assert n > 0, "the Mask R-CNN function gave no polygon on any image"


def test_bad_parameters_are_clear_messages(tmp_path):
    from cvat_cli._internal.common import FunctionLoader

    with pytest.raises(JobError, match="-p model_dir=str:PATH"):
        FunctionLoader(MODULE, None, {}).load()
    with pytest.raises(JobError, match="not found"):
        _load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(JobError, match="classes.csv"):
        _load(tmp_path / "empty")


@pytest.mark.slow
def test_cvat_cli_parses_and_loads_the_module(ssd_dir):
    """cvat-cli's own argument parser (-p NAME=TYPE:VALUE) and loader, in a fresh process:
    the module is found on the import path cvat-cli uses."""
    code = (
        "import argparse, sys\n"
        "from cvat_cli._internal.common import FunctionLoader, configure_function_implementation_arguments\n"
        "p = argparse.ArgumentParser(); p.set_defaults(_executor=None)\n"
        "configure_function_implementation_arguments(p)\n"
        "a = p.parse_args(sys.argv[1:])\n"
        "fn = FunctionLoader(a.function_module, a.function_file, a.function_parameters).load()\n"
        "print(type(fn).__name__, [l.name for l in fn.spec.labels], fn.default_threshold)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "--function-module", MODULE, "-p", f"model_dir=str:{ssd_dir}"]
        + ["-p", "threshold=float:0.3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ModelFunction ['circle', 'square', 'triangle'] 0.3"
