"""The job runtime: what every job process (and the CLI's foreground runs) uses.

- :mod:`.state`: :class:`JobState`, :class:`JobError`, :class:`JobCancelled`;
- :mod:`.jobdir`: the job folder contract (:class:`JobDir`, checked records, atomic writes);
- :mod:`.context`: :class:`JobContext`, :func:`run_job`, :func:`job_main`.

This package is the bottom of ``jobs``: it imports nothing of the manager, the store,
the scheduler, the backends, the registry or the spec checks, so a job process pays only
for what it runs.
"""

from .context import JobContext, job_main, run_job
from .jobdir import (
    MAX_RECORD_BYTES,
    SPEC_HASH_ENV,
    JobDir,
    RecordError,
    clean_progress,
    clean_record,
    clean_status,
    json_bytes,
    now_iso,
    process_start_time,
    read_json_record,
    read_record,
    spec_sha256,
    valid_number,
    valid_pid,
    valid_state,
    valid_text,
    valid_time,
    write_bytes_atomic,
    write_json_atomic,
)
from .state import ACTIVE_STATES, FINAL_STATES, STATES, JobCancelled, JobError, JobState

__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATES",
    "MAX_RECORD_BYTES",
    "SPEC_HASH_ENV",
    "STATES",
    "JobCancelled",
    "JobContext",
    "JobDir",
    "JobError",
    "JobState",
    "RecordError",
    "clean_progress",
    "clean_record",
    "clean_status",
    "job_main",
    "json_bytes",
    "now_iso",
    "process_start_time",
    "read_json_record",
    "read_record",
    "run_job",
    "spec_sha256",
    "valid_number",
    "valid_pid",
    "valid_state",
    "valid_text",
    "valid_time",
    "write_bytes_atomic",
    "write_json_atomic",
]
