"""Runs each job in a spawned child process on this machine (the default backend).

Each job runs in a fresh ``spawn`` child, so torch never runs on the server's event loop,
cancel is ``terminate``, memory is freed on exit and a crash of the job does not crash the
server. One job runs at a time per lane. The child dies with the server (a parent-death
signal), so no job outlives it.

Starting a child costs seconds (imports of torch, transformers, lm-eval; CodeCarbon's hardware
detection) that no job should pay. For the warm lanes the backend keeps a *warm* child: spawned
while the lane is idle, it loads the worker and runs its warm-up hook, then waits for its job.
By default each child runs exactly one job and exits (memory returned, nothing carried over);
with ``reuse`` a child that ended its job well waits for the lane's next one instead, which
saves every later job the start (several CPU seconds each, for a sweep of short jobs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import time
import types
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from greenprune.core.jobs.backend import Backend, Execution
from greenprune.core.jobs.protocol import ERROR, RESULT, Message, WorkerProcess

log = logging.getLogger(__name__)

READY: Message = ("ready",)
"""What a child says once its worker is loaded and warmed."""


def _send_or_exit(conn: Connection, message: Message) -> None:
    """Sends to the parent; a parent that stopped listening ends the child quietly."""
    try:
        conn.send(message)
    except (BrokenPipeError, OSError):
        os._exit(1)


def _receive(conn: Connection) -> Any:
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None


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


def _child_main(
    worker: str, warm: str | None, lane: str, conn: Connection, parent_pid: int, reuse: bool
) -> None:
    """Loads the worker, waits for a job on ``conn`` and reports on it over ``conn``.

    The child says ``("ready",)`` once the worker is loaded and warmed, then receives
    ``(spec, context)``; a closed pipe means no (more) jobs, and the child exits. With
    ``reuse`` it waits for the next job after each one, else it exits after its first.
    """
    # Ctrl-C in a terminal reaches the whole process group; the server decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    process = WorkerProcess(worker, warm, lane)
    _send_or_exit(conn, READY)
    while (request := _receive(conn)) is not None:
        spec, context = request
        process.run_job(spec, context, lambda message: _send_or_exit(conn, message))
        if not reuse:
            break
        _release_memory()
    conn.close()
    # The job is reported; skip the interpreter's slow teardown (freeing a model, joining
    # library threads): the parent waits for this exit before the job is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _release_memory() -> None:
    """Between two jobs of one child: frees the last job's objects and cached device memory."""
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


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


class LocalExecution(Execution):
    """A job in a child process of this server."""

    def __init__(self, backend: LocalBackend, lane: str, child: _Child) -> None:
        self._backend = backend
        self._lane = lane
        self._child = child

    async def messages(self) -> AsyncIterator[Message]:
        """The child's messages, until its outcome (a result or an error) or its pipe closes."""
        while (message := await asyncio.to_thread(_receive, self._child.conn)) is not None:
            if message != READY:
                yield message
                if message[0] in (RESULT, ERROR):
                    return

    async def close(self, reusable: bool) -> None:
        """Keeps a ``reusable`` child for its lane's next job, or waits for it to exit.

        A ``reusable`` child is kept with ``reuse``; otherwise its lane warms again.
        """
        if reusable and self._backend.keeps(self._child):
            self._backend.finished(self, keep=self._child)
            return
        try:
            self._child.conn.close()  # a reusing child waiting for its next job exits
            await asyncio.to_thread(self._child.process.join)
        finally:
            self._backend.finished(self)

    def death(self) -> str:
        """``the worker process died (exit code N)``, saying when it was killed."""
        exitcode = self._child.process.exitcode
        reason = f"the worker process died (exit code {exitcode})"
        if exitcode == -signal.SIGKILL:
            reason += "; it was killed, possibly for lack of memory"
        return reason

    def terminate(self) -> None:
        """Sends the child SIGTERM."""
        self._child.process.terminate()

    async def kill(self) -> None:
        """Terminates the child and waits (up to 10 s) until it is gone."""
        self.terminate()
        await asyncio.to_thread(self._child.process.join, 10)

    @property
    def lane(self) -> str:
        """The lane the job runs in."""
        return self._lane

    @property
    def process(self) -> multiprocessing.process.BaseProcess:
        """The child process."""
        return self._child.process


