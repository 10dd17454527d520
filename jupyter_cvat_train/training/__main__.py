"""``python -m jupyter_cvat_train.training JOB_DIR``: run the train job in JOB_DIR (the same as
``python -m jupyter_cvat_train.jobs.run JOB_DIR``; kept for scripts naming the kind)."""

from ..jobs.runtime import job_main
from .job import train_job

if __name__ == "__main__":
    job_main(train_job)
