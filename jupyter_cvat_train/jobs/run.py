"""``python -m jupyter_cvat_train.jobs.run JOB_DIR``: the one entry point of job processes.

It runs the job function of the kind in JOB_DIR's job.json through
:func:`~.runtime.run_job`. The backend that launched it names that function in
``$CVAT_TRAIN_JOB_RUN`` (``module:function``, from the launching process's registry, so
a kind registered only there, a test's or a notebook's, runs too); without it, the kind
is looked up in this process's registry (built-in and plug-in kinds). An unknown kind or
a function that cannot be imported fails the job with a message naming it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from .runtime import JobContext, JobDir, JobError, job_main

RUN_ENV = "CVAT_TRAIN_JOB_RUN"


def _failing(message: str) -> Callable[[JobContext], None]:
    def fail(ctx: JobContext) -> None:
        raise JobError(message)

    return fail


def job_function(job_dir: Path | str, target: str | None = None) -> Callable[[JobContext], dict | None]:
    """The job function for ``job_dir``: ``target`` (``module:function``) when given, else
    its kind's from the registry. Never raises: a function that fails the job with a
    message naming the problem stands in for one that cannot be found."""
    from .registry import get_kind, load_target

    try:
        if target:
            return load_target(target)
        kind = JobDir(Path(job_dir)).read_spec().get("kind")
        return get_kind(kind).run_function()
    except JobError as e:
        return _failing(str(e))
    except KeyError as e:
        return _failing(f"job.json: {e.args[0]}")
    except (ImportError, AttributeError, ValueError) as e:
        return _failing(f"the job function {target or 'of this kind'} cannot be loaded: {type(e).__name__}: {e}")


def main(argv: list[str] | None = None) -> None:
    """Run the job in ``argv[0]`` (default: ``sys.argv[1:]``) and exit (see
    :func:`~.runtime.job_main`). status.json says ``running`` before the job function's
    module is imported."""
    argv = sys.argv[1:] if argv is None else argv
    target = os.environ.pop(RUN_ENV, None)  # for this process only, not the job's own children
    if len(argv) != 1:
        job_main(_failing("usage"), argv)  # says the usage, exit code 2
        return

    def job(ctx: JobContext) -> dict | None:
        # imported once status.json says running: a kind's module (the annotate pipeline's
        # takes ~1 s) is not counted in submit-to-running, and a failing import still fails
        # the job with its name
        return job_function(argv[0], target)(ctx)

    job_main(job, argv)


if __name__ == "__main__":
    main()
