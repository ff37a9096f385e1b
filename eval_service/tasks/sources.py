"""Task sources: folders of task YAML and data that clients send as content, never as paths.

A client's own tasks reach the EvalService as files (``CreateTaskSource``). They are checked,
written by content digest into the service's own folder (``{state}/task-sources/{digest}``) and
named ``taskSources/{digest}``; an EvalSpec lists such names in ``task_sources``. Before
anything is written:

- every path must be relative, inside the source, of a known data or YAML suffix;
- no path may be both a file and a folder;
- every YAML file, and every file one includes whatever its suffix, is read by the one safe
  loader (see :mod:`eval_service.tasks.safety`): no tags (unless the operator allows task code),
  aliases, repeated or merge keys; ``include:`` entries must stay inside;
- ``dataset_kwargs.data_files``/``data_dir`` must name files of the source: they are rewritten to
  absolute paths in the stored copy (lm-eval resolves them from the working directory);
  ``dataset_path`` must be a ``datasets`` builder (``json``, ...) or a hub id, never a server
  path, and ``dataset_kwargs`` may not name a cache folder, storage options or credentials.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from eval_service.tasks.safety import (
    ALLOW_CODE_ENV,
    YAML_SUFFIXES,
    TaskYaml,
    task_yaml_rules,
    walk_task_yaml,
)
from greenprune.core.errors import InvalidArgumentError, NotFoundError
from greenprune.core.file_read import RefusedFileError
from greenprune.core.limits import (
    MAX_TASK_SOURCE_BYTES,
    MAX_TASK_SOURCE_FILES,
    TASK_SOURCE_SUFFIXES,
    TASK_YAML_MAX_BYTES,
    check_text,
    quoted,
)

COLLECTION = "taskSources"
FOLDER_NAME = "task-sources"
DIGEST_CHARS = 32
_NAME = re.compile(rf"{COLLECTION}/([0-9a-f]{{{DIGEST_CHARS}}})")
_FIELD = "task_source.files"


@dataclass(frozen=True)
class StoredSource:
    """A task source in the service's folder.

    Attributes:
        name: ``taskSources/{digest}``.
        folder: Where its checked files lie.
    """

    name: str
    folder: Path


def _checked_path(index: int, path: str, allow_code: bool) -> PurePosixPath:
    field = f"{_FIELD}[{index}].path"
    if not path:
        raise InvalidArgumentError(field, "is empty")
    check_text(field, path)
    if "\\" in path:
        raise InvalidArgumentError(field, f"{quoted(path)} holds a backslash")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")):
        raise InvalidArgumentError(field, f"{quoted(path)} must be relative, without '.' or '..'")
    if any(part.startswith(".") for part in pure.parts):
        raise InvalidArgumentError(field, f"{quoted(path)} names a hidden file")
    suffixes = TASK_SOURCE_SUFFIXES | ({".py"} if allow_code else set())
    if pure.suffix.lower() not in suffixes:
        hint = "" if allow_code else f" (.py only where {ALLOW_CODE_ENV}=1)"
        raise InvalidArgumentError(
            field, f"{quoted(path)}: a task source holds {', '.join(sorted(suffixes))}{hint}"
        )
    return pure


def _checked_files(
    files: Sequence[tuple[str, bytes]], allow_code: bool
) -> list[tuple[PurePosixPath, bytes]]:
    if not files or len(files) > MAX_TASK_SOURCE_FILES:
        raise InvalidArgumentError(_FIELD, f"send 1 to {MAX_TASK_SOURCE_FILES} files")
    total = sum(len(content) for _, content in files)
    if total > MAX_TASK_SOURCE_BYTES:
        raise InvalidArgumentError(
            _FIELD, f"hold {total} bytes together (at most {MAX_TASK_SOURCE_BYTES})"
        )
    checked: list[tuple[PurePosixPath, bytes]] = []
    seen: set[str] = set()
    for index, (path, content) in enumerate(files):
        pure = _checked_path(index, path, allow_code)
        if pure.as_posix().lower() in seen:
            raise InvalidArgumentError(f"{_FIELD}[{index}].path", f"{quoted(path)} is sent twice")
        seen.add(pure.as_posix().lower())
        if pure.suffix.lower() in YAML_SUFFIXES and len(content) > TASK_YAML_MAX_BYTES:
            raise InvalidArgumentError(
                f"{_FIELD}[{index}]",
                f"{pure.as_posix()}: is {len(content)} bytes, larger than the"
                f" {TASK_YAML_MAX_BYTES} allowed for task YAML",
            )
        checked.append((pure, content))
    folders = {parent.as_posix().lower() for p, _ in checked for parent in p.parents}
    for index, (pure, _) in enumerate(checked):
        if pure.as_posix().lower() in folders:
            raise InvalidArgumentError(
                f"{_FIELD}[{index}].path",
                f"{quoted(pure.as_posix())} is both a file and a folder of the source",
            )
    if not any(p.suffix.lower() in YAML_SUFFIXES for p, _ in checked):
        raise InvalidArgumentError(_FIELD, "hold no task YAML (.yaml or .yml)")
    return sorted(checked)


def _digest(files: Sequence[tuple[PurePosixPath, bytes]], allow_code: bool) -> str:
    digest = hashlib.sha256(b"code" if allow_code else b"safe")
    for path, content in files:
        encoded = path.as_posix().encode()
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
        digest.update(len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()[:DIGEST_CHARS]


def _mapping_value(node: yaml.Node | None, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The (key, value) nodes of ``key`` in a mapping (keys are unique: the loader says so)."""
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def _scalars(node: yaml.Node) -> list[yaml.ScalarNode]:
    if isinstance(node, yaml.ScalarNode):
        return [node]
    if isinstance(node, yaml.SequenceNode):
        return [s for item in node.value for s in _scalars(item)]
    if isinstance(node, yaml.MappingNode):
        return [s for _, value in node.value for s in _scalars(value)]
    return []


