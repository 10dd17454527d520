"""``python -m jupyter_cvat_train.storage JOB_DIR``: run the sync job in JOB_DIR (the same as
``python -m jupyter_cvat_train.jobs.run JOB_DIR``; kept for scripts naming the kind)."""

from ..jobs.runtime import job_main
from .job import sync_job

if __name__ == "__main__":
    job_main(sync_job)
