"""Hyperparameters: the keys a template accepts, and parsing of the three text forms.

Accepted forms (all may be mixed across several inputs, later inputs win):

1. YAML mapping, the current Onepanel form::

       batch_size: 8
       learning_rate: 0.005

2. ``key=value`` lines;
3. ``key=value`` pairs separated by ``,`` or ``;`` (Onepanel's older forms).

Keys are case-insensitive, ``-`` and ``_`` are the same, and Onepanel-era spellings are
mapped to ours (``num-steps`` -> num_steps, ``initial-learning-rate`` -> learning_rate,
``num-clones`` -> num_gpus, ``batch-size`` -> batch_size, ...; see :data:`ALIASES`).
Values in forms 2/3 are read as YAML scalars (``true``, ``0.01``, ``8``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

import yaml

from .catalog import Template, get_template


class HyperparameterError(ValueError):
    """An unknown key or a value of the wrong type; the message lists the valid keys.

    valid_keys: the keys the template accepts.
    """

    def __init__(self, message: str, valid_keys: Iterable[str] = ()):
        self.valid_keys = sorted(valid_keys)
        if self.valid_keys:
            message = f"{message}. Valid keys: {', '.join(self.valid_keys)}"
        super().__init__(message)


@dataclass(frozen=True)
class Key:
    """One hyperparameter: type (int | float | bool | str), default when the template has
    none, allowed range or choices, the families it applies to (None = all), and help."""

    type: type
    default: Any
    help: str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    families: tuple | None = None
    optional: bool = False  # None is a valid value (means "derive")


RCNN = ("fasterrcnn", "maskrcnn")
KEYS: dict[str, Key] = {
    "epochs": Key(int, None, "passes over the training split; empty = ceil(num_steps / steps per epoch)", min=1, optional=True),
    "num_steps": Key(int, 3000, "optimizer steps used to derive epochs when epochs is not given", min=1),
    "batch_size": Key(int, 4, "images per optimizer step (per GPU with num_gpus > 1)", min=1),
    "learning_rate": Key(float, 0.01, "peak learning rate (after warm-up)", min=0.0),
    "optimizer": Key(str, "sgd", "sgd (momentum) or adamw", choices=("sgd", "adamw")),
    "momentum": Key(float, 0.9, "SGD momentum", min=0.0, max=1.0),
    "weight_decay": Key(float, 1e-4, "L2 weight decay", min=0.0),
    "lr_schedule": Key(str, "cosine", "cosine (to 1% at the end), step (x0.1 at 2/3 and 8/9 of the run) or constant",
                       choices=("cosine", "step", "constant")),
    "warmup_iters": Key(int, 200, "linear learning-rate warm-up steps (capped at one epoch)", min=0),
    "image_size": Key(int, 800, "input size in pixels: the short side for R-CNN/RetinaNet/FCOS (long side <= 1333/800 of it), the square side for SSD", min=32, max=4096),
    "val_split": Key(float, 20.0, "percent of the images held out for evaluation (never empty on either side)", min=0.0, max=90.0),
    "seed": Key(int, 0, "seed of the train/val split, initialization and augmentation"),
    "threads": Key(int, 0, "CPU threads of the training process (0 = the CPUs it may run on, shared among DDP ranks); "
                           "set with the seed, so a run does not depend on what ran before in the process", min=0),
    "pretrained": Key(bool, True, "start from torchvision's COCO (or ImageNet backbone) weights from the torch hub cache"),
    "trainable_backbone_layers": Key(int, None, "backbone stages left trainable (0..5; SSDlite 0..6); empty = torchvision's default", min=0, max=6, optional=True),
    "hflip": Key(float, 0.5, "probability of a horizontal flip", min=0.0, max=1.0),
    "vflip": Key(float, 0.0, "probability of a vertical flip", min=0.0, max=1.0),
    "color_jitter": Key(float, 0.0, "strength of brightness/contrast/saturation jitter (0 = off)", min=0.0, max=1.0),
    "zoom_out": Key(float, 0.0, "probability of an SSD-style zoom-out (object on a larger canvas)", min=0.0, max=1.0),
    "num_gpus": Key(int, 1, "GPUs (processes) for DistributedDataParallel via torchrun", min=1),
    "num_workers": Key(int, 2, "data-loading worker processes (0 = in the training process)", min=0),
    "precise_bn_batches": Key(int, 10, "training batches used to recompute BatchNorm statistics before each evaluation (precise BN; 0 = off)", min=0),
    "amp": Key(bool, True, "automatic mixed precision on CUDA (ignored on the CPU)"),
    "detections_per_img": Key(int, 100, "maximum detections per image at evaluation/inference", min=1),
    "max_proposals": Key(int, 1000, "region proposals kept per image at test time (300 / 100 = Onepanel's default / low proposals)", min=1, families=RCNN),
    "stage_1_epochs": Key(int, 0, "Mask R-CNN stage 1: heads only (RPN, box and mask heads, FPN)", min=0, families=("maskrcnn",)),
    "stage_2_epochs": Key(int, 0, "Mask R-CNN stage 2: backbone from layer4 up plus heads", min=0, families=("maskrcnn",)),
    "stage_3_epochs": Key(int, 0, "Mask R-CNN stage 3: all layers at learning rate / 10", min=0, families=("maskrcnn",)),
}

# Onepanel-era and common spellings (after lower-casing and '-' -> '_') -> our key.
ALIASES = {
    "num_epochs": "epochs", "epoch": "epochs",
    "steps": "num_steps", "num_train_steps": "num_steps", "train_steps": "num_steps",
    "batch": "batch_size", "batchsize": "batch_size",
    "initial_learning_rate": "learning_rate", "lr": "learning_rate", "base_lr": "learning_rate",
    "num_clones": "num_gpus", "gpus": "num_gpus", "ngpus": "num_gpus",
    "warmup_steps": "warmup_iters", "warmup": "warmup_iters",
    "img_size": "image_size", "input_size": "image_size", "resize": "image_size", "min_size": "image_size",
    "validation_split": "val_split", "val_percent": "val_split", "val_split_percent": "val_split",
    "stage1_epochs": "stage_1_epochs", "stage2_epochs": "stage_2_epochs", "stage3_epochs": "stage_3_epochs",
    "horizontal_flip": "hflip", "vertical_flip": "vflip",
    "workers": "num_workers",
}

# Smallest input the family's backbone accepts (SSD300's VGG extra layers fail below ~280 px).
MIN_IMAGE_SIZE = {"ssd": 280}
# SSDlite's extra layers end in 1x1 maps with batch norm: one image per step cannot train.
MIN_BATCH_SIZE = {"ssdlite": 2}

_KV_RE = re.compile(r"^\s*[A-Za-z][\w\-]*\s*=")


def valid_keys(template: "str | Template") -> list[str]:
    """The hyperparameter keys ``template`` accepts, sorted."""
    t = get_template(template)
    return sorted(k for k, spec in KEYS.items() if spec.families is None or t.family in spec.families)


def key_schema(template: "str | Template") -> dict[str, dict]:
    """JSON-able description of the valid keys: name -> {type, default, help, choices?, min?, max?}."""
    t = get_template(template)
    out = {}
    for k in valid_keys(t):
        spec = KEYS[k]
        d = {"type": spec.type.__name__, "default": t.defaults.get(k, spec.default), "help": spec.help}
        for attr in ("choices", "min", "max"):
            if getattr(spec, attr) is not None:
                d[attr] = list(spec.choices) if attr == "choices" else getattr(spec, attr)
        out[k] = d
    return out


def _split_text(text: str) -> dict:
    """Parse one text in any of the three forms into a raw {key: value} dict."""
    text = text.strip()
    if not text:
        return {}
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if lines and all(_KV_RE.match(ln) or not ln.strip() for ln in re.split(r"[\n,;]", text) if ln.strip()):
        out = {}
        for part in re.split(r"[\n,;]", text):
            if not part.strip():
                continue
            key, _, value = part.partition("=")
            value = value.strip()
            try:
                out[key.strip()] = yaml.safe_load(value) if value else None
            except yaml.YAMLError:
                out[key.strip()] = value
        return out
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise HyperparameterError(f"hyperparameters are neither YAML nor key=value pairs: {e}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise HyperparameterError(f"hyperparameters must be 'key: value' (YAML) or 'key=value' pairs, got {text[:60]!r}")
    return doc


def normalize_key(key: str) -> str:
    """Lower-case, ``-`` -> ``_``, then map an old spelling to ours (unknown keys pass through)."""
    k = str(key).strip().lower().replace("-", "_").replace(" ", "_")
    return ALIASES.get(k, k)


def _coerce(key: str, value: Any, spec: Key, keys: list[str]) -> Any:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto", "none", "null")):
        if spec.optional:
            return None
        raise HyperparameterError(f"{key} needs a value ({spec.type.__name__})", keys)
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
            value = parsed if not isinstance(parsed, (dict, list)) else value
        except yaml.YAMLError:
            pass
    if isinstance(value, str) and spec.type in (int, float):
        try:  # YAML 1.1 reads "1e-3" as text
            value = float(value)
        except ValueError:
            pass
    bad = HyperparameterError(f"{key} must be {'an integer' if spec.type is int else 'a number' if spec.type is float else 'true or false' if spec.type is bool else 'text'}, got {value!r}", keys)
    if spec.type is bool:
        if isinstance(value, bool):
            out: Any = value
        elif isinstance(value, (int, float)) and value in (0, 1):
            out = bool(value)
        elif isinstance(value, str) and value.lower() in ("yes", "no", "on", "off", "y", "n", "true", "false"):
            out = value.lower() in ("yes", "on", "y", "true")
        else:
            raise bad
    elif spec.type is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or int(value) != value:
            raise bad
        out = int(value)
    elif spec.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad
        out = float(value)
    else:
        out = str(value).strip().lower()
        if spec.choices and out not in spec.choices:
            raise HyperparameterError(f"{key} must be one of {', '.join(spec.choices)}, got {value!r}", keys)
    if spec.min is not None and out < spec.min or spec.max is not None and out > spec.max:
        lo = "" if spec.min is None else f">= {spec.min}"
        hi = "" if spec.max is None else f"<= {spec.max}"
        raise HyperparameterError(f"{key} must be {' and '.join(x for x in (lo, hi) if x)}, got {out!r}", keys)
    return out


def parse_hyperparameters(text_or_dict: "str | dict | Iterable[str | dict] | None", template: "str | Template",
                          *, with_defaults: bool = True) -> dict:
    """Parse user hyperparameters for ``template`` and return the complete parameter dict.

    text_or_dict: a text in any of the three forms (module docstring), a dict, None, or a
        list of these (later entries win, as repeated ``--hp`` options).
    with_defaults: when True (default) the result holds every valid key: the template's
        defaults, then the built-in defaults, overridden by the user's values; when False
        only the user's (normalized, type-checked) values.

    Returns {key: value} with Python types (``epochs`` / ``trainable_backbone_layers`` may
    be None = derive). Raises :class:`HyperparameterError` (a ValueError) for an unknown
    key, a wrong type or an out-of-range value; its message lists the valid keys.
    """
    t = get_template(template)
    keys = valid_keys(t)
    inputs = [text_or_dict] if text_or_dict is None or isinstance(text_or_dict, (str, dict)) else list(text_or_dict)
    user: dict = {}
    for inp in inputs:
        if inp is None:
            continue
        raw = inp if isinstance(inp, dict) else _split_text(str(inp))
        for k, v in raw.items():
            nk = normalize_key(k)
            if nk not in keys:
                hint = f" (it applies to other templates than {t.name})" if nk in KEYS else ""
                raise HyperparameterError(f"unknown hyperparameter {k!r}{hint} for template {t.name}", keys)
            user[nk] = _coerce(nk, v, KEYS[nk], keys)
    size = user.get("image_size")
    if size is not None and size < MIN_IMAGE_SIZE.get(t.family, 0):
        raise HyperparameterError(f"image_size must be >= {MIN_IMAGE_SIZE[t.family]} for {t.name}, got {size}", keys)
    bs = user.get("batch_size")
    if bs is not None and bs < MIN_BATCH_SIZE.get(t.family, 1):
        raise HyperparameterError(f"batch_size must be >= {MIN_BATCH_SIZE[t.family]} for {t.name} (batch norm in its "
                                  f"last, 1x1 feature maps needs two images per step), got {bs}", keys)
    if not with_defaults:
        return user
    out = {}
    for k in keys:
        default = t.defaults.get(k, KEYS[k].default)
        out[k] = _coerce(k, default, KEYS[k], keys) if default is not None else None
    out.update(user)
    return out
