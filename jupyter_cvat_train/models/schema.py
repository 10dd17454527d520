"""The hyperparameter table: every key a template may accept, its type, range and help.

This module imports nothing of the project, so the family registry, the catalog and the
parser (:mod:`.hyperparameters`) all build on it without import cycles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from ..jobs.runtime.messages import shown


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
    none, allowed range or choices, and help. ``common``: every family accepts it; the
    others apply only to the families that list them (``ModelFamily.hyperparameters``)."""

    type: type
    default: Any
    help: str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    common: bool = True
    optional: bool = False  # None is a valid value (means "derive")


KEYS: dict[str, Key] = {
    "epochs": Key(
        int,
        None,
        "passes over the training split; empty = ceil(num_steps / steps per epoch)",
        min=1,
        optional=True,
        max=100_000,
    ),
    "num_steps": Key(
        int,
        3000,
        "total optimizer steps of the run (Onepanel's TFOD meaning); used to derive epochs when epochs is not given",
        min=1,
        max=10_000_000,
    ),
    "batch_size": Key(int, 4, "images per optimizer step (per GPU with num_gpus > 1)", min=1, max=4096),
    "learning_rate": Key(float, 0.01, "peak learning rate (after warm-up)", min=0.0),
    "optimizer": Key(str, "sgd", "sgd (momentum) or adamw", choices=("sgd", "adamw")),
    "momentum": Key(float, 0.9, "SGD momentum", min=0.0, max=1.0),
    "weight_decay": Key(float, 1e-4, "L2 weight decay", min=0.0),
    "lr_schedule": Key(
        str,
        "cosine",
        "cosine (to 1% at the end), step (x0.1 at schedule_step_1 and again at schedule_step_2; "
        "by default 2/3 and 8/9 of the run) or constant",
        choices=("cosine", "step", "constant"),
    ),
    "schedule_step_1": Key(
        int,
        None,
        "optimizer step (counted from the start of the run) where the step schedule multiplies the learning "
        "rate by 0.1 (Onepanel's TFOD schedule-step-1); setting it selects lr_schedule step; empty = 2/3 of the run",
        min=1,
        max=100_000_000,
        optional=True,
    ),
    "schedule_step_2": Key(
        int,
        None,
        "optimizer step of the second x0.1 drop (Onepanel's TFOD schedule-step-2), after schedule_step_1; "
        "setting it selects lr_schedule step; empty = 8/9 of the run",
        min=1,
        max=100_000_000,
        optional=True,
    ),
    "warmup_iters": Key(int, 200, "linear learning-rate warm-up steps (capped at one epoch)", min=0, max=10_000_000),
    "image_size": Key(
        int,
        800,
        "input size in pixels: the short side for R-CNN/RetinaNet/FCOS (long side <= 1333/800 of it), the square side for SSD",
        min=32,
        max=4096,
    ),
    "val_split": Key(
        float, 20.0, "percent of the images held out for evaluation (never empty on either side)", min=0.0, max=90.0
    ),
    "seed": Key(int, 0, "seed of the train/val split, initialization and augmentation", min=0, max=2**32 - 1),
    "threads": Key(
        int,
        0,
        "CPU threads of the training process (0 = the CPUs it may run on, shared among DDP ranks); "
        "set with the seed, so a run does not depend on what ran before in the process",
        min=0,
        max=4096,
    ),
    "pretrained": Key(
        bool, True, "start from torchvision's COCO (or ImageNet backbone) weights from the torch hub cache"
    ),
    "trainable_backbone_layers": Key(
        int,
        None,
        "backbone stages left trainable (0..5; SSDlite 0..6); empty = torchvision's default",
        min=0,
        max=6,
        optional=True,
    ),
    "hflip": Key(float, 0.5, "probability of a horizontal flip", min=0.0, max=1.0),
    "vflip": Key(float, 0.0, "probability of a vertical flip", min=0.0, max=1.0),
    "color_jitter": Key(float, 0.0, "strength of brightness/contrast/saturation jitter (0 = off)", min=0.0, max=1.0),
    "zoom_out": Key(float, 0.0, "probability of an SSD-style zoom-out (object on a larger canvas)", min=0.0, max=1.0),
    "num_gpus": Key(int, 1, "GPUs (processes) for DistributedDataParallel via torchrun", min=1, max=1024),
    "num_workers": Key(int, 2, "data-loading worker processes (0 = in the training process)", min=0, max=256),
    "precise_bn_batches": Key(
        int,
        10,
        "training batches used to recompute BatchNorm statistics before each evaluation (precise BN; 0 = off)",
        min=0,
        max=100_000,
    ),
    "amp": Key(bool, True, "automatic mixed precision on CUDA (ignored on the CPU)"),
    "detections_per_img": Key(int, 100, "maximum detections per image at evaluation/inference", min=1, max=100_000),
    "max_proposals": Key(
        int,
        1000,
        "region proposals kept per image at test time (300 / 100 = Onepanel's default / low proposals)",
        min=1,
        common=False,
        max=1_000_000,
    ),
    "stage_1_epochs": Key(
        int, 0, "Mask R-CNN stage 1: heads only (RPN, box and mask heads, FPN)", min=0, common=False, max=100_000
    ),
    "stage_2_epochs": Key(
        int, 0, "Mask R-CNN stage 2: backbone from layer4 up plus heads", min=0, common=False, max=100_000
    ),
    "stage_3_epochs": Key(
        int, 0, "Mask R-CNN stage 3: all layers at learning rate / 10", min=0, common=False, max=100_000
    ),
}

