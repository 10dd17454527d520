"""The model catalog, hyperparameter parsing, builders and model folders (no training)."""

from __future__ import annotations

import json

import pytest
import torch

from jupyter_cvat_train import models
from jupyter_cvat_train.models.hyperparameters import HyperparameterError

EXPECTED = {
    "ssdlite320-mobilenet-v3",
    "ssd300-vgg16",
    "fasterrcnn-mobilenet-v3-fpn",
    "fasterrcnn-resnet50-fpn-v2",
    "fasterrcnn-resnet101-fpn",
    "fasterrcnn-resnet101-fpn-lowproposals",
    "retinanet-resnet50-fpn-v2",
    "fcos-resnet50-fpn",
    "maskrcnn-resnet50-fpn-v2",
    "retinanet-resnet50-keras",
    "retinanet-tiny-keras",
}


def test_catalog_has_every_template_with_onepanel_schema():
    templates = models.list_templates()
    assert {t.name for t in templates} == EXPECTED
    assert templates[0].name == "ssdlite320-mobilenet-v3"  # the recommended default first
    for t in templates:
        assert t.description and t.framework == ("tensorflow" if t.name.endswith("-keras") else "pytorch")
        assert t.task == ("instance-segmentation" if t.family == "maskrcnn" else "detection")
        names = [p["name"] for p in t.parameters]
        assert names == ["epochs", "hyperparameters"]
        for p in t.parameters:
            assert p["type"] in ("input.number", "textarea.textarea") and p["visibility"] == "public"
        for key in ("batch_size", "learning_rate", "image_size"):
            assert key in t.defaults
        d = t.to_dict()
        json.dumps(d)
        assert set(d["hyperparameter_keys"]) == set(models.valid_keys(t))
    low = models.get_template("fasterrcnn-resnet101-fpn-lowproposals").defaults["max_proposals"]
    assert low < models.get_template("fasterrcnn-resnet101-fpn").defaults["max_proposals"]


def test_unknown_template_lists_the_valid_ones():
    with pytest.raises(KeyError, match="ssdlite320-mobilenet-v3"):
        models.get_template("yolo-v99")


@pytest.mark.parametrize(
    "text",
    [
        "batch_size: 3\nlearning_rate: 0.005\npretrained: false\nepochs: 7",  # YAML (Onepanel now)
        "batch_size=3\nlearning_rate=0.005\npretrained=false\nepochs=7",  # key=value lines
        "batch_size=3, learning_rate=0.005, pretrained=false, epochs=7",  # comma separated
        "batch-size=3; initial-learning-rate=5e-3; pretrained=no; num-epochs=7",  # old spellings, ';'
    ],
)
def test_hyperparameters_in_all_forms(text):
    p = models.parse_hyperparameters(text, "fasterrcnn-mobilenet-v3-fpn")
    assert (p["batch_size"], p["learning_rate"], p["pretrained"], p["epochs"]) == (3, 0.005, False, 7)
    assert p["image_size"] == 640  # template default kept
    assert set(p) == set(models.valid_keys("fasterrcnn-mobilenet-v3-fpn"))


def test_old_onepanel_keys_map_and_later_inputs_win():
    p = models.parse_hyperparameters(
        ["num-steps: 100\nnum_clones: 2", {"batch-size": 2}, "num_steps=50"], "ssdlite320-mobilenet-v3"
    )
    assert (p["num_steps"], p["num_gpus"], p["batch_size"], p["epochs"]) == (50, 2, 2, None)


@pytest.mark.parametrize(
    "text,needle",
    [
        ("foo: 1", "unknown hyperparameter 'foo'"),
        ("batch_size=abc", "batch_size must be an integer"),
        ("batch_size: 2.5", "batch_size must be an integer"),
        ("pretrained: maybe", "pretrained must be true or false"),
        ("optimizer: rmsprop", "optimizer must be one of"),
        ("val_split: 95", "val_split must be"),
        ("stage_1_epochs: 2", "applies to other templates"),
    ],
)
def test_bad_hyperparameters_list_the_valid_keys(text, needle):
    with pytest.raises(HyperparameterError) as e:
        models.parse_hyperparameters(text, "ssdlite320-mobilenet-v3")
    assert needle in str(e.value)
    assert "Valid keys: amp, batch_size" in str(e.value)
    assert isinstance(e.value, ValueError) and "learning_rate" in e.value.valid_keys


def test_ssd300_refuses_too_small_images():
    with pytest.raises(HyperparameterError, match="image_size must be >= 280"):
        models.parse_hyperparameters("image_size: 128", "ssd300-vgg16")


def test_model_dir_round_trip(tmp_path):
    params = models.parse_hyperparameters("pretrained: false\nimage_size: 96", "fasterrcnn-mobilenet-v3-fpn")
    model = models.build_model("fasterrcnn-mobilenet-v3-fpn", 3, params)
    models.save_model_dir(
        tmp_path / "model", model, "fasterrcnn-mobilenet-v3-fpn", ["cat", "dog"], params, {"metrics": {"map": 0.5}}
    )
    assert (tmp_path / "model" / "classes.csv").read_text() == "labels,id\ncat,1\ndog,2\n"
    info = json.loads((tmp_path / "model" / "model.json").read_text())
    assert info["template"] == "fasterrcnn-mobilenet-v3-fpn" and info["metrics"] == {"map": 0.5}
    tm = models.load_trained_model(tmp_path / "model")
    assert (tm.labels, tm.task, tm.image_size, tm.model.training) == (["cat", "dog"], "detection", 96, False)
    for a, b in zip(model.state_dict().values(), tm.model.state_dict().values()):
        assert torch.equal(a, b)
    with torch.no_grad():
        out = tm.model([torch.rand(3, 60, 80)])
    assert out[0]["boxes"].shape[1] == 4


def test_unusable_weights_are_refused(tmp_path):
    with pytest.raises(models.WeightsError, match="does not exist"):
        models.read_weights(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(models.WeightsError, match="holds no model.pt"):
        models.read_weights(tmp_path / "empty")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(models.WeightsError, match="not a readable PyTorch weights file"):
        models.read_weights(tmp_path / "junk.pt")


def test_missing_pretrained_weights_name_the_file(tmp_path, monkeypatch):
    from jupyter_cvat_train.models import builders

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    if builders._online():
        pytest.skip("online: torchvision would download the weights")
    model = models.build_model("ssdlite320-mobilenet-v3", 3, {"pretrained": True})
    with pytest.raises(models.PretrainedWeightsUnavailable) as e:
        models.load_pretrained_weights(model, "ssdlite320-mobilenet-v3")
    msg = str(e.value)
    assert "ssdlite320_mobilenet_v3_large_coco-a79551df.pth" in msg and str(tmp_path) in msg
    assert "pretrained: false" in msg


@pytest.mark.parametrize(
    "text, key",
    [
        ("epochs: 1e308", "epochs"),
        ("batch_size: 1000000000000000000000000000000", "batch_size"),
        ("num_workers: 100000", "num_workers"),
        ("seed: -1", "seed"),
        ("detections_per_img: 1e9", "detections_per_img"),
    ],
)
def test_hyperparameters_out_of_range_are_refused_with_a_short_message(text, key):
    """Absurd values (that would run for ever or allocate without bound) are refused by
    range, and the message echoes at most a short excerpt of the value."""
    with pytest.raises(HyperparameterError) as e:
        models.parse_hyperparameters(text, "ssdlite320-mobilenet-v3")
    first = str(e.value).split(". Valid keys")[0]
    assert first.startswith(f"{key} must be") and ("<=" in first or ">=" in first), first
    assert len(first) < 120, first
