"""``python -m jupyter_cvat_train.annotate JOB_DIR``: run the annotate job in JOB_DIR (the same as
``python -m jupyter_cvat_train.jobs.run JOB_DIR``; kept for scripts naming the kind)."""

from ..jobs.runtime import job_main
from .pipeline import run_annotate

if __name__ == "__main__":
    job_main(run_annotate)
