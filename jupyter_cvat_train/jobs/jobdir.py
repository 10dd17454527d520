"""Kept only for :mod:`.tail` until its import names :mod:`.runtime`; use :mod:`.runtime`."""
from .runtime import FINAL_STATES, JobDir  # noqa: F401
