"""The job table: the jobs of one service, in a SQLite file in its state folder.

The table is the source of truth whichever backend runs the work. :meth:`JobTable.save` is its
one write (a whole row, inserted or replaced), so what a write needs (durability, a full disk)
is handled in one place: a row the disk has no room for is held in memory and the write raises
RESOURCE_EXHAUSTED. The row format is stable: ``spec`` and ``result`` are JSON, the rest
plain columns named as :class:`Job`'s fields.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from greenprune.core.errors import ResourceExhaustedError, is_disk_full

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
INTERRUPTED = "interrupted"
"""The error message of a job its server stopped (or lost) while it ran."""


@dataclass
class Job:
    """One job as the table stores it."""

    id: str
    request_id: str
    spec: dict[str, Any]
    lane: str = "default"
    experiment: str = ""
    state: str = QUEUED
    stage: str = "queued"
    progress: float = 0.0
    create_time: float = field(default_factory=time.time)
    start_time: float | None = None
    end_time: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    result: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        """Whether the job reached a terminal state."""
        return self.state in TERMINAL


_COLUMNS = [name for name in Job.__dataclass_fields__]
_JSON_COLUMNS = {"spec", "result"}


class JobTable:
    """The jobs of one service, in a SQLite file.

    Args:
        path: The SQLite file; its folder is created.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pending: dict[str, Job] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, request_id TEXT NOT NULL,"
            " spec TEXT, lane TEXT, experiment TEXT, state TEXT, stage TEXT, progress REAL,"
            " create_time REAL, start_time REAL, end_time REAL, error_code TEXT,"
            " error_message TEXT, result TEXT)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS jobs_request ON jobs (request_id)")

    def close(self) -> None:
        """Closes the file."""
        self._db.close()

    def save(self, job: Job) -> None:
        """Inserts or replaces ``job``: the table's one write.

        When the disk is full the row is kept in memory instead (every read of this table
        sees it, and each later save tries to write it again) and ResourceExhaustedError is
        raised: the caller fails the job, or refuses it (:meth:`forget`), and a job is never
        left RUNNING for want of a write. A server restarted meanwhile finds the job's last
        written row and fails it as interrupted.

        Raises:
            ResourceExhaustedError: The disk is full; the row is held in memory.
        """
        self._pending[job.id] = replace(job)
        try:
            for pending in list(self._pending.values()):
                self._write(pending)
                del self._pending[pending.id]
        except sqlite3.Error as exc:
            if not is_disk_full(exc):
                raise
            raise ResourceExhaustedError(
                f"no space left on the device for the job table {self._path}: {exc}"
            ) from exc

    def forget(self, job_id: str) -> None:
        """Drops a row held in memory by a failed :meth:`save` (a job refused at submit)."""
        self._pending.pop(job_id, None)

    def _write(self, job: Job) -> None:
        values = [
            json.dumps(getattr(job, c)) if c in _JSON_COLUMNS else getattr(job, c) for c in _COLUMNS
        ]
        marks = ", ".join("?" for _ in _COLUMNS)
        self._db.execute(
            f"INSERT OR REPLACE INTO jobs ({', '.join(_COLUMNS)}) VALUES ({marks})", values
        )

    def _rows(
        self,
        where: str = "",
        params: tuple[Any, ...] = (),
        tail: str = "",
        keep: Callable[[Job], bool] = lambda job: True,
    ) -> list[Job]:
        """The rows ``where`` selects; with rows held in memory, ``keep`` says which qualify.

        ``tail`` (order and limit) applies to the written rows; callers with rows held in
        memory re-sort and cut (:meth:`_merged`).
        """
        sql = f"SELECT {', '.join(_COLUMNS)} FROM jobs {where} {tail}"
        jobs = []
        for row in self._db.execute(sql, params):
            data = dict(zip(_COLUMNS, row, strict=True))
            for c in _JSON_COLUMNS:
                data[c] = json.loads(data[c]) if data[c] is not None else None
            jobs.append(Job(**data))
        if not self._pending:
            return jobs
        jobs = [job for job in jobs if job.id not in self._pending]
        return jobs + [replace(job) for job in self._pending.values() if keep(job)]

    def _merged(
        self, where: str, params: tuple[Any, ...], keep: Callable[[Job], bool], newest: bool
    ) -> list[Job]:
        """Every row ``where`` and ``keep`` select, written or held, by create_time."""
        order = "DESC" if newest else ""
        jobs = self._rows(where, params, f"ORDER BY create_time {order}", keep)
        return sorted(jobs, key=lambda job: job.create_time, reverse=newest)

    def get(self, job_id: str) -> Job | None:
        """Returns the job with ``job_id``, or None."""
        if job_id in self._pending:
            return replace(self._pending[job_id])
        found = self._rows("WHERE id = ?", (job_id,))
        return found[0] if found else None

    def latest_for_request(self, request_id: str) -> Job | None:
        """Returns the newest job created with ``request_id``, or None."""
        if self._pending:
            found = self._merged(
                "WHERE request_id = ?",
                (request_id,),
                lambda job: job.request_id == request_id,
                newest=True,
            )
        else:
            found = self._rows(
                "WHERE request_id = ?", (request_id,), "ORDER BY create_time DESC LIMIT 1"
            )
        return found[0] if found else None

    def in_state(self, state: str) -> list[Job]:
        """Returns the jobs in ``state``, oldest first."""
        return self._merged(
            "WHERE state = ?", (state,), lambda job: job.state == state, newest=False
        )

    def queued(self, lane: str, limit: int) -> list[Job]:
        """Returns up to ``limit`` QUEUED jobs of ``lane``, oldest first."""
        if self._pending:
            jobs = self._merged(
                "WHERE state = ? AND lane = ?",
                (QUEUED, lane),
                lambda job: job.state == QUEUED and job.lane == lane,
                newest=False,
            )
            return jobs[: int(limit)]
        tail = f"ORDER BY create_time LIMIT {int(limit)}"
        return self._rows("WHERE state = ? AND lane = ?", (QUEUED, lane), tail)

    def count_in_state(self, state: str) -> int:
        """Returns the number of jobs in ``state``."""
        if self._pending:
            return len(self.in_state(state))
        row = self._db.execute("SELECT count(*) FROM jobs WHERE state = ?", (state,)).fetchone()
        return int(row[0])

    def page(self, experiment: str, limit: int, offset: int) -> list[Job]:
        """Returns a page of jobs, newest first, optionally of one experiment."""
        where, params = ("WHERE experiment = ?", (experiment,)) if experiment else ("", ())
        if self._pending:
            jobs = self._merged(
                where,
                params,
                lambda job: not experiment or job.experiment == experiment,
                newest=True,
            )
            return jobs[int(offset) : int(offset) + int(limit)]
        return self._rows(
            where, params, f"ORDER BY create_time DESC LIMIT {int(limit)} OFFSET {int(offset)}"
        )

    def counts(self) -> dict[str, int]:
        """Returns the number of jobs in each state."""
        if self._pending:
            counted: dict[str, int] = {}
            for job in self._rows():
                counted[job.state] = counted.get(job.state, 0) + 1
            return counted
        return dict(self._db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
