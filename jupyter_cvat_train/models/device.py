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
