"""The client side of task sources: a local folder of task YAML and data, read as content.

The EvalService never reads a client's paths: the runner sends each folder's files with
``CreateTaskSource`` and names the stored source in every EvalSpec's ``task_sources``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from greenprune.api.eval.v1 import eval_pb2
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.file_read import RefusedFileError, describe_kind, read_regular_file
from greenprune.core.limits import (
    MAX_TASK_SOURCE_BYTES,
    MAX_TASK_SOURCE_FILES,
    TASK_FOLDER_MAX_ENTRIES,
    TASK_SOURCE_SUFFIXES,
)


def read_task_folder(folder: Path, field: str = "eval.task_paths") -> eval_pb2.TaskSource:
    """Returns a folder's task files as a TaskSource to send.

    Hidden files and files of other suffixes than :data:`TASK_SOURCE_SUFFIXES` (``.py`` among
    them) are left out; the EvalService refuses YAML that imports Python anyway. The walk never
    leaves the folder: linked folders are not entered, a linked file that leads outside is
    refused, and so are FIFOs and devices; it stops as soon as the folder holds more files or
    bytes than a source may, before reading any.

    Args:
        folder: The folder, resolved.
        field: The experiment-file field named in errors.

    Raises:
        InvalidArgumentError: The folder is missing, holds no YAML, a link out of it or a
            special file, or is over the limits.
    """
    if not folder.is_dir():
        raise InvalidArgumentError(field, f"{folder} is not a folder")
    found: list[tuple[Path, int]] = []
    total = 0
    for path in _walk(folder, field):
        status = path.lstat()
        if stat.S_ISLNK(status.st_mode):
            target = path.resolve()
            if not target.is_relative_to(folder):
                raise InvalidArgumentError(
                    field, f"{path} is a symbolic link that leads outside {folder}"
                )
            status = target.stat()
        kind = describe_kind(status.st_mode)
        if kind is not None:
            raise InvalidArgumentError(field, f"{path} is {kind}, not a regular file")
        found.append((path, status.st_size))
        total += status.st_size
        if len(found) > MAX_TASK_SOURCE_FILES:
            raise InvalidArgumentError(
                field, f"{folder} holds more than {MAX_TASK_SOURCE_FILES} task files"
            )
        if total > MAX_TASK_SOURCE_BYTES:
            raise InvalidArgumentError(
                field, f"{folder} holds more than {MAX_TASK_SOURCE_BYTES} bytes of task files"
            )
    if not any(p.suffix.lower() in {".yaml", ".yml"} for p, _ in found):
        raise InvalidArgumentError(field, f"{folder} holds no task YAML (.yaml or .yml)")
    source = eval_pb2.TaskSource()
    for path, size in sorted(found):
        try:
            content, _ = read_regular_file(path.resolve(), size, name=str(path))
        except RefusedFileError as exc:
            raise InvalidArgumentError(field, str(exc)) from None
        source.files.add(path=path.relative_to(folder).as_posix(), content=content)
    return source


def _walk(folder: Path, field: str) -> Iterator[Path]:
    """The candidate task files under ``folder``: not hidden, of a task suffix.

    Linked folders are never entered; linked files are yielded as links, for the caller.
    """
    entries = 0
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(current)
        for name in [*dirs, *files]:
            entries += 1
            if entries > TASK_FOLDER_MAX_ENTRIES:
                raise InvalidArgumentError(
                    field, f"{folder} holds more than {TASK_FOLDER_MAX_ENTRIES} files and folders"
                )
            path = base / name
            if name in dirs and not path.is_symlink():
                continue
            if not name.startswith(".") and path.suffix.lower() in TASK_SOURCE_SUFFIXES:
                yield path
