"""The interface between the job runner and what runs its jobs.

The runner keeps the table, the states, progress, Watch, cancel and reporting; a backend only
runs each job's work in a process of its own, loaded through the worker protocol
(:mod:`greenprune.core.jobs.protocol`), and hands back the job's messages. Two backends
implement it: local child processes (:mod:`.local_backend`, the default) and Ray actors
(:mod:`.ray_backend`).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any

from greenprune.core.jobs.protocol import Message


class Execution(abc.ABC):
    """One job running on a backend."""

    @abc.abstractmethod
    def messages(self) -> AsyncIterator[Message]:
        """The job's messages; they end when its process ends, with or without an outcome."""

    @abc.abstractmethod
    async def close(self, reusable: bool) -> None:
        """After the messages: lets the process end, or keeps a ``reusable`` one for reuse.

        ``reusable``: the job returned a result and was not cancelled.
        """

    @abc.abstractmethod
    def death(self) -> str:
        """Why the job ended without a result or an error, in words (for its error)."""

    @abc.abstractmethod
    async def kill(self) -> None:
        """Ends the job's process at once (cancel)."""


class Backend(abc.ABC):
    """Runs jobs, one process each, for a :class:`~greenprune.core.jobs.runner.JobRunner`."""

    @abc.abstractmethod
    def bind(self, worker: str, warm: str | None, warm_lanes: tuple[str, ...]) -> None:
        """Sets the worker, its warm-up hook and the lanes that keep a warmed process idle."""

    @abc.abstractmethod
    async def start(self, warm_timeout: float) -> None:
        """Connects, and warms the warm lanes' processes (waiting up to ``warm_timeout`` s)."""

    def check(self, lane: str) -> None:  # noqa: B027 - most backends can serve every lane
        """Refuses a job of ``lane`` that could never run here (raises a GreenpruneError)."""

    @abc.abstractmethod
    def concurrency(self, lane: str) -> int:
        """The most jobs of ``lane`` running at once."""

    @abc.abstractmethod
    def launch(self, lane: str, spec: dict[str, Any], context: dict[str, Any]) -> Execution:
        """Starts a job: a warmed process of ``lane`` when there is one, else a new one."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stops warming and ends every process it started, at once."""

    @abc.abstractmethod
    async def close(self) -> None:
        """After :meth:`stop`: waits for the processes to end and disconnects."""
