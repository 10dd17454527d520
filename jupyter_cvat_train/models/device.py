"""Which torch device a job runs its model on."""

from __future__ import annotations

import re

from ..jobs.runtime import JobError

DEVICES = ("auto", "cpu", "cuda")  # what a user names; ``cuda:N`` picks one GPU


def resolve_device(requested: str | None) -> str:
    """The torch device for ``requested`` (any letter case): ``auto`` (or None, "") ->
    ``cuda`` when a CUDA GPU is available, else ``cpu``; ``cpu``, ``cuda`` and
    ``cuda:N`` as they are. Raises JobError (the fix named) for a CUDA device on a
    machine without one, and for any other name."""
    import torch

    requested = (requested or "auto").lower()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise JobError(
            f"device {requested[:40]!r} was requested but no CUDA GPU is available here: use --device cpu or auto"
        )
    if requested not in ("cpu", "cuda") and not re.fullmatch(r"cuda:\d{1,4}", requested):
        raise JobError(f"device must be auto, cpu, cuda or cuda:N, got {requested[:40]!r}")
    return requested


def probe_devices() -> dict:
    """What this machine offers jobs: ``{"devices": [{"id", "name", "memory_bytes"?}...],
    "gpus": N, "torch": version or None, "note": str}``.

    ``devices`` always starts with ``auto`` and ``cpu``; each CUDA GPU torch sees adds
    ``cuda:<index>`` with its name and total memory in bytes. Imports torch (seconds,
    hundreds of MB): the Jupyter server calls it in a subprocess
    (``python -m jupyter_cvat_train.models.device``), never in its own process. Never
    raises: a missing or broken torch is reported in ``note`` with no GPU."""
    devices = [
        {"id": "auto", "name": "auto: a CUDA GPU when there is one, else the CPU"},
        {"id": "cpu", "name": "CPU"},
    ]
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - a broken install is reported, not raised
        return {
            "devices": devices,
            "gpus": 0,
            "torch": None,
            "note": f"torch cannot be imported here ({type(e).__name__}): install the 'train' extra to train",
        }
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for i in range(gpus):
        props = torch.cuda.get_device_properties(i)
        devices.append({"id": f"cuda:{i}", "name": props.name, "memory_bytes": int(props.total_memory)})
    note = f"{gpus} CUDA GPU(s)" if gpus else "no CUDA GPU: jobs train on the CPU"
    return {"devices": devices, "gpus": gpus, "torch": torch.__version__, "note": note}


if __name__ == "__main__":  # the server's probe: one JSON line on stdout
    import json

    print(json.dumps(probe_devices()))
