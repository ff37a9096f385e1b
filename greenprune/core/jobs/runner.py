"""A persisted job runner: the job table, and a backend that runs each job in its own process.

The table (:mod:`.table`) is a SQLite file in the service's state directory. Each job runs in
a process of its own started by the backend: a spawned local child by default
(:mod:`.local_backend`), or a Ray actor (:mod:`.ray_backend`); the runner reads the same
worker-protocol messages from either (:mod:`.protocol`), so the table, states, progress, Watch,
cancel, reporting and "interrupted" on restart are the same whichever runs the work. Each lane
(a device, say) runs as many jobs at once as the backend allows: one for local children.

A repeated ``request_id`` returns the existing job unless that job failed or was cancelled, in
which case a new attempt is queued. On start, jobs left RUNNING by a previous process are
marked FAILED with the reason "interrupted" (or, when their work was done, reported); QUEUED
jobs are run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from greenprune.core.errors import NotFoundError, ResourceExhaustedError, is_retryable
from greenprune.core.jobs.backend import Backend, Execution
from greenprune.core.jobs.local_backend import LocalBackend
from greenprune.core.jobs.protocol import ERROR, PROGRESS, RESULT, Message
from greenprune.core.jobs.table import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Job,
    JobTable,
)
from greenprune.core.limits import check_text, quoted

log = logging.getLogger(__name__)

OnSucceeded = Callable[[Job], Awaitable[None]]

_TABLE_FULL = "no space left on the device for the job table; the job was stopped"


class JobRunner:
    """Runs the jobs of one service.

    Args:
        state_dir: The service's state folder; the table is ``jobs.sqlite`` in it and each job
            gets a work folder under ``jobs/``.
        worker: The worker function, ``"module:function"`` (see :mod:`.protocol`).
        context: JSON-serialisable settings passed to every worker call.
        lane_of: Picks a job's lane from its spec.
        max_queued: The most jobs waiting at once; more is RESOURCE_EXHAUSTED.
        on_succeeded: Awaited in the server after a worker succeeds (the "reporting" stage).
            While it raises an error that :func:`greenprune.core.errors.is_retryable` accepts
            (the ResultsService is unreachable), it is retried with backoff for as long as it
            takes, the stage saying ``reporting (retry N)``, so finished work is never thrown
            away; a reporting job left by a stopped server is resumed by :meth:`start`. Any
            other error fails the job with its message.
        report_backoff: The first and the longest pause between reporting attempts, seconds.
        warm: The worker's warm-up hook, ``"module:function"`` taking the lane, run in each
            job process before its job (imports, one-off detection).
        warm_lanes: Lanes that keep a warmed process waiting while idle; :meth:`start` returns
            once they are ready. Other lanes start their process when a job arrives.
        backend: What runs the jobs (default: local child processes).
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
        backend: Backend | None = None,
    ) -> None:
        self._state_dir = state_dir
        self._table = JobTable(state_dir / "jobs.sqlite")
        self._context = dict(context or {})
        self._lane_of = lane_of
        self._max_queued = max_queued
        self._on_succeeded = on_succeeded
        self._changed = asyncio.Condition()
        self._lane_wakeups: dict[str, asyncio.Event] = {}
        self._lane_tasks: dict[str, asyncio.Task[None]] = {}
        self._running: dict[str, Execution] = {}
        self._cancelled: set[str] = set()
        self._stopping = False
        self._report_backoff = report_backoff
        self._reporting: dict[str, asyncio.Task[None]] = {}
        self._backend = backend if backend is not None else LocalBackend()
        self._backend.bind(worker, warm, warm_lanes)

    @property
    def table(self) -> JobTable:
        """The job table."""
        return self._table

    async def start(self, warm_timeout: float = 300.0) -> None:
        """Marks jobs a previous process left RUNNING as FAILED, warms, then runs the queue.

        Args:
            warm_timeout: The most seconds to wait for the warm processes; a slower one still
                serves its lane's next job once it is ready.
        """
        for job in self._table.in_state(RUNNING):
            if job.result is not None and self._on_succeeded is not None:
                self._start_reporting(job)  # the work is done: report it, never discard it
            else:
                self._finish(job, FAILED, "ABORTED", INTERRUPTED)
        await self._backend.start(warm_timeout)
        for job in self._table.in_state(QUEUED):
            self._wake(job.lane)

    async def stop(self) -> None:
        """Stops taking jobs; running ones are ended and marked FAILED "interrupted"."""
        self._stopping = True
        for job_id in list(self._running):
            job = self._table.get(job_id)
            if job is not None and not job.done:
                self._finish(job, FAILED, "ABORTED", INTERRUPTED)
                self._cancelled.add(job_id)
        self._backend.stop()
        tasks = [*self._lane_tasks.values(), *self._reporting.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._backend.close()
        self._table.close()

    def check_lane(self, spec: dict[str, Any]) -> str:
        """Returns the lane a job of ``spec`` would run in, refusing one no worker can serve."""
        lane = self._lane_of(spec)
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
                try:
                    self._table.save(existing)
                except ResourceExhaustedError:
                    self._table.forget(existing.id)  # it stays SUCCEEDED as written
                    raise
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
        try:
            self._table.save(job)
        except ResourceExhaustedError:
            self._table.forget(job.id)  # refused: nothing queued
            raise
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
        self._finish(job, CANCELLED, "CANCELLED", "cancelled by a client")
        execution = self._running.get(job_id)
        if execution is not None:
            await execution.kill()
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

    # -- running jobs ------------------------------------------------------------------------

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
        """Keeps up to the backend's concurrency of the lane's queued jobs running."""
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
                for job in self._table.queued(lane, free) if free > 0 else []:
                    execution = self._launch(job)
                    if execution is None:
                        event.set()  # its place is free again: read the queue again
                        continue
                    task = asyncio.create_task(self._follow(job, execution), name=f"job-{job.id}")
                    running[job.id] = task
                    task.add_done_callback(lambda _, job_id=job.id: finished(job_id))
                await event.wait()
        finally:
            for task in list(running.values()):
                task.cancel()
            for task in list(running.values()):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _launch(self, job: Job) -> Execution | None:
        """Marks the job RUNNING and starts it on the backend; None when it could not start."""
        context = {
            **self._context,
            "job_id": job.id,
            "workdir": str(self._state_dir / "jobs" / job.id),
        }
        try:
            execution = self._backend.launch(job.lane, job.spec, context)
        except Exception:  # noqa: BLE001 - a broken job must not stop the lane
            log.exception("job %s could not be run", job.id)
            self._finish(job, FAILED, "INTERNAL", "the job could not be run")
            return None
        job.state, job.stage, job.start_time = RUNNING, "starting", time.time()
        if not self._keep(job):
            self._cancelled.add(job.id)
            asyncio.get_running_loop().create_task(execution.kill())
            self._finish(job, FAILED, "RESOURCE_EXHAUSTED", _TABLE_FULL)
            return None
        self._running[job.id] = execution
        return execution

    def _keep(self, job: Job) -> bool:
        """Saves ``job``; False when the disk is full (the table holds the row in memory)."""
        try:
            self._table.save(job)
        except ResourceExhaustedError as exc:
            log.warning("job %s: %s", job.id, exc)
            return False
        return True

    async def _follow(self, job: Job, execution: Execution) -> None:
        """Reads a running job's messages into the table, then concludes it."""
        try:
            await self._notify()
            outcome: Message | None = None
            try:
                async for message in execution.messages():
                    if message[0] == PROGRESS and job.id not in self._cancelled:
                        job.stage, job.progress = message[1], message[2]
                        if not self._keep(job):
                            # The job cannot be followed: it fails now, never stuck RUNNING.
                            self._cancelled.add(job.id)
                            self._finish(job, FAILED, "RESOURCE_EXHAUSTED", _TABLE_FULL)
                            await execution.kill()
                        await self._notify()
                    elif message[0] in (RESULT, ERROR):
                        outcome = message
            finally:
                self._running.pop(job.id, None)
                # Only a process whose job returned a result runs another (reuse_job_process).
                reusable = (
                    outcome is not None and outcome[0] == RESULT and job.id not in self._cancelled
                )
                await execution.close(reusable)
            if job.id not in self._cancelled:
                await self._conclude(job, outcome, execution)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a broken job must not stop the lane
            log.exception("job %s could not be run", job.id)
            current = self._table.get(job.id)
            if current is not None and not current.done:
                self._finish(current, FAILED, "INTERNAL", "the job could not be run")
                await self._notify()

    def _finish(self, job: Job, state: str, code: str | None, message: str | None) -> None:
        """Ends a job; with a full disk its end is held in memory (``JobTable.save``)."""
        job.state = state
        job.end_time = time.time()
        if state == SUCCEEDED:
            job.progress = 1.0
            job.stage = "done"
        else:
            job.error_code, job.error_message = code, message
            job.stage = state.lower()
        self._keep(job)

    async def _conclude(self, job: Job, outcome: Message | None, execution: Execution) -> None:
        if outcome is None:
            self._finish(job, FAILED, "INTERNAL", execution.death())
        elif outcome[0] == ERROR:
            self._finish(job, FAILED, outcome[1], outcome[2])
        else:
            job.result = outcome[1]
            if self._on_succeeded is not None:
                job.stage = "reporting"
                # Reported even when the table has no room to write it: the work is complete
                # (a checkpoint on disk), and recorded it is never lost.
                self._keep(job)
                self._start_reporting(job)  # off the lane: the next job need not wait for it
                await self._notify()
                return
            self._finish(job, SUCCEEDED, None, None)
        await self._notify()

    # -- reporting ---------------------------------------------------------------------------

    def _start_reporting(self, job: Job) -> None:
        if self._stopping or job.id in self._reporting:
            return
        task = asyncio.create_task(self._report(job), name=f"report-{job.id}")
        self._reporting[job.id] = task
        task.add_done_callback(lambda _: self._reporting.pop(job.id, None))

    async def _report(self, job: Job) -> None:
        """Awaits ``on_succeeded`` until it succeeds, retrying retryable errors with backoff.

        This is the one retry loop of a report: the reporter itself tries each call once.
        """
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
                self._keep(job)
                await self._notify()
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)
        if job.id in self._cancelled:
            return
        self._finish(job, SUCCEEDED, None, None)
        await self._notify()
