"""Task sources: folders of task YAML and data that clients send as content, never as paths.

A client's own tasks reach the EvalService as files (``CreateTaskSource``). They are checked,
written by content digest into the service's own folder (``{state}/task-sources/{digest}``) and
named ``taskSources/{digest}``; an EvalSpec lists such names in ``task_sources``. Before
anything is written:

- every path must be relative, inside the source, of a known data or YAML suffix;
- the YAML must not import Python (see :mod:`eval_service.tasks.safety`) unless the operator
  allows task code, must not use aliases, and its ``include:`` entries must stay inside;
- ``dataset_kwargs.data_files``/``data_dir`` must name files of the source: they are rewritten to
  absolute paths in the stored copy (lm-eval resolves them from the working directory), and
  ``dataset_path`` may not be a server path.
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

from eval_service.tasks.safety import ALLOW_CODE_ENV, check_task_folder, scan_yaml
from greenprune.core.errors import InvalidArgumentError, NotFoundError
from greenprune.core.limits import (
    MAX_TASK_SOURCE_BYTES,
    MAX_TASK_SOURCE_FILES,
    TASK_SOURCE_SUFFIXES,
    check_text,
    quoted,
)

COLLECTION = "taskSources"
FOLDER_NAME = "task-sources"
DIGEST_CHARS = 32
_NAME = re.compile(rf"{COLLECTION}/([0-9a-f]{{{DIGEST_CHARS}}})")
_YAML_SUFFIXES = frozenset({".yaml", ".yml"})
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
        checked.append((pure, content))
    if not any(p.suffix.lower() in _YAML_SUFFIXES for p, _ in checked):
        raise InvalidArgumentError(_FIELD, "hold no task YAML (.yaml or .yml)")
    return sorted(checked)


def _digest(files: Sequence[tuple[PurePosixPath, bytes]], allow_code: bool) -> str:
    digest = hashlib.sha256(b"code" if allow_code else b"safe")
    for path, content in files:
        encoded = path.as_posix().encode()
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
        digest.update(len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()[:DIGEST_CHARS]


def _mapping_value(node: yaml.Node, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value_node
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


def _check_names(field: str, node: yaml.Node | None) -> None:
    """Refuses task and group names that are not text or that shadow greenprune's own tasks."""
    from eval_service.tasks import LOCAL_TASKS, SUITE

    for key in ("task", "group"):
        value = _mapping_value(node, key) if node is not None else None
        if not isinstance(value, yaml.ScalarNode):
            continue
        if value.tag != _STR_TAG or not value.value:
            raise InvalidArgumentError(field, f"its {key} name {quoted(value.value)} is not text")
        check_text(f"{field}.{key}", value.value)
        if value.value in (*LOCAL_TASKS, SUITE):
            raise InvalidArgumentError(
                field, f"its {key} {value.value!r} would replace greenprune's own; rename it"
            )


def _check_dataset_path(field: str, node: yaml.Node | None) -> None:
    """Refuses a ``dataset_path`` that names a server folder instead of a dataset."""
    dataset_path = _mapping_value(node, "dataset_path") if node is not None else None
    if isinstance(dataset_path, yaml.ScalarNode):
        value = dataset_path.value
        if value.startswith(("/", "~", ".")) or ".." in value.split("/"):
            raise InvalidArgumentError(
                field, f"dataset_path {quoted(value)} is a server path; send the data as files"
            )


def _rewrite_data_paths(
    field: str, node: yaml.Node | None, yaml_dir: Path, folder: Path, final: Path
) -> str | None:
    """Returns the YAML with its data paths absolute (None: nothing to rewrite).

    The paths are checked against ``folder``, where the files are now, and written as they will
    be under ``final``, where the folder is moved once checked.
    """
    kwargs = _mapping_value(node, "dataset_kwargs") if node is not None else None
    targets = (
        [
            scalar
            for key in ("data_files", "data_dir")
            if (value := _mapping_value(kwargs, key)) is not None
            for scalar in _scalars(value)
        ]
        if kwargs is not None
        else []
    )
    if not targets:
        return None
    for scalar in targets:
        target = (yaml_dir / scalar.value).resolve()
        if not target.is_relative_to(folder) or "\x00" in scalar.value:
            raise InvalidArgumentError(
                field, f"data path {quoted(scalar.value)} is not a file of the task source"
            )
        if not target.exists():
            raise InvalidArgumentError(
                field, f"data path {quoted(scalar.value)} names no file of the task source"
            )
        scalar.value, scalar.style = str(final / target.relative_to(folder)), None
    return yaml.serialize(node, Dumper=yaml.SafeDumper)


def _write(
    staging: Path, final: Path, files: Sequence[tuple[PurePosixPath, bytes]], allow_code: bool
) -> None:
    for path, content in files:
        target = staging / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    for index, (path, content) in enumerate(files):
        if path.suffix.lower() not in _YAML_SUFFIXES:
            continue
        field = f"{_FIELD}[{index}]"
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgumentError(field, f"{path.as_posix()} is not UTF-8 text") from exc
        try:
            scan_yaml(field, path.as_posix(), text, allow_code, allow_aliases=False)
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            _check_names(field, node)
            _check_dataset_path(field, node)
            rewritten = _rewrite_data_paths(field, node, (staging / path).parent, staging, final)
        except yaml.YAMLError as exc:
            raise InvalidArgumentError(
                field, f"{path.as_posix()} is not valid YAML: {str(exc)[:200]}"
            ) from exc
        if rewritten is not None:
            (staging / path).write_text(rewritten, encoding="utf-8")
    check_task_folder(_FIELD, staging, (staging,), allow_code)


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
        _write(staging, stored.folder.resolve(), checked, allow_code)
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
