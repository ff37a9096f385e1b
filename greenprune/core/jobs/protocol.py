"""The worker protocol: how a job process loads a worker, runs one job and reports on it.

A worker is a function ``work(spec: dict, context: dict, progress) -> dict`` named as
``"module:function"``, with an optional warm-up hook ``warm(lane)`` (imports, one-off
detection) named the same way. Whatever runs jobs (a local child process, a Ray actor) loads
them in a :class:`WorkerProcess` and reports each job as messages:

- ``("progress", stage, fraction)`` while the worker runs (the fraction clamped to [0, 1]);
- then ``("result", data)``, or ``("error", code, message)`` with the canonical code name of
  :func:`greenprune.core.errors.code_name`.

The job runner reads these messages the same way from every backend.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable
from typing import Any

from greenprune.core.errors import GreenpruneError, code_name

Message = tuple[Any, ...]
Send = Callable[[Message], None]
Progress = Callable[[str, float], None]
PROGRESS, RESULT, ERROR = "progress", "result", "error"


def resolve(name: str) -> Callable[..., Any]:
    """Imports ``"module:function"`` and returns the function."""
    module_name, function_name = name.split(":")
    return getattr(importlib.import_module(module_name), function_name)


def error_message(exc: BaseException) -> Message:
    """The ``("error", code, message)`` of a failed job.

    A greenprune error's message says what is wrong already; any other exception is named by
    its type as well.
    """
    message = str(exc) if isinstance(exc, GreenpruneError) else f"{type(exc).__name__}: {exc}"
    return (ERROR, code_name(exc), message)


def progress_message(stage: str, fraction: float) -> Message:
    """The ``("progress", stage, fraction)`` of a worker's progress call."""
    return (PROGRESS, stage, min(max(float(fraction), 0.0), 1.0))


class WorkerProcess:
    """A worker and its warm-up hook, loaded in the process that runs its jobs.

    Loading never raises: a worker that cannot be imported or warmed fails the job it would
    have run, with that error's message.

    Args:
        worker: The worker function, ``"module:function"``.
        warm: The warm-up hook, ``"module:function"`` taking the lane, or None.
        lane: The lane this process serves.
    """

    def __init__(self, worker: str, warm: str | None, lane: str) -> None:
        self._work: Callable[..., Any] | None = None
        self._failure: Exception | None = None
        try:
            self._work = resolve(worker)
            if warm is not None:
                resolve(warm)(lane)
        except Exception as exc:  # noqa: BLE001 - reported with the job it would have run
            self._failure = exc

    def work(self, spec: dict[str, Any], context: dict[str, Any], progress: Progress) -> Any:
        """Calls the worker (a backend may add what it checks and notes around it)."""
        if self._failure is not None:
            raise self._failure
        assert self._work is not None
        return self._work(spec, context, progress)

    def run_job(self, spec: dict[str, Any], context: dict[str, Any], send: Send) -> None:
        """Runs one job, sending its progress and then its result or its error."""
        try:
            result = self.work(spec, context, lambda stage, f: send(progress_message(stage, f)))
        except Exception as exc:  # noqa: BLE001 - everything is reported to the runner
            traceback.print_exc(file=sys.stderr)
            send(error_message(exc))
        else:
            send((RESULT, result))
