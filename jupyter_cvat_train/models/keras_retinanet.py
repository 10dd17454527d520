"""The TensorFlow family: KerasHub's RetinaNet, built from a config (no weight download).

Templates with ``framework: tensorflow`` and ``family: keras-retinanet`` describe the
model in their YAML::

    backbone:          # keras_hub.models.ResNetBackbone keyword arguments
      input_conv_filters: [64]
      input_conv_kernel_sizes: [7]
      stackwise_num_filters: [64, 128, 256, 512]
      stackwise_num_blocks: [3, 4, 6, 3]
      stackwise_num_strides: [1, 2, 2, 2]
      block_type: bottleneck_block
    min_level: 3       # feature pyramid levels (RetinaNetBackbone)
    max_level: 7
    head_conv_layers: 4  # convolutions before each prediction head's logits
    weights_backbone: resnet_50_imagenet   # a KerasHub preset, read from the local cache only

The model works on square ``image_size`` x ``image_size`` float images normalized with
the ImageNet mean and deviation (:func:`preprocess`), in ``xyxy`` pixel boxes; class ids
are 0..K-1 inside Keras and 1..K (``classes.csv``) outside. Pretrained backbone weights
come from the local KerasHub cache (kagglehub's ``~/.cache/kagglehub`` or
``$KAGGLEHUB_CACHE``, or ``$KERAS_HOME/presets/<preset>``) when present; nothing is
downloaded. Without them, :class:`PretrainedWeightsUnavailable` says where to put them
and to set ``pretrained: false``.

A model folder of this family (``output/model/``)::

    model.keras        the whole Keras model (keras.saving.load_model, compile=False)
    model.weights.h5   its weights (what the project loads: rebuilt from the template)
    classes.csv        labels,id (ids 1..K)
    model.json         {"framework": "tensorflow", "template", "labels", "parameters", ...}

Importing this module does not import TensorFlow; the functions do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..fileio import atomic_write
from .catalog import Template, get_template
from .classes import write_classes_csv
from .registry import TF_INSTALL_HINT as INSTALL_HINT
from .registry import tf_missing_modules as missing_modules

FORMAT_VERSION = 1
FRAMEWORK = "tensorflow"
BOX_FORMAT = "xyxy"
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255.0
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255.0


class PretrainedWeightsUnavailable(RuntimeError):
    """The template's KerasHub backbone preset is not in the local cache (nothing is downloaded)."""


def import_keras():
    """(tensorflow, keras, keras_hub), with the Keras backend set to TensorFlow.
    Raises RuntimeError naming the install command when the tf extra is missing."""
    missing = missing_modules()
    if missing:
        raise RuntimeError(f"TensorFlow templates need {', '.join(missing)}: {INSTALL_HINT}")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import keras_hub
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"Keras was imported with the {keras.backend.backend()} backend before this job set TensorFlow: "
            f"unset KERAS_BACKEND or set it to tensorflow"
        )
    return tf, keras, keras_hub


def _config(t: Template) -> dict:
    raw = t.raw
    return {
        "backbone": dict(raw.get("backbone") or {}),
        "min_level": int(raw.get("min_level", 3)),
        "max_level": int(raw.get("max_level", 7)),
        "head_conv_layers": int(raw.get("head_conv_layers", 4)),
        "use_p5": bool(raw.get("use_p5", False)),
    }


def stride(template: str | Template) -> int:
    """The largest feature stride (2 ** max_level): the input side must be a multiple of it."""
    return 2 ** _config(get_template(template))["max_level"]


