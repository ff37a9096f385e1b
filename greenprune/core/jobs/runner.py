"""A persisted job runner: each job runs in a spawned child process.

The job table is a SQLite file in the service's state directory. Jobs run one at a time per
*lane* (a device, say), each in a fresh ``spawn`` child, so torch never runs on the event loop,
cancel is ``terminate``, memory is freed on exit and a crash of the job does not crash the
server. A repeated ``request_id`` returns the existing job unless that job failed or was
cancelled, in which case a new attempt is queued. On start, jobs left RUNNING by a previous
process are marked FAILED with the reason "interrupted"; QUEUED jobs are run.

A worker is a function ``work(spec: dict, context: dict, progress) -> dict`` named as
``"module:function"``; it runs in the child and returns a JSON-serialisable result.

Starting a child costs seconds (imports of torch, transformers, lm-eval; CodeCarbon's hardware
detection) that no job should pay. For the lanes named in ``warm_lanes`` the runner keeps a
*warm* child: spawned while the lane is idle, it imports the worker and runs its ``warm(lane)``
hook, then waits for its one job. Each child still runs exactly one job and exits.

With a ``backend`` (:class:`greenprune.core.jobs.ray_backend.RayBackend`), jobs run on a Ray
cluster instead: the table, states, progress, Watch, cancel and "interrupted" on restart stay
the same, while each lane runs as many jobs at once as the backend allows and a job whose
resources the cluster lacks is refused at submit.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import multiprocessing
import os
import signal
import sqlite3
import sys
import time
import traceback
import types
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenprune.core.errors import (
    GreenpruneError,
    NotFoundError,
    ResourceExhaustedError,
    code_name,
    is_retryable,
)
from greenprune.core.limits import check_text, quoted

if TYPE_CHECKING:
    from greenprune.core.jobs.ray_backend import RayBackend, RayJob

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
INTERRUPTED = "interrupted"

Progress = Callable[[str, float], None]
OnSucceeded = Callable[["Job"], Awaitable[None]]


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
        """Inserts or replaces ``job``."""
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


def _send_or_exit(conn: Connection, message: tuple[Any, ...]) -> None:
    """Sends to the parent; a parent that stopped listening ends the child quietly."""
    try:
        conn.send(message)
    except (BrokenPipeError, OSError):
        os._exit(1)


def _die_with_parent(parent_pid: int) -> None:
    """Asks Linux to SIGKILL this child when the server dies, so no job outlives it.

    The server's pid is compared, not 1: a server that is PID 1 (a container without an init)
    is alive when it is this child's parent.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _resolve(name: str) -> Callable[..., Any]:
    """Imports ``"module:function"`` and returns the function."""
    module_name, function_name = name.split(":")
    return getattr(importlib.import_module(module_name), function_name)


def _child_main(
    worker: str, warm: str | None, lane: str, conn: Connection, parent_pid: int
) -> None:
    """Prepares the worker, waits for one job on ``conn`` and reports on it over ``conn``.

    The child says ``("ready",)`` once the worker is imported and warmed, then receives
    ``(spec, context)``; a closed pipe before that means no job, and the child exits.
    """
    # Ctrl-C in a terminal reaches the whole process group; the server decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    failure: Exception | None = None
    try:
        work = _resolve(worker)
        if warm is not None:
            _resolve(warm)(lane)
    except Exception as exc:  # noqa: BLE001 - reported with the job it would have run
        failure = exc
    _send_or_exit(conn, ("ready",))
    request = _receive(conn)
    if request is None:
        return
    spec, context = request
    try:
        if failure is not None:
            raise failure

        def progress(stage: str, fraction: float) -> None:
            _send_or_exit(conn, ("progress", stage, min(max(float(fraction), 0.0), 1.0)))

        result = work(spec, context, progress)
    except Exception as exc:  # noqa: BLE001 - everything is reported to the parent
        traceback.print_exc(file=sys.stderr)
        message = str(exc) if isinstance(exc, GreenpruneError) else f"{type(exc).__name__}: {exc}"
        _send_or_exit(conn, ("error", code_name(exc), message))
    else:
        _send_or_exit(conn, ("result", result))
    finally:
        conn.close()
    # The job is reported; skip the interpreter's slow teardown (freeing a model, joining
    # library threads): the parent waits for this exit before the job is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@contextlib.contextmanager
