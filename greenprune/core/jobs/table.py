"""The job table: the jobs of one service, in a SQLite file in its state folder.

The table is the source of truth whichever backend runs the work. :meth:`JobTable.save` is its
one write (a whole row, inserted or replaced), so what a write needs (durability, a full disk)
is handled in one place. The row format is stable: ``spec`` and ``result`` are JSON, the rest
plain columns named as :class:`Job`'s fields.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        """Inserts or replaces ``job``: the table's one write."""
        values = [
            json.dumps(getattr(job, c)) if c in _JSON_COLUMNS else getattr(job, c) for c in _COLUMNS
        ]
        marks = ", ".join("?" for _ in _COLUMNS)
        self._db.execute(
            f"INSERT OR REPLACE INTO jobs ({', '.join(_COLUMNS)}) VALUES ({marks})", values
        )

    def _rows(self, where: str = "", params: tuple[Any, ...] = (), tail: str = "") -> list[Job]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM jobs {where} {tail}"
        jobs = []
        for row in self._db.execute(sql, params):
            data = dict(zip(_COLUMNS, row, strict=True))
            for c in _JSON_COLUMNS:
                data[c] = json.loads(data[c]) if data[c] is not None else None
            jobs.append(Job(**data))
        return jobs

    def get(self, job_id: str) -> Job | None:
        """Returns the job with ``job_id``, or None."""
        found = self._rows("WHERE id = ?", (job_id,))
        return found[0] if found else None

    def latest_for_request(self, request_id: str) -> Job | None:
        """Returns the newest job created with ``request_id``, or None."""
        found = self._rows(
            "WHERE request_id = ?", (request_id,), "ORDER BY create_time DESC LIMIT 1"
        )
        return found[0] if found else None

    def in_state(self, state: str) -> list[Job]:
        """Returns the jobs in ``state``, oldest first."""
        return self._rows("WHERE state = ?", (state,), "ORDER BY create_time")

    def queued(self, lane: str, limit: int) -> list[Job]:
        """Returns up to ``limit`` QUEUED jobs of ``lane``, oldest first."""
        tail = f"ORDER BY create_time LIMIT {int(limit)}"
        return self._rows("WHERE state = ? AND lane = ?", (QUEUED, lane), tail)

    def count_in_state(self, state: str) -> int:
        """Returns the number of jobs in ``state``."""
        row = self._db.execute("SELECT count(*) FROM jobs WHERE state = ?", (state,)).fetchone()
        return int(row[0])

    def page(self, experiment: str, limit: int, offset: int) -> list[Job]:
        """Returns a page of jobs, newest first, optionally of one experiment."""
        where, params = ("WHERE experiment = ?", (experiment,)) if experiment else ("", ())
        return self._rows(
            where, params, f"ORDER BY create_time DESC LIMIT {int(limit)} OFFSET {int(offset)}"
        )

    def counts(self) -> dict[str, int]:
        """Returns the number of jobs in each state."""
        return dict(self._db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