_STR_TAG = "tag:yaml.org,2002:str"
_HUB_DATASET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?")
_REFUSED_DATASET_KWARGS = frozenset(
    {"cache_dir", "storage_options", "download_config", "token", "use_auth_token", "revision"}
)
"""``dataset_kwargs`` that reach server paths, the network or credentials."""


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _check_names(task: TaskYaml) -> None:
    """Refuses task and group names that are not text or that shadow greenprune's own tasks."""
    from eval_service.tasks import LOCAL_TASKS, SUITE

    for key in ("task", "group"):
        found = _mapping_value(task.loaded.node, key)
        if found is None or not isinstance(found[1], yaml.ScalarNode):
            continue
        value = found[1]
        if value.tag != _STR_TAG or not value.value:
            raise RefusedFileError(
                task.name, f"its {key} name {quoted(value.value)} is not text", _line(value)
            )
        try:
            check_text(key, value.value)
        except InvalidArgumentError as exc:
            raise RefusedFileError(task.name, exc.message, _line(value), key) from None
        if value.value in (*LOCAL_TASKS, SUITE):
            raise RefusedFileError(
                task.name,
                f"its {key} {value.value!r} would replace greenprune's own; rename it",
                _line(value),
            )


def _packaged_builders() -> frozenset[str]:
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    return frozenset(_PACKAGED_DATASETS_MODULES)


def _check_dataset(task: TaskYaml) -> None:
    """Refuses a ``dataset_path`` or ``dataset_kwargs`` that reaches beyond the source's files.

    ``datasets`` loads a ``dataset_path`` that names a folder (relative to the worker's working
    directory) from that folder, so only its packaged builders (``json``, ``csv``, ...) and hub
    ids that name no server path are accepted.
    """
    found = _mapping_value(task.loaded.node, "dataset_path")
    if found is not None:
        value = found[1]
        text = value.value if isinstance(value, yaml.ScalarNode) else None
        if not isinstance(text, str) or value.tag != _STR_TAG:
            raise RefusedFileError(task.name, "dataset_path must be text", _line(value))
        if text not in _packaged_builders() and (
            not _HUB_DATASET.fullmatch(text) or os.path.lexists(text)
        ):
            raise RefusedFileError(
                task.name,
                f"dataset_path {quoted(text)} is a server path; send the data as files",
                _line(value),
            )
    kwargs = _mapping_value(task.loaded.node, "dataset_kwargs")
    if kwargs is not None and isinstance(kwargs[1], yaml.MappingNode):
        for key, _ in kwargs[1].value:
            if key.value in _REFUSED_DATASET_KWARGS:
                raise RefusedFileError(
                    task.name,
                    f"dataset_kwargs.{key.value} reaches server paths or the network",
                    _line(key),
                )


