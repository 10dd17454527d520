"""Jobs: the job folder contract and the runtime of job processes (:mod:`.jobdir`), the
kinds registry (:mod:`.kinds`), the detached launcher (:mod:`.launcher`), the sqlite
store (:mod:`.store`), queueing (:mod:`.queue`), reconciliation (:mod:`.reconcile`),
log tailing (:mod:`.tail`), client spec checks (:mod:`.specs`) and the service that
ties them together (:class:`.manager.JobManager`). No Jupyter imports here."""
from .jobdir import JobCancelled, JobContext, JobDir, JobError, run_job
from .kinds import JobKind, get_kind, list_kinds, register_kind
from .manager import JobManager, JobNotFound, job_to_dict
from .queue import Limits
from .specs import SpecError, check_spec, resolve_inside

__all__ = ["JobCancelled", "JobContext", "JobDir", "JobError", "JobKind", "JobManager", "JobNotFound", "Limits",
           "SpecError", "check_spec", "get_kind", "job_to_dict", "list_kinds", "register_kind", "resolve_inside",
           "run_job"]
