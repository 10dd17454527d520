"""The training process: plan checks, the loop, COCO evaluation, checkpoints, outputs.

Run as a job: ``python -m jupyter_cvat_train.training JOB_DIR`` (see :mod:`.plan` for
job.json) or in the foreground with ``cvat-train train``.
"""

from __future__ import annotations


def train_job(ctx):
    """See :func:`.job.train_job` (imported lazily: torch is heavy)."""
    from .job import train_job as _train_job

    return _train_job(ctx)


__all__ = ["train_job"]
