"""Which lm-eval task names exist: the local tasks at once, lm-eval's own on first need."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

from greenprune.core.errors import InvalidArgumentError


@functools.cache
def _names(paths: tuple[str, ...], include_defaults: bool) -> frozenset[str]:
    from eval_service.tasks import task_manager

    manager = task_manager([Path(p) for p in paths], include_defaults=include_defaults)
    return frozenset(manager.all_tasks)


def local_task_names(task_paths: Sequence[str]) -> frozenset[str]:
    """Returns the local tasks plus those in ``task_paths`` (not lm-eval's own catalogue)."""
    return _names(tuple(sorted(str(Path(p).resolve()) for p in task_paths)), False)


class TaskIndex:
    """Task names for validating requests without indexing lm-eval's catalogue on every call.

    lm-eval's own catalogue takes seconds to index, so it is indexed only when a request names
    a task that is not local, and then kept.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def warm(self) -> None:
        """Indexes the local tasks."""
        await asyncio.to_thread(_names, (), False)

    async def manager_for(self, tasks: Sequence[str], task_paths: Sequence[str]) -> SimpleNamespace:
        """Returns an object whose ``all_tasks`` holds every name the request may use."""
        for index, path in enumerate(task_paths):
            if not Path(path).is_dir():
                raise InvalidArgumentError(f"spec.task_paths[{index}]", f"{path!r} is not a folder")
        names = await asyncio.to_thread(local_task_names, task_paths)
        if not set(tasks) <= names:
            async with self._lock:
                names = names | await asyncio.to_thread(_names, (), True)
        return SimpleNamespace(all_tasks=sorted(names))
