"""Jobs: the job folder contract, the in-process job runtime, and (later) the launcher,
store and reconciliation. No Jupyter imports here."""
from .jobdir import JobCancelled, JobContext, JobDir, JobError, run_job

__all__ = ["JobCancelled", "JobContext", "JobDir", "JobError", "run_job"]