# num_steps for the families that count it per epoch (Onepanel's Mask R-CNN form:
# "num_steps: 1000 # Num steps per epoch", with stage_1/2/3_epochs), where its TFOD forms
# meant the whole run (KEYS["num_steps"]). A family opts in with ModelFamily.num_steps_per_epoch.
NUM_STEPS_PER_EPOCH = Key(
    int,
    None,
    "optimizer steps per epoch (Onepanel's Mask R-CNN meaning: 'Num steps per epoch'; the training split is "
    "drawn again as often as needed); empty = one pass over the training split",
    min=1,
    max=10_000_000,
    optional=True,
)

# Onepanel-era and common spellings (after lower-casing and '-' -> '_') -> our key.
ALIASES = {
    "num_epochs": "epochs",
    "epoch": "epochs",
    "steps": "num_steps",
    "num_train_steps": "num_steps",
    "train_steps": "num_steps",
    "batch": "batch_size",
    "batchsize": "batch_size",
    "initial_learning_rate": "learning_rate",
    "lr": "learning_rate",
    "base_lr": "learning_rate",
    "num_clones": "num_gpus",
    "gpus": "num_gpus",
    "ngpus": "num_gpus",
    "warmup_steps": "warmup_iters",
    "warmup": "warmup_iters",
    "img_size": "image_size",
    "input_size": "image_size",
    "resize": "image_size",
    "min_size": "image_size",
    "validation_split": "val_split",
    "val_percent": "val_split",
    "val_split_percent": "val_split",
    "schedule_step1": "schedule_step_1",
    "schedule_step2": "schedule_step_2",
    "stage1_epochs": "stage_1_epochs",
    "stage2_epochs": "stage_2_epochs",
    "stage3_epochs": "stage_3_epochs",
    "horizontal_flip": "hflip",
    "vertical_flip": "vflip",
    "workers": "num_workers",
}


def normalize_key(key: str) -> str:
    """Lower-case, ``-`` -> ``_``, then map an old spelling to ours (unknown keys pass through)."""
    k = str(key).strip().lower().replace("-", "_").replace(" ", "_")
    return ALIASES.get(k, k)


def coerce(key: str, value: Any, spec: Key, keys: list[str]) -> Any:
    """``value`` as ``spec``'s type, range-checked (``keys`` go into the error message).
    Raises HyperparameterError."""
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
    bad = HyperparameterError(
        f"{key} must be {'an integer' if spec.type is int else 'a number' if spec.type is float else 'true or false' if spec.type is bool else 'text'}, got {shown(value, 40)}",
        keys,
    )
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
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or int(value) != value
        ):
            raise bad
        out = int(value)
    elif spec.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad
        out = float(value)
    else:
        out = str(value).strip().lower()
        if spec.choices and out not in spec.choices:
            raise HyperparameterError(f"{key} must be one of {', '.join(spec.choices)}, got {shown(value, 40)}", keys)
    if spec.min is not None and out < spec.min or spec.max is not None and out > spec.max:
        lo = "" if spec.min is None else f">= {spec.min}"
        hi = "" if spec.max is None else f"<= {spec.max}"
        raise HyperparameterError(f"{key} must be {' and '.join(x for x in (lo, hi) if x)}, got {shown(out, 40)}", keys)
    return out


def schedule_milestones(params: dict) -> tuple[int, ...] | None:
    """The step schedule's milestones (optimizer steps, ascending) that ``params`` set with
    ``schedule_step_1`` / ``schedule_step_2``; None when neither is set (the schedule then
    drops at 2/3 and 8/9 of the run)."""
    steps = [params.get(k) for k in ("schedule_step_1", "schedule_step_2")]
    steps = sorted(int(s) for s in steps if s is not None)
    return tuple(steps) or None
