"""Training checkpoints: the full state needed to resume a run exactly.

``checkpoints/last.pt`` (every epoch) and ``checkpoints/best.pt`` (best mAP so far) hold::

    {"format_version": 1, "kind": "checkpoint", "template", "task", "num_classes", "labels",
     "params", "model": state_dict, "optimizer", "scheduler", "scaler": state_dicts,
     "epoch": completed epochs, "step": optimizer steps, "rng": {python, numpy, torch, cuda},
     "best_map", "best_epoch", "history": [per-epoch metrics], "dataset_fingerprint", "split"}

The weights are readable by :func:`jupyter_cvat_train.models.read_weights` (fine-tune,
inference) like a model.pt.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_write_with
from ..models.store import FORMAT_VERSION, unwrap


def rng_state() -> dict:
    """The random number generator states of python, numpy, torch (CPU) and CUDA."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict | None) -> None:
    """Restore states saved by :func:`rng_state` (missing parts are left as they are)."""
    if not state:
        return
    if "python" in state:
        random.setstate(_as_python_state(state["python"]))
    if "numpy" in state:
        n = state["numpy"]
        np.random.set_state(
            (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
        )
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_python_state(s):
    # torch.save/load round-trips tuples as tuples; be tolerant of lists.
    return (s[0], tuple(s[1]), s[2]) if isinstance(s, (list, tuple)) else s


def save_checkpoint(
    path: Path,
    *,
    model,
    optimizer,
    scheduler,
    scaler,
    epoch: int,
    step: int,
    template: str,
    task: str,
    labels: list[str],
    params: dict,
    **extra,
) -> Path:
    """Write a checkpoint (module docstring) atomically (temp file + rename) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format_version": FORMAT_VERSION,
        "kind": "checkpoint",
        "template": template,
        "task": task,
        "num_classes": len(labels) + 1,
        "labels": list(labels),
        "params": params,
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": epoch,
        "step": step,
        "rng": rng_state(),
        **extra,
    }
    return atomic_write_with(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` on the CPU (``weights_only``:
    it holds only tensors, numbers, strings and containers of them)."""
    return torch.load(path, map_location="cpu", weights_only=True)