def _without_main_module() -> Iterator[None]:
    """Hides ``__main__`` while a child is spawned, so the child never re-runs it.

    ``spawn`` re-imports the parent's main script in the child; a server's main is harmless,
    but a host that runs other code as ``__main__`` (Streamlit's AppTest, a notebook) would
    have it run again in every job. The job needs only ``_child_main``'s own module.
    """
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def _receive(conn: Connection) -> Any:
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None


@dataclass
class _Child:
    """A spawned job process and the parent's end of its pipe."""

    process: multiprocessing.process.BaseProcess
    conn: Connection
    ready: bool = False

    def discard(self) -> None:
        """Closes the pipe (an idle child then exits) and makes sure the process ends."""
        self.conn.close()
        self.process.terminate()


class JobRunner:
    """Runs the jobs of one service.

    Args:
        state_dir: The service's state folder; the table is ``jobs.sqlite`` in it and each job
            gets a work folder under ``jobs/``.
        worker: The worker function, ``"module:function"``.
        context: JSON-serialisable settings passed to every worker call.
        lane_of: Picks a job's lane from its spec; one job runs at a time per lane.
        max_queued: The most jobs waiting at once; more is RESOURCE_EXHAUSTED.
        on_succeeded: Awaited in the server after a worker succeeds (the "reporting" stage).
            While it raises an error that :func:`greenprune.core.errors.is_retryable` accepts
            (the ResultsService is unreachable), it is retried with backoff for as long as it
            takes, the stage saying ``reporting (retry N)``, so finished work is never thrown
            away; a reporting job left by a stopped server is resumed by :meth:`start`. Any
            other error fails the job with its message.
        report_backoff: The first and the longest pause between reporting attempts, seconds.
        warm: The worker's warm-up hook, ``"module:function"`` taking the lane, run in each
            child before its job (imports, one-off detection).
        backend: Run the jobs on Ray through this backend instead of local children (with the
            same worker and warm hook); None keeps local children.
        warm_lanes: Lanes that keep a warm child waiting while idle; :meth:`start` returns
            once they are ready. Other lanes start their child when a job arrives.
    """

    def __init__(
        self,
        *,
        state_dir: Path,
        worker: str,
        context: dict[str, Any] | None = None,
        lane_of: Callable[[dict[str, Any]], str] = lambda spec: "default",
        max_queued: int = 256,
        on_succeeded: OnSucceeded | None = None,
        warm: str | None = None,
        warm_lanes: tuple[str, ...] = (),
        report_backoff: tuple[float, float] = (1.0, 30.0),
        backend: RayBackend | None = None,
    ) -> None:
        self._state_dir = state_dir
        self._table = JobTable(state_dir / "jobs.sqlite")
        self._worker = worker
        self._context = dict(context or {})
        self._lane_of = lane_of
        self._max_queued = max_queued
        self._on_succeeded = on_succeeded
        self._warm = warm
        self._warm_lanes = warm_lanes
        self._spares: dict[str, _Child] = {}
        self._changed = asyncio.Condition()
        self._lane_wakeups: dict[str, asyncio.Event] = {}
        self._lane_tasks: dict[str, asyncio.Task[None]] = {}
        self._processes: dict[str, multiprocessing.process.BaseProcess] = {}
        self._cancelled: set[str] = set()
        self._stopping = False
        self._report_backoff = report_backoff
        self._reporting: dict[str, asyncio.Task[None]] = {}
        self._backend = backend
        if backend is not None:
            backend.bind(worker, warm)
        self._remote: dict[str, RayJob] = {}

    @property
    def table(self) -> JobTable:
        """The job table."""
        return self._table

    async def start(self, warm_timeout: float = 300.0) -> None:
        """Marks jobs a previous process left RUNNING as FAILED, warms, then runs the queue.

        Args:
            warm_timeout: The most seconds to wait for the warm children; a child that is
                slower still serves its lane's next job once it is ready.
        """
        for job in self._table.in_state(RUNNING):
            if job.result is not None and self._on_succeeded is not None:
                self._start_reporting(job)  # the work is done: report it, never discard it
            else:
                self._finish(job, FAILED, "ABORTED", INTERRUPTED)
        if self._backend is not None:
            await self._start_backend(warm_timeout)
            return
        for lane in self._warm_lanes:
            self._spares[lane] = self._spawn(lane)
        deadline = time.monotonic() + warm_timeout
        for lane in self._warm_lanes:
            await self._await_ready(self._spares[lane], max(deadline - time.monotonic(), 0.0))
        for job in self._table.in_state(QUEUED):
            self._wake(job.lane)

    async def _start_backend(self, warm_timeout: float) -> None:
        backend = self._backend
        assert backend is not None
        await asyncio.to_thread(backend.connect)
        for lane in self._warm_lanes:
            backend.add_spare(lane)
        lanes = self._warm_lanes
        await asyncio.gather(*(backend.await_ready(lane, warm_timeout) for lane in lanes))
        for job in self._table.in_state(QUEUED):
            self._wake(job.lane)

    async def stop(self) -> None:
        """Stops taking jobs; running ones are terminated and marked FAILED "interrupted"."""
        self._stopping = True
        for job_id, remote in list(self._remote.items()):
            job = self._table.get(job_id)
            if job is not None and not job.done:
                self._finish(job, FAILED, "ABORTED", INTERRUPTED)
                self._cancelled.add(job_id)
            assert self._backend is not None
            self._backend.kill(remote)
        for job_id, process in list(self._processes.items()):
            job = self._table.get(job_id)
            if job is not None and not job.done:
                self._finish(job, FAILED, "ABORTED", INTERRUPTED)
                self._cancelled.add(job_id)
            process.terminate()
        for spare in self._spares.values():
            spare.discard()
        tasks = [*self._lane_tasks.values(), *self._reporting.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for process in [*self._processes.values(), *(c.process for c in self._spares.values())]:
            await asyncio.to_thread(process.join, 5)
        if self._backend is not None:
            self._backend.close()
            await asyncio.to_thread(self._backend.disconnect)
        self._table.close()

    def check_lane(self, spec: dict[str, Any]) -> str:
        """Returns the lane a job of ``spec`` would run in, refusing one no worker can serve."""
        lane = self._lane_of(spec)
        if self._backend is not None:
            self._backend.check(lane)  # refused now rather than pending forever
        return lane

    async def submit(self, request_id: str, spec: dict[str, Any], experiment: str = "") -> Job:
        """Queues a job, or returns the live or finished job of the same ``request_id``.

        A SUCCEEDED job returned this way is reported again (stage ``reporting``) before it is
        SUCCEEDED once more, so a results store that lost its record gets it back.
        """
        check_text("experiment", experiment)
        existing = self._table.latest_for_request(request_id)
        if existing is not None and existing.state not in (FAILED, CANCELLED):
            if existing.state == SUCCEEDED and self._on_succeeded is not None:
                # Report it again (recording is idempotent): the results store may have been
                # lost or replaced since, and a rerun must be able to finish.
                existing.state, existing.stage, existing.end_time = RUNNING, "reporting", None
                self._table.save(existing)
                self._start_reporting(existing)
                await self._notify()
            return existing
        if self._table.count_in_state(QUEUED) >= self._max_queued:
            raise ResourceExhaustedError(f"the job queue is full ({self._max_queued} waiting)")
        lane = self.check_lane(spec)
        job = Job(
            id=uuid.uuid4().hex[:16],
            request_id=request_id,
            spec=spec,
            lane=lane,
            experiment=experiment,
        )
        self._table.save(job)
        await self._notify()
        self._wake(job.lane)
        return job

    def get(self, job_id: str) -> Job:
        """Returns a job, or raises NotFoundError."""
        job = self._table.get(job_id)
        if job is None:
            raise NotFoundError(f"job {quoted(job_id)} not found")
        return job

    def list(self, experiment: str = "", limit: int = 100, offset: int = 0) -> list[Job]:
        """Returns a page of jobs, newest first."""
        return self._table.page(experiment, limit, offset)

    def counts(self) -> dict[str, int]:
        """Returns the number of jobs in each state."""
        return self._table.counts()

    async def cancel(self, job_id: str) -> Job:
        """Cancels a queued or running job; a finished job is returned unchanged."""
        job = self.get(job_id)
        if job.done:
            return job
        self._cancelled.add(job_id)
        process = self._processes.get(job_id)
        self._finish(job, CANCELLED, "CANCELLED", "cancelled by a client")
        remote = self._remote.get(job_id)
        if remote is not None and self._backend is not None:
            self._backend.kill(remote)
        if process is not None:
            process.terminate()
            await asyncio.to_thread(process.join, 10)
        await self._notify()
        return self.get(job_id)

    async def watch(self, job_id: str) -> AsyncIterator[Job]:
        """Yields the job now and after each change, until it is done."""
        last: Job | None = None
        while True:
            job = self.get(job_id)
            if job != last:
                yield job
                last = job
            if job.done:
                return
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout=1.0)

    # -- internals ---------------------------------------------------------------------------

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _wake(self, lane: str) -> None:
        if self._stopping:
            return
        event = self._lane_wakeups.setdefault(lane, asyncio.Event())
        event.set()
        if lane not in self._lane_tasks or self._lane_tasks[lane].done():
            self._lane_tasks[lane] = asyncio.create_task(self._lane_loop(lane), name=f"lane-{lane}")

    async def _lane_loop(self, lane: str) -> None:
        if self._backend is not None:
            await self._backend_lane_loop(lane)
            return
        event = self._lane_wakeups[lane]
        while not self._stopping:
            event.clear()
            waiting = [job for job in self._table.in_state(QUEUED) if job.lane == lane]
            if not waiting:
                await event.wait()
                continue
            try:
                await self._run(waiting[0])
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a broken job must not stop the lane
                log.exception("job %s could not be run", waiting[0].id)
                job = self._table.get(waiting[0].id)
                if job is not None and not job.done:
                    self._finish(job, FAILED, "INTERNAL", "the job could not be run")
            if lane in self._warm_lanes and lane not in self._spares and not self._stopping:
                self._spares[lane] = self._spawn(lane)

    async def _backend_lane_loop(self, lane: str) -> None:
        """Keeps up to the backend's concurrency of the lane's jobs in flight on Ray."""
        assert self._backend is not None
        event = self._lane_wakeups[lane]
        limit = self._backend.concurrency(lane)
        running: dict[str, asyncio.Task[None]] = {}

        def finished(job_id: str) -> None:
            running.pop(job_id, None)
            event.set()

        try:
            while not self._stopping:
                event.clear()
                free = limit - len(running)
                if free > 0:
                    waiting = [
                        job
                        for job in self._table.queued(lane, free + len(running))
                        if job.id not in running
                    ]
                    for job in waiting[:free]:
                        task = asyncio.create_task(self._run_guarded(job), name=f"job-{job.id}")
                        running[job.id] = task
                        task.add_done_callback(lambda _, job_id=job.id: finished(job_id))
                await event.wait()
        finally:
            for task in list(running.values()):
                task.cancel()
            for task in list(running.values()):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _run_guarded(self, job: Job) -> None:
        try:
            await self._run_remote(job)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a broken job must not stop the lane
            log.exception("job %s could not be run", job.id)
            current = self._table.get(job.id)
            if current is not None and not current.done:
                self._finish(current, FAILED, "INTERNAL", "the job could not be run")
                await self._notify()

    async def _run_remote(self, job: Job) -> None:
        """Runs one job on the backend and concludes it as a local child's job would be."""
        backend = self._backend
        assert backend is not None
        context = {
            **self._context,
            "job_id": job.id,
            "workdir": str(self._state_dir / "jobs" / job.id),
        }
        job.state, job.stage, job.start_time = RUNNING, "starting", time.time()
        self._table.save(job)
        remote = backend.launch(job.lane, job.spec, context)
        self._remote[job.id] = remote
        await self._notify()
        if job.lane in self._warm_lanes and backend.spares(job.lane) == 0:
            backend.add_spare(job.lane)  # warms while this job runs, for the next one
        outcome: tuple[Any, ...] | None = None
        try:
            async for message in backend.messages(remote):
                if message[0] == "progress" and job.id not in self._cancelled:
                    job.stage, job.progress = message[1], message[2]
                    self._table.save(job)
                    await self._notify()
                elif message[0] in ("result", "error"):
                    outcome = message
        finally:
            self._remote.pop(job.id, None)
            backend.release(remote, reusable=outcome is not None and job.id not in self._cancelled)
        if job.id in self._cancelled:
            return
        died = None
        if outcome is None:
            died = f"the Ray actor running the job died ({remote.place.get('error', 'no reason')})"
        await self._conclude(job, outcome, None, died)

    def _spawn(self, lane: str) -> _Child:
        """Starts a child for ``lane``; it warms up, then waits for its job."""
        mp = multiprocessing.get_context("spawn")
        parent_end, child_end = mp.Pipe(duplex=True)
        process = mp.Process(
            target=_child_main,
            args=(self._worker, self._warm, lane, child_end, os.getpid()),
            name=f"job-{lane}",
            daemon=True,
        )
        with _without_main_module():
            process.start()
        child_end.close()
        return _Child(process, parent_end)

    async def _await_ready(self, child: _Child, timeout: float) -> None:
        """Waits up to ``timeout`` seconds for a child's ``("ready",)``."""
        if child.ready:
            return
        if await asyncio.to_thread(child.conn.poll, timeout):
            child.ready = _receive(child.conn) == ("ready",)
        if not child.ready:
            log.warning("the warm job process of lane %s is not ready yet", child.process.name)

    def _take_child(self, lane: str) -> _Child:
        """The lane's warm child when it is alive, else a fresh one."""
        spare = self._spares.pop(lane, None)
        if spare is not None and spare.process.is_alive():
            return spare
        if spare is not None:
            spare.discard()
        return self._spawn(lane)

    def _finish(self, job: Job, state: str, code: str | None, message: str | None) -> None:
        job.state = state
        job.end_time = time.time()
        if state == SUCCEEDED:
            job.progress = 1.0
            job.stage = "done"
        else:
            job.error_code, job.error_message = code, message
            job.stage = state.lower()
        self._table.save(job)

    async def _run(self, job: Job) -> None:
        workdir = self._state_dir / "jobs" / job.id
        workdir.mkdir(parents=True, exist_ok=True)
        context = {**self._context, "job_id": job.id, "workdir": str(workdir)}
        child = self._take_child(job.lane)
        process = child.process
        job.state, job.stage, job.start_time = RUNNING, "starting", time.time()
        self._table.save(job)
        self._processes[job.id] = process
        await self._notify()
        outcome: tuple[Any, ...] | None = None
        try:
            with contextlib.suppress(BrokenPipeError, OSError):  # a dead child is seen below
                child.conn.send((job.spec, context))
            while (message := await asyncio.to_thread(_receive, child.conn)) is not None:
                if message[0] == "progress" and job.id not in self._cancelled:
                    job.stage, job.progress = message[1], message[2]
                    self._table.save(job)
                    await self._notify()
                elif message[0] in ("result", "error"):
                    outcome = message
            await asyncio.to_thread(process.join)
        finally:
            child.conn.close()
            self._processes.pop(job.id, None)
        if job.id in self._cancelled:
            return
        await self._conclude(job, outcome, process.exitcode)

    async def _conclude(
        self,
        job: Job,
        outcome: tuple[Any, ...] | None,
        exitcode: int | None,
        died: str | None = None,
    ) -> None:
        if outcome is None and died is not None:
            self._finish(job, FAILED, "INTERNAL", died)
        elif outcome is None:
            reason = f"the worker process died (exit code {exitcode})"
            if exitcode == -signal.SIGKILL:
                reason += "; it was killed, possibly for lack of memory"
            self._finish(job, FAILED, "INTERNAL", reason)
        elif outcome[0] == "error":
            self._finish(job, FAILED, outcome[1], outcome[2])
        else:
            job.result = outcome[1]
            if self._on_succeeded is not None:
                job.stage = "reporting"
                self._table.save(job)
                self._start_reporting(job)  # off the lane: the next job need not wait for it
                await self._notify()
                return
            self._finish(job, SUCCEEDED, None, None)
        await self._notify()

    def _start_reporting(self, job: Job) -> None:
        if self._stopping or job.id in self._reporting:
            return
        task = asyncio.create_task(self._report(job), name=f"report-{job.id}")
        self._reporting[job.id] = task
        task.add_done_callback(lambda _: self._reporting.pop(job.id, None))

    async def _report(self, job: Job) -> None:
        """Awaits ``on_succeeded`` until it succeeds, retrying retryable errors with backoff."""
        assert self._on_succeeded is not None
        delay, longest = self._report_backoff
        attempt = 0
        while True:
            try:
                await self._on_succeeded(job)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reported on the job
                if job.id in self._cancelled:
                    return
                if not is_retryable(exc):
                    log.exception("reporting job %s failed", job.id)
                    self._finish(job, FAILED, "UNAVAILABLE", f"reporting failed: {exc}"[:4096])
                    await self._notify()
                    return
                attempt += 1
                log.warning("reporting job %s failed (attempt %d): %s", job.id, attempt, exc)
                job.stage = f"reporting (retry {attempt})"
                self._table.save(job)
                await self._notify()
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)
        if job.id in self._cancelled:
            return
        self._finish(job, SUCCEEDED, None, None)
        await self._notify()
