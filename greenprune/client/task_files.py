"""The client side of task sources: a local folder of task YAML and data, read as content.

The EvalService never reads a client's paths: the runner sends each folder's files with
``CreateTaskSource`` and names the stored source in every EvalSpec's ``task_sources``.
"""

from __future__ import annotations

from pathlib import Path

from greenprune.api.eval.v1 import eval_pb2
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import (
    MAX_TASK_SOURCE_BYTES,
    MAX_TASK_SOURCE_FILES,
    TASK_SOURCE_SUFFIXES,
)


def read_task_folder(folder: Path, field: str = "eval.task_paths") -> eval_pb2.TaskSource:
    """Returns a folder's task files as a TaskSource to send.

    Hidden files and files of other suffixes than :data:`TASK_SOURCE_SUFFIXES` (``.py`` among
    them) are left out; the EvalService refuses YAML that imports Python anyway.

    Args:
        folder: The folder, resolved.
        field: The experiment-file field named in errors.

    Raises:
        InvalidArgumentError: The folder is missing, holds no YAML, or is over the limits.
    """
    if not folder.is_dir():
        raise InvalidArgumentError(field, f"{folder} is not a folder")
    paths = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in TASK_SOURCE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not any(p.suffix.lower() in {".yaml", ".yml"} for p in paths):
        raise InvalidArgumentError(field, f"{folder} holds no task YAML (.yaml or .yml)")
    if len(paths) > MAX_TASK_SOURCE_FILES:
        raise InvalidArgumentError(
            field, f"{folder} holds {len(paths)} task files (at most {MAX_TASK_SOURCE_FILES})"
        )
    total = sum(p.stat().st_size for p in paths)
    if total > MAX_TASK_SOURCE_BYTES:
        raise InvalidArgumentError(
            field, f"{folder} holds {total} bytes of task files (at most {MAX_TASK_SOURCE_BYTES})"
        )
    source = eval_pb2.TaskSource()
    for path in paths:
        source.files.add(path=path.relative_to(folder).as_posix(), content=path.read_bytes())
    return source