def input_size(template: str | Template, image_size: int) -> int:
    """The square input side for ``image_size``: rounded up to a multiple of :func:`stride`."""
    s = stride(template)
    return max(s, -(-int(image_size) // s) * s)


def check_template(t: Template) -> None:
    """The family's check (when a run is planned): the tf extra is installed and the
    template's backbone config has the ResNetBackbone keys. Raises ValueError naming the fix."""
    missing = missing_modules()
    if missing:
        raise ValueError(
            f"{t.where} needs TensorFlow, Keras and KerasHub ({', '.join(missing)} missing): {INSTALL_HINT}"
        )
    cfg = _config(t)
    need = ("stackwise_num_filters", "stackwise_num_blocks", "stackwise_num_strides", "block_type")
    absent = [k for k in need if k not in cfg["backbone"]]
    if absent:
        raise ValueError(
            f"{t.where}: 'backbone:' lacks {', '.join(absent)} (keras_hub.models.ResNetBackbone arguments)"
        )
    if not 2 <= cfg["min_level"] <= cfg["max_level"] <= 7:
        raise ValueError(f"{t.where}: need 2 <= min_level <= max_level <= 7")


def preset_dir(preset: str) -> Path | None:
    """The local folder of a KerasHub preset (config.json + model.weights.h5), or None.
    Looks in ``$KERAS_HOME/presets/<preset>`` (default ~/.keras) and in kagglehub's cache
    (``$KAGGLEHUB_CACHE``, default ~/.cache/kagglehub) under ``models/keras/*/keras/<preset>/<version>``."""
    keras_home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    candidates = [keras_home / "presets" / preset]
    kaggle = Path(os.environ.get("KAGGLEHUB_CACHE") or Path.home() / ".cache" / "kagglehub")
    candidates += sorted(
        (kaggle / "models" / "keras").glob(f"*/keras/{preset}/*"),
        key=lambda p: int(p.name) if p.name.isdigit() else -1,
        reverse=True,
    )
    for c in candidates:
        if (c / "config.json").is_file() and any(c.glob("*.weights.h5")):
            return c
    return None


def _backbone(t: Template, params: dict, side: int):
    """The ResNetBackbone: from the template's config, pretrained from the local preset
    when ``params['pretrained']`` (PretrainedWeightsUnavailable when absent)."""
    _, keras, keras_hub = import_keras()
    cfg = _config(t)
    if params.get("pretrained") and t.weights_backbone:
        where = preset_dir(t.weights_backbone)
        if where is None:
            raise PretrainedWeightsUnavailable(
                f"pretrained weights for {t.name} (KerasHub preset {t.weights_backbone}) are not in the local "
                f"Keras/KerasHub cache and are not downloaded (offline): put the preset folder (config.json, "
                f"model.weights.h5) into {Path(os.environ.get('KERAS_HOME') or Path.home() / '.keras')}/presets/"
                f"{t.weights_backbone}/, or train from scratch with the hyperparameter 'pretrained: false'"
            )
        return keras_hub.models.Backbone.from_preset(str(where), image_shape=(side, side, 3)), str(where)
    kwargs = dict(cfg["backbone"])
    kwargs.setdefault("input_conv_filters", [64])
    kwargs.setdefault("input_conv_kernel_sizes", [7])
    return keras_hub.models.ResNetBackbone(image_shape=(side, side, 3), **kwargs), None


def build_retinanet(template: str | Template, num_classes: int, params: dict):
    """A compiled-less ``keras_hub.models.RetinaNetObjectDetector`` for ``num_classes``
    (counting the background, as the torch builders do: labels + 1) at the square
    :func:`input_size` of ``params['image_size']``; the backbone pretrained only when
    ``params['pretrained']``. Returns (model, description for the log)."""
    t = get_template(template)
    tf, keras, keras_hub = import_keras()
    side = input_size(t, int(params["image_size"]))
    cfg = _config(t)
    image_encoder, source = _backbone(t, params, side)
    backbone = keras_hub.models.RetinaNetBackbone(
        image_encoder=image_encoder,
        min_level=cfg["min_level"],
        max_level=cfg["max_level"],
        use_p5=cfg["use_p5"],
        image_shape=(side, side, 3),
    )
    model = keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone,
        num_classes=int(num_classes) - 1,
        bounding_box_format=BOX_FORMAT,
        pre_logits_num_conv_layers=cfg["head_conv_layers"],
        preprocessor=None,
    )
    _initialize_heads(model, keras)
    how = f"backbone pretrained from {source}" if source else "from scratch (pretrained: false)"
    return model, how


def _initialize_heads(model, keras) -> None:
    """RetinaNet's initialization (Lin et al. 2017, section 4.1): the classification logits'
    bias at -log((1 - 0.01) / 0.01), so every anchor starts as background; KerasHub 0.32
    puts that prior on the box head instead (zeroed here). BatchNorm momentum 0.9 instead
    of 0.99, so short runs' running statistics follow the weights."""
    prior = -float(np.log((1 - 0.01) / 0.01))
    cls_bias = model.classification_head.prediction_layer.bias
    cls_bias.assign(np.full(cls_bias.shape, prior, dtype=np.float32))
    box_bias = model.box_head.prediction_layer.bias
    box_bias.assign(np.zeros(box_bias.shape, dtype=np.float32))
    for layer in batchnorm_layers(model):
        layer.momentum = 0.9


def batchnorm_layers(model) -> list:
    """Every keras BatchNormalization layer of ``model`` (nested models included)."""
    import keras

    return [la for la in model._flatten_layers(include_self=False) if isinstance(la, keras.layers.BatchNormalization)]


def recompute_batchnorm_stats(model, batches) -> int:
    """Precise BatchNorm (Wu & Johnson 2021): the running mean and variance of every BN
    layer replaced by the average over ``batches`` (preprocessed float arrays) of the
    statistics in training mode, the weights unchanged. Returns the batches used."""
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    saved = [la.momentum for la in layers]
    n = 0
    try:
        for x in batches:
            for la in layers:
                la.momentum = n / (n + 1)  # cumulative average: moving = (n * moving + batch) / (n + 1)
            model(x, training=True)
            n += 1
    finally:
        for la, m in zip(layers, saved):
            la.momentum = m
    return n


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W, 3) RGB -> float32 normalized with the ImageNet mean and deviation."""
    return (images.astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD


def set_decoder(model, threshold: float, max_detections: int, iou: float = 0.5) -> None:
    """Make ``model.decode_predictions`` keep scores >= ``threshold`` (sigmoid of the logits)
    and at most ``max_detections`` boxes per image after class-agnostic NMS at ``iou``."""
    _, _, keras_hub = import_keras()
    from keras_hub.src.layers.modeling.non_max_supression import NonMaxSuppression

    model._prediction_decoder = NonMaxSuppression(
        bounding_box_format=BOX_FORMAT,
        from_logits=True,
        iou_threshold=iou,
        confidence_threshold=float(threshold),
        max_detections=int(max_detections),
    )


def decode(model, raw: dict, images) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Raw head outputs of a batch -> per image (boxes (N, 4) float32 xyxy in input pixels,
    scores (N,) float32, class ids (N,) int64 1..K): anchors, box deltas and NMS, run
    eagerly outside the model's graph (:func:`set_decoder` sets threshold and limit)."""
    out = model.decode_predictions(raw, images)
    boxes = np.asarray(out["boxes"], dtype=np.float32)
    scores = np.asarray(out["confidence"], dtype=np.float32)
    labels = np.asarray(out["labels"], dtype=np.int64)
    counts = np.asarray(out["num_detections"]).reshape(-1)
    res = []
    for b in range(boxes.shape[0]):
        n = int(counts[b])
        keep = scores[b, :n] > -1
        res.append((boxes[b, :n][keep], scores[b, :n][keep], labels[b, :n][keep] + 1))
    return res


