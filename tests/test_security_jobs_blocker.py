"""A job kind for tests, ``test-block``: a real detached job process that runs until it
is killed (it ignores the cancel request SIGTERM sets), as a job stuck in a system call
would. Importing this module registers the kind (its run function, :func:`run`) and puts tests/
on the PYTHONPATH of job processes, so the job process can import it.
(A FIFO given as a dataset used to serve; exports are now refused unless regular.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

from jupyter_cvat_train.jobs.registry import JobKind, register_kind

KIND = register_kind(JobKind("test-block", "test_security_jobs_blocker:run", "io"))
_here = str(Path(__file__).resolve().parent)
if _here not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_here, os.environ.get("PYTHONPATH")) if p)


def run(ctx) -> dict:
    ctx.progress(0, None, "ticks")
    while True:
        time.sleep(0.05)
