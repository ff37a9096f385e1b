"""Which lm-eval task names exist: the local tasks at once, lm-eval's own on first need."""

from __future__ import annotations

import asyncio
import functools
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

from eval_service.tasks.safety import check_task_folder, check_task_root
from eval_service.tasks.sources import StoredSource, source_folders, store_task_source
from greenprune.core.errors import FailedPreconditionError, InvalidArgumentError


@functools.cache
def _names(
    paths: tuple[str, ...], include_defaults: bool, allow_code: bool | None = None
) -> frozenset[str]:
    from eval_service.tasks import task_manager

    manager = task_manager([Path(p) for p in paths], include_defaults, allow_code)
    return frozenset(manager.all_tasks)


def local_task_names(task_paths: Sequence[str], allow_code: bool | None = None) -> frozenset[str]:
    """Returns the local tasks plus those in ``task_paths`` (not lm-eval's own catalogue)."""
    return _names(tuple(sorted(str(Path(p).resolve()) for p in task_paths)), False, allow_code)


class TaskIndex:
    """Task names for validating requests without indexing lm-eval's catalogue on every call.

    lm-eval's own catalogue takes seconds to index, so it is indexed only when a request names
    a task that is not local, and then kept.
    """

    def __init__(
        self,
        roots: Sequence[Path] | None = None,
        allow_code: bool = False,
        sources_root: Path | None = None,
    ) -> None:
        self._lock = asyncio.Lock()
        self._roots = list(roots) if roots is not None else []
        self._allow_code = allow_code
        self._sources_root = sources_root

    async def store_source(
        self, files: Sequence[tuple[str, bytes]]
    ) -> tuple[StoredSource, list[str]]:
        """Checks and stores a task source sent as content; returns it with its task names."""
        root = self._require_sources_root()
        stored = await asyncio.to_thread(store_task_source, files, root, self._allow_code)
        names = await asyncio.to_thread(source_task_names, stored.folder)
        if not names:
            await asyncio.to_thread(shutil.rmtree, stored.folder, True)
            raise InvalidArgumentError(
                "task_source.files", "define no task lm-eval can index (no 'task:' entries)"
            )
        return stored, names

    def source_folders(self, names: Sequence[str]) -> list[Path]:
        """Returns the folders of stored task sources, refusing unknown names."""
        if not names:
            return []
        return source_folders(self._require_sources_root(), names)

    def _require_sources_root(self) -> Path:
        if self._sources_root is None:
            raise FailedPreconditionError("this EvalService keeps no task sources")
        return self._sources_root

    async def warm(self) -> None:
        """Indexes the local tasks."""
        await asyncio.to_thread(_names, (), False)

    async def manager_for(
        self, tasks: Sequence[str], task_paths: Sequence[str], sources: Sequence[Path] = ()
    ) -> SimpleNamespace:
        """Returns an object whose ``all_tasks`` holds every name the request may use.

        Args:
            tasks: The task names the request uses.
            task_paths: Server folders the request names (checked against the roots).
            sources: Folders of stored task sources (checked when they were stored).
        """
        checked = await asyncio.to_thread(self.check_folders, task_paths)
        checked += [str(folder) for folder in sources]
        names = await asyncio.to_thread(local_task_names, checked, self._allow_code)
        if not set(tasks) <= names:
            async with self._lock:
                names = names | await asyncio.to_thread(_names, (), True)
        return SimpleNamespace(all_tasks=sorted(names))

    def check_folders(self, task_paths: Sequence[str]) -> list[str]:
        """Returns the folders resolved, refusing any outside the roots or holding task code."""
        checked = []
        for index, path in enumerate(task_paths):
            field = f"spec.task_paths[{index}]"
            folder = check_task_root(field, path, self._roots)
            check_task_folder(field, folder, self._roots, self._allow_code)
            checked.append(str(folder))
        return checked


def source_task_names(folder: Path) -> list[str]:
    """Returns the task names a stored task source defines (beyond the local tasks)."""
    return sorted(local_task_names([str(folder)]) - local_task_names([]))