def save_model_dir(model_dir: Path | str, model, template: str, labels: list[str], params: dict, meta: dict) -> Path:
    """Write a model folder of this family (module docstring); model.json last."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    t = get_template(template)
    write_classes_csv(model_dir / "classes.csv", list(labels))
    model.save_weights(str(model_dir / "model.weights.h5"), overwrite=True)
    model.save(str(model_dir / "model.keras"), overwrite=True)
    info = {
        "format_version": FORMAT_VERSION,
        "framework": FRAMEWORK,
        "template": t.name,
        "task": t.task,
        "labels": list(labels),
        "num_classes": len(labels) + 1,
        "image_size": params.get("image_size"),
        "input_size": input_size(t, int(params["image_size"])),
        "parameters": params,
        **meta,
    }
    atomic_write(model_dir / "model.json", json.dumps(info, indent=1, default=str))
    return model_dir


def read_model_json(model_dir: Path | str) -> dict:
    """model.json of a model folder ({} when absent or unreadable)."""
    p = Path(model_dir) / "model.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_keras_model_dir(path: Path | str) -> bool:
    """Whether ``path`` is a model folder of this family (model.json says framework tensorflow)."""
    p = Path(path)
    return p.is_dir() and read_model_json(p).get("framework") == FRAMEWORK


def load_model_dir(model_dir: Path | str):
    """(model, labels, params, meta) from a model folder of this family: the model is
    rebuilt from its template and parameters (not pretrained) and its weights loaded.
    Raises ValueError naming the folder and what is wrong."""
    from .classes import read_classes_csv
    from .hyperparameters import parse_hyperparameters

    model_dir = Path(model_dir)
    meta = read_model_json(model_dir)
    if meta.get("framework") != FRAMEWORK:
        raise ValueError(f"{model_dir}/model.json does not say framework tensorflow")
    labels = read_classes_csv(model_dir / "classes.csv")
    weights = model_dir / "model.weights.h5"
    if not weights.is_file():
        raise ValueError(f"{model_dir} has no model.weights.h5: use the model/ folder of a finished training run")
    params = parse_hyperparameters([{**(meta.get("parameters") or {}), "pretrained": False}], meta["template"])
    model, _ = build_retinanet(meta["template"], len(labels) + 1, params)
    load_weights(model, weights)
    return model, labels, params, meta


def load_weights(model, path: Path | str, skip_mismatch: bool = False) -> None:
    """``model.load_weights`` without Keras' warning about the saved optimizer's variables
    (weights files written during training hold them; inference and fine-tuning need none)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        warnings.filterwarnings("ignore", message="A total of .* objects could not be loaded")
        model.load_weights(str(path), skip_mismatch=skip_mismatch)
