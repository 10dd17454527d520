"""``python -m jupyter_cvat_train.training JOB_DIR``: run one train job."""
from ..jobs.jobdir import job_main
from .job import train_job

if __name__ == "__main__":
    job_main(train_job)