class LocalBackend(Backend):
    """Runs jobs in spawned child processes of the server, one at a time per lane.

    Args:
        reuse: Keep a child that ended its job well for the lane's next job, rather than a
            fresh process per job (faster for short jobs; memory is not returned between jobs).
    """

    def __init__(self, reuse: bool = False) -> None:
        self._reuse = reuse
        self._worker = ""
        self._warm: str | None = None
        self._warm_lanes: tuple[str, ...] = ()
        self._spares: dict[str, _Child] = {}
        self._running: set[LocalExecution] = set()
        self._stopping = False

    def bind(self, worker: str, warm: str | None, warm_lanes: tuple[str, ...]) -> None:
        """Sets the worker, its warm-up hook and the lanes that keep a warm child."""
        self._worker, self._warm, self._warm_lanes = worker, warm, warm_lanes

    async def start(self, warm_timeout: float) -> None:
        """Spawns the warm lanes' children and waits up to ``warm_timeout`` s until they are ready.

        A child that is slower still serves its lane's next job once it is ready.
        """
        for lane in self._warm_lanes:
            self._spares[lane] = self._spawn(lane)
        deadline = time.monotonic() + warm_timeout
        for lane in self._warm_lanes:
            await self._await_ready(self._spares[lane], max(deadline - time.monotonic(), 0.0))

    def concurrency(self, lane: str) -> int:
        """One job at a time per lane (a device, say)."""
        return 1

    def launch(self, lane: str, spec: dict[str, Any], context: dict[str, Any]) -> LocalExecution:
        """Hands the job to the lane's warm child, or to a new one; makes its work folder."""
        Path(context["workdir"]).mkdir(parents=True, exist_ok=True)
        child = self._take_child(lane)
        execution = LocalExecution(self, lane, child)
        self._running.add(execution)
        with contextlib.suppress(BrokenPipeError, OSError):  # a dead child is seen by its job
            child.conn.send((spec, context))
        return execution

    def keeps(self, child: _Child) -> bool:
        """Whether a child that ended its job well serves its lane's next job."""
        return self._reuse and not self._stopping and child.process.is_alive()

    def finished(self, execution: LocalExecution, keep: _Child | None = None) -> None:
        """A job has ended: its kept child is the lane's spare, else a warm lane spawns one.

        Args:
            execution: The job that ended.
            keep: Its child, alive and waiting for the lane's next job (``reuse``), or None.
        """
        self._running.discard(execution)
        lane = execution.lane
        if keep is not None:
            spare = self._spares.setdefault(lane, keep)
            if spare is not keep:  # the lane has a spare already (one job per lane at a time)
                keep.discard()
            return
        if lane in self._warm_lanes and lane not in self._spares and not self._stopping:
            self._spares[lane] = self._spawn(lane)

    def stop(self) -> None:
        """Stops warming, terminates the job children and discards the warm ones."""
        self._stopping = True
        for execution in self._running:
            execution.terminate()
        for spare in self._spares.values():
            spare.discard()

    async def close(self) -> None:
        """Waits (up to 5 s each) for the children to exit."""
        processes = [e.process for e in self._running] + [c.process for c in self._spares.values()]
        for process in processes:
            await asyncio.to_thread(process.join, 5)

    # -- children ----------------------------------------------------------------------------

    def _spawn(self, lane: str) -> _Child:
        """Starts a child for ``lane``; it warms up, then waits for its job."""
        mp = multiprocessing.get_context("spawn")
        parent_end, child_end = mp.Pipe(duplex=True)
        process = mp.Process(
            target=_child_main,
            args=(self._worker, self._warm, lane, child_end, os.getpid(), self._reuse),
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
            child.ready = _receive(child.conn) == READY
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
