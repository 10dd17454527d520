"""``python -m jupyter_cvat_train.jobs.backends.ray_entry JOB_DIR``: what a Ray job runs.

Ray sends a job's output to its own log on the head; the job folder's job.log is what
the panel and the CLI read. So this appends stdout and stderr to ``JOB_DIR/job.log``
(opened without following a symlink planted in its place), moves into the job folder
and runs the one job entry point (:func:`jupyter_cvat_train.jobs.run.main`, what
``python -m jupyter_cvat_train.jobs.run JOB_DIR`` runs for a local job) in this same
process: no second interpreter start between Ray's RUNNING and the job's. A job folder
that is not there (the runs root not mounted at the same path on this node) ends with
an error exit and a message on Ray's log. A training with more than one GPU then runs
its ranks as Ray Train workers across the cluster (:mod:`jupyter_cvat_train.training.ray_train`).
"""

from __future__ import annotations

import os
import sys

from ...training.ray_train import RAY_JOB_ENV


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m jupyter_cvat_train.jobs.backends.ray_entry JOB_DIR")
    job_dir = argv[0]
    if not os.path.isdir(job_dir) or not os.path.isfile(os.path.join(job_dir, "job.json")):
        from .ray import OBJECT_STORAGE_UNSUPPORTED

        sys.exit(f"cvat-train: the job folder {job_dir} is not on this Ray node: {OBJECT_STORAGE_UNSUPPORTED}")
    fd = os.open(
        os.path.join(job_dir, "job.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.chdir(job_dir)
    os.environ[RAY_JOB_ENV] = "1"  # a training with gpus > 1 then runs as Ray Train workers
    # The ranks' lines reach job.log through this driver: plain (no colour codes), at once (not
    # held back to be deduplicated) and once (Ray Train would also copy each print to its log).
    for name, value in (("RAY_COLOR_PREFIX", "0"), ("RAY_DEDUP_LOGS", "0"), ("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")):
        os.environ.setdefault(name, value)
    from ..run import main as run_main  # in this process: no second interpreter start (~0.3 s)

    run_main([job_dir])


if __name__ == "__main__":
    main()
