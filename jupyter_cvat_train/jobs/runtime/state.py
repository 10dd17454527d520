"""A job's states and the errors a job function raises.

States: ``queued -> running -> succeeded | failed | cancelled``. :class:`JobState` is a
``str`` enum, so its members compare equal to (and serialize as) the plain strings of
status.json and the API.
"""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    """The state of a job, as status.json, the job store and the API write it. ``str()``
    and f-strings give the plain value (as ``enum.StrEnum`` does, on Python 3.10 too)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def final(self) -> bool:
        """True for the states a job never leaves: succeeded, failed, cancelled."""
        return self in FINAL_STATES


#: Every state, in life-cycle order.
STATES: tuple[JobState, ...] = tuple(JobState)
#: The states a job never leaves.
FINAL_STATES: frozenset[JobState] = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
#: The states of a job that still needs watching (it holds or waits for a queue slot).
ACTIVE_STATES: tuple[JobState, ...] = (JobState.QUEUED, JobState.RUNNING)


class JobError(Exception):
    """A failure the user can act on; its message is shown as the job's message
    (no traceback). Raise it for bad input found at run time."""


class JobCancelled(Exception):
    """Raised inside a job function (by :meth:`JobContext.check_cancelled`) after a
    SIGTERM, once the work in hand is saved."""
