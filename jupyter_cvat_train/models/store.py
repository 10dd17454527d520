"""Trained model folders and weight files: write, read, rebuild.

A model folder (``output/model/`` of a training job)::

    model.pt     torch.save of {"format_version": 1, "template", "task", "num_classes",
                 "labels", "params", "state_dict"}: everything build_model needs
    classes.csv  header ``labels,id``, ids 1..N (0 = background)
    model.json   {"format_version", "template", "task", "labels", "num_classes",
                 "image_size", "parameters", **meta (dataset fingerprint, metrics, ...)}

A checkpoint (``output/checkpoints/last.pt`` / ``best.pt``) holds the same keys with
the weights under "model" plus the training state (see training.checkpoints).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..fileio import atomic_write, atomic_write_with
from .builders import build_model
from .catalog import get_template
from .classes import ClassesError, read_classes_csv, write_classes_csv

FORMAT_VERSION = 1


class WeightsError(ValueError):
    """A model folder, checkpoint folder or weights file that does not exist or holds no
    usable weights; the message names the path and what was expected."""


@dataclass
class TrainedModel:
    """A trained model ready for inference.

    model: the torch module in eval mode, on ``device``.
    labels: label names; labels[k] has class id k + 1 (0 is background).
    template: the template name; task: "detection" | "instance-segmentation".
    params: the hyperparameters it was built/trained with.
    image_size: params["image_size"] (pixels; the model resizes inputs itself).
    meta: the model.json contents (empty when loaded from a bare file).
    """

    model: nn.Module
    labels: list[str]
    template: str
    task: str
    params: dict
    image_size: int
    meta: dict = field(default_factory=dict)
    source: Path | None = None


@dataclass
class WeightsSource:
    """Weights read from a model folder / checkpoint / file, not yet in a model.

    template, labels, params: None when the file is a bare state_dict.
    state_dict: model weights (keys without DDP's ``module.`` prefix).
    checkpoint: the full checkpoint dict when the file is a training checkpoint, else None.
    """

    path: Path
    state_dict: dict
    template: str | None = None
    labels: list[str] | None = None
    params: dict | None = None
    checkpoint: dict | None = None


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DistributedDataParallel (or the model itself)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def save_model_dir(
    model_dir: Path | str, model: nn.Module, template: str, labels: list[str], params: dict, meta: dict | None = None
) -> Path:
    """Write a model folder (module docstring) for ``model`` and return its path.

    labels: names, ids 1..N in this order. params: the full hyperparameters.
    meta: extra model.json fields (e.g. ``dataset_fingerprint``, ``metrics``, ``epochs``).
    model.pt is written last through a temp file, so a folder with model.pt is complete.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    t = get_template(template)
    write_classes_csv(model_dir / "classes.csv", list(labels))
    info = {
        "format_version": FORMAT_VERSION,
        "template": t.name,
        "task": t.task,
        "labels": list(labels),
        "num_classes": len(labels) + 1,
        "image_size": params.get("image_size"),
        "parameters": params,
        **(meta or {}),
    }
    atomic_write(model_dir / "model.json", json.dumps(info, indent=1, default=str))
    state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    weights = {
        "format_version": FORMAT_VERSION,
        "template": t.name,
        "task": t.task,
        "num_classes": len(labels) + 1,
        "labels": list(labels),
        "params": params,
        "state_dict": state,
    }
    atomic_write_with(model_dir / "model.pt", lambda tmp: torch.save(weights, tmp))
    return model_dir


def resolve_weights_path(path: Path | str) -> Path:
    """The weights file a user's path means: a file as is; a model folder -> model.pt;
    a checkpoints folder -> best.pt, else last.pt; a job's output folder or job folder
    -> its model/model.pt, else its checkpoints. Raises WeightsError when none exists."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if not p.exists():
        raise WeightsError(
            f"checkpoint {p} does not exist: give a model/ or checkpoints/ folder of a training run, or a .pt file"
        )
    for cand in (
        "model.pt",
        "best.pt",
        "last.pt",
        "model/model.pt",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "output/model/model.pt",
        "output/checkpoints/best.pt",
        "output/checkpoints/last.pt",
    ):
        if (p / cand).is_file():
            return p / cand
    raise WeightsError(
        f"{p} holds no model.pt, best.pt or last.pt: give a model/ or checkpoints/ folder of a "
        f"training run, or a .pt file"
    )


def read_weights(path: Path | str) -> WeightsSource:
    """Read weights from a model folder, checkpoints folder or file (see
    :func:`resolve_weights_path`). Accepts our model.pt and checkpoints and a bare
    state_dict (as torch.save(model.state_dict())). Loads on the CPU, weights only.
    Raises WeightsError when the file is unreadable or holds no tensors."""
    f = resolve_weights_path(path)
    try:
        obj = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise WeightsError(f"{f} is not a readable PyTorch weights file ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise WeightsError(f"{f} holds a {type(obj).__name__}, not model weights (a dict of tensors)")
    checkpoint = None
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        state = obj["state_dict"]
    elif "model" in obj and isinstance(obj["model"], dict):
        state, checkpoint = obj["model"], obj
    else:
        state = obj
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise WeightsError(f"{f} holds no model weights (no tensors found)")
    labels = obj.get("labels") if isinstance(obj.get("labels"), list) else None
    if labels is None and (f.parent / "classes.csv").is_file():
        try:
            labels = read_classes_csv(f.parent / "classes.csv")
        except ClassesError:
            labels = None
    template = obj.get("template") if isinstance(obj.get("template"), str) else None
    params = obj.get("params") if isinstance(obj.get("params"), dict) else None
    return WeightsSource(
        path=f, state_dict=state, template=template, labels=labels, params=params, checkpoint=checkpoint
    )


def load_trained_model(model_dir: Path | str, device: str | torch.device = "cpu") -> TrainedModel:
    """Rebuild a trained model from a model folder (or a model.pt / checkpoint file, or a
    checkpoints folder) on ``device``, in eval mode.

    Raises WeightsError when the path holds no usable weights or does not say which
    template/labels it has (a bare state_dict needs model.pt's metadata), and when the
    weights do not fit the architecture.
    """
    src = read_weights(model_dir)
    if not src.template or not src.labels:
        raise WeightsError(
            f"{src.path} does not record its template and labels: use the model.pt of a "
            f"training run's output/model folder"
        )
    params = dict(src.params or {})
    params["pretrained"] = params.get("pretrained", False)
    model = build_model(src.template, len(src.labels) + 1, params)
    try:
        model.load_state_dict(src.state_dict)
    except RuntimeError as e:
        raise WeightsError(f"{src.path}: weights do not fit template {src.template}: {str(e)[:500]}") from None
    model.eval().to(device)
    meta = {}
    json_path = src.path.parent / "model.json"
    if json_path.is_file():
        try:
            meta = json.loads(json_path.read_text(encoding="utf-8"))
        except ValueError:
            meta = {}
    from .hyperparameters import parse_hyperparameters

    full = parse_hyperparameters(params, src.template)
    return TrainedModel(
        model=model,
        labels=list(src.labels),
        template=src.template,
        task=get_template(src.template).task,
        params=full,
        image_size=int(full["image_size"]),
        meta=meta,
        source=src.path,
    )
