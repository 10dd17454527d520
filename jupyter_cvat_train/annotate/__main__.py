"""``python -m jupyter_cvat_train.annotate JOB_DIR``: run the annotate job in JOB_DIR."""
from ..jobs.jobdir import job_main
from .pipeline import run_annotate

if __name__ == "__main__":
    job_main(run_annotate)