def _rewrite_data_paths(task: TaskYaml, folder: Path, final: Path) -> str | None:
    """Returns the YAML with its data paths absolute (None: nothing to rewrite).

    The paths are checked against ``folder``, where the files are now, and written as they will
    be under ``final``, where the folder is moved once checked.
    """
    kwargs = _mapping_value(task.loaded.node, "dataset_kwargs")
    targets = (
        [
            scalar
            for key in ("data_files", "data_dir")
            if (found := _mapping_value(kwargs[1], key)) is not None
            for scalar in _scalars(found[1])
        ]
        if kwargs is not None
        else []
    )
    if not targets:
        return None
    for scalar in targets:
        value = scalar.value
        if "\x00" in value:
            raise RefusedFileError(task.name, "a data path holds a NUL character", _line(scalar))
        try:
            target = (task.path.parent / value).resolve()
        except (OSError, RuntimeError, ValueError):
            target = None
        if target is None or not target.is_relative_to(folder):
            raise RefusedFileError(
                task.name,
                f"data path {quoted(value)} is not a file of the task source",
                _line(scalar),
            )
        if not target.exists():
            raise RefusedFileError(
                task.name,
                f"data path {quoted(value)} names no file of the task source",
                _line(scalar),
            )
        scalar.value, scalar.style = str(final / target.relative_to(folder)), None
    assert task.loaded.node is not None
    return yaml.serialize(task.loaded.node, Dumper=yaml.SafeDumper)


def _write(
    staging: Path,
    final: Path,
    files: Sequence[tuple[PurePosixPath, bytes]],
    allow_code: bool,
    index_of: dict[str, int],
) -> None:
    for path, content in files:
        target = staging / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)

    def visit(task: TaskYaml) -> None:
        _check_names(task)
        _check_dataset(task)
        rewritten = _rewrite_data_paths(task, staging, final)
        if rewritten is not None:
            task.path.write_text(rewritten, encoding="utf-8")

    try:
        walk_task_yaml(staging, (staging,), task_yaml_rules(allow_code, allow_aliases=False), visit)
    except RefusedFileError as exc:
        index = index_of.get(exc.name)
        field = f"{_FIELD}[{index}]" if index is not None else _FIELD
        raise InvalidArgumentError(field, str(exc)) from None


def store_task_source(
    files: Sequence[tuple[str, bytes]], root: Path, allow_code: bool = False
) -> StoredSource:
    """Checks a task source and writes it (once per content) under ``root``.

    Args:
        files: ``(path, content)`` pairs; paths are relative, with ``/`` separators.
        root: The service's folder of task sources.
        allow_code: Whether the operator allows task YAML that imports Python.

    Returns:
        The stored source.

    Raises:
        InvalidArgumentError: Naming the file and what is wrong with it.
    """
    checked = _checked_files(files, allow_code)
    digest = _digest(checked, allow_code)
    stored = StoredSource(f"{COLLECTION}/{digest}", root / digest)
    if stored.folder.is_dir():
        return stored
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root)).resolve()
    try:
        index_of = {path: index for index, (path, _) in enumerate(files)}
        _write(staging, stored.folder.resolve(), checked, allow_code, index_of)
        os.rename(staging, stored.folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if stored.folder.is_dir():
            return stored
        raise
    return stored


def source_folders(root: Path, names: Sequence[str]) -> list[Path]:
    """Returns the folders of the stored sources an EvalSpec's ``task_sources`` names."""
    return [
        source_folder(root, name, f"spec.task_sources[{index}]") for index, name in enumerate(names)
    ]


def source_folder(root: Path, name: str, field: str) -> Path:
    """Returns the folder of a stored source, or refuses a malformed or unknown name."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise InvalidArgumentError(
            field, f"{quoted(name)} is not a task source name ('{COLLECTION}/{{digest}}')"
        )
    folder = root / match.group(1)
    if not folder.is_dir():
        raise NotFoundError(f"{field}: task source {name!r} is not stored; send it again")
    return folder
