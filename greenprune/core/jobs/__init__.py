"""Persisted jobs: the job table, the runner, and the backends that run each job."""

from __future__ import annotations

from greenprune.core.jobs.runner import JobRunner
from greenprune.core.jobs.table import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    Job,
    JobTable,
)

__all__ = [
    "CANCELLED",
    "FAILED",
    "INTERRUPTED",
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "TERMINAL",
    "Job",
    "JobRunner",
    "JobTable",
]
