"""Checks on task folders a request names, before lm-eval ever reads them.

lm-eval's task YAML can import Python: ``!function module.name`` entries (a tag, which a
``%TAG`` directive can respell as ``!!function`` or anything else) and ``class:`` keys load a
``.py`` file and run it in the eval worker. A client that can name a server folder could
therefore run code there, so the EvalService

- accepts only folders under its configured task roots (``GREENPRUNE_EVAL_TASK_ROOTS``), after
  resolving symlinks and ``..``;
- reads every task YAML of the folder, and every file they include whatever its suffix, with
  the one safe loader (:func:`greenprune.core.safe_yaml.load_yaml`): no tags of any spelling
  unless the operator sets ``GREENPRUNE_EVAL_ALLOW_TASK_CODE``, no repeated keys, no merge
  keys, bounded size (checked before parsing), depth and node count; ``class:`` keys are
  refused unless task code is allowed;
- refuses ``include:`` entries and YAML files that lead outside the roots;
- bounds the number of YAML files it reads.

lm-eval's own installed tasks are not affected.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprune.core.errors import InvalidArgumentError
from greenprune.core.file_read import RefusedFileError, read_regular_file
from greenprune.core.limits import (
    MAX_TEXT_CHARS,
    TASK_YAML_MAX_BYTES,
    TASK_YAML_MAX_DEPTH,
    TASK_YAML_MAX_FILES,
    TASK_YAML_MAX_NODES,
    check_text,
    quoted,
)
from greenprune.core.safe_yaml import LoadedYaml, YamlRules, load_yaml

ALLOW_CODE_ENV = "GREENPRUNE_EVAL_ALLOW_TASK_CODE"
YAML_SUFFIXES = frozenset({".yaml", ".yml"})
_CODE_KEYS = frozenset({"class"})
_CODE_HINT = f"; set {ALLOW_CODE_ENV}=1 on the EvalService to allow task code"


def code_allowed_by_env() -> bool:
    """Whether the operator enabled task code through ``GREENPRUNE_EVAL_ALLOW_TASK_CODE``."""
    return os.environ.get(ALLOW_CODE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def task_yaml_rules(allow_code: bool, allow_aliases: bool = True) -> YamlRules:
    """The loader's rules for task YAML; tags (lm-eval's ``!function``) only with task code."""
    return YamlRules(
        max_bytes=TASK_YAML_MAX_BYTES,
        max_depth=TASK_YAML_MAX_DEPTH,
        max_nodes=TASK_YAML_MAX_NODES,
        allow_tags=allow_code,
        allow_aliases=allow_aliases,
        tag_hint=f" (a tag can import Python){_CODE_HINT}",
    )


def _inside(path: Path, roots: Iterable[Path]) -> Path | None:
    for root in roots:
        if path == root or path.is_relative_to(root):
            return root
    return None


def check_task_root(field: str, path: str, roots: Sequence[Path]) -> Path:
    """Returns ``path`` resolved, or refuses it when it is not a folder under one of ``roots``."""
    check_text(field, path, MAX_TEXT_CHARS)  # bounded before any path work
    resolved_roots = [Path(r).expanduser().resolve() for r in roots]
    if not resolved_roots:
        raise InvalidArgumentError(
            field, "this EvalService accepts no task folders (GREENPRUNE_EVAL_TASK_ROOTS is empty)"
        )
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise InvalidArgumentError(field, f"{quoted(path)} is not a usable path") from exc
    if _inside(resolved, resolved_roots) is None:
        allowed = ", ".join(str(r) for r in resolved_roots)
        raise InvalidArgumentError(
            field, f"{quoted(path)} is outside the task roots of this EvalService ({allowed})"
        )
    try:
        is_dir = resolved.is_dir()
    except (OSError, ValueError):
        is_dir = False
    if not is_dir:
        raise InvalidArgumentError(field, f"{quoted(path)} is not a folder")
    return resolved


@dataclass(frozen=True)
class TaskYaml:
    """One task YAML file (or included file) as the walk loaded it.

    Attributes:
        path: The file, resolved.
        name: How messages name it: its path inside the folder walked.
        loaded: The checked document.
    """

    path: Path
    name: str
    loaded: LoadedYaml


def _yaml_files(folder: Path) -> Iterator[Path]:
    """The YAML files under ``folder`` (lm-eval indexes ``**/*.yaml``; ``.yml`` is checked too)."""
    return itertools.chain.from_iterable(folder.glob(f"**/*{s}") for s in sorted(YAML_SUFFIXES))


def walk_task_yaml(
    folder: Path,
    roots: Sequence[Path],
    rules: YamlRules,
    visit: Callable[[TaskYaml], None] | None = None,
) -> None:
    """Loads, once each, every YAML file of ``folder`` and every file they include.

    An included file is read as YAML whatever its suffix (lm-eval does), so ``include: x.txt``
    meets the same checks as a ``.yaml``.

    Args:
        folder: The folder, resolved.
        roots: Every file read and every ``include:`` target must resolve under one of these.
        rules: The loader's rules.
        visit: Called with each loaded file, for the caller's own checks.

    Raises:
        RefusedFileError: Naming the file, the line where known, and the rule.
    """
    resolved_roots = [Path(r).expanduser().resolve() for r in roots] or [folder]
    pending: list[tuple[Path, str]] = []
    for path in itertools.islice(_yaml_files(folder), TASK_YAML_MAX_FILES + 1):
        pending.append((path, path.relative_to(folder).as_posix()))
    if len(pending) > TASK_YAML_MAX_FILES:
        raise RefusedFileError(folder.name, f"holds more than {TASK_YAML_MAX_FILES} YAML files")
    pending.reverse()
    seen: set[Path] = set()
    while pending:
        path, name = pending.pop()
        real = path.resolve()
        if _inside(real, resolved_roots) is None:
            raise RefusedFileError(name, "leads outside the task roots (a symbolic link)")
        if real in seen:
            continue
        seen.add(real)
        if len(seen) > TASK_YAML_MAX_FILES:
            raise RefusedFileError(name, f"makes more than {TASK_YAML_MAX_FILES} YAML files")
        content, _ = read_regular_file(real, TASK_YAML_MAX_BYTES, name=name)
        loaded = load_yaml(content, name, rules)
        if not rules.allow_tags:
            _refuse_code_keys(name, loaded.data)
        task_yaml = TaskYaml(real, name, loaded)
        if visit is not None:
            visit(task_yaml)
        for include in _includes(task_yaml):
            target = (real.parent / include).resolve()
            if _inside(target, resolved_roots) is None:
                raise RefusedFileError(
                    name, f"includes {quoted(include)}, outside the task roots", _line(loaded)
                )
            if target.exists() or target.is_symlink():
                pending.append((target, _name_in(target, folder)))


def _name_in(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)


def _line(loaded: LoadedYaml, key: str | None = None) -> int | None:
    node = loaded.node
    if node is None:
        return None
    if key is not None:
        for key_node, _ in getattr(node, "value", []):
            if getattr(key_node, "value", None) == key:
                return key_node.start_mark.line + 1
    return node.start_mark.line + 1


def _includes(task_yaml: TaskYaml) -> list[str]:
    """The files a task YAML includes (lm-eval reads the top-level ``include:`` only)."""
    data = task_yaml.loaded.data
    if not isinstance(data, dict) or "include" not in data:
        return []
    value = data["include"]
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) and v and "\x00" not in v for v in values):
        raise RefusedFileError(
            task_yaml.name,
            "include: must name a file or a list of files",
            _line(task_yaml.loaded, "include"),
        )
    return values


def _refuse_code_keys(name: str, data: Any) -> None:
    """Refuses ``class:`` keys (lm-eval imports the class they name) anywhere in ``data``."""
    pending, visited = [data], set()
    while pending:
        value = pending.pop()
        if id(value) in visited:
            continue
        visited.add(id(value))
        if isinstance(value, dict):
            for key, item in value.items():
                if key in _CODE_KEYS:
                    raise RefusedFileError(
                        name, f"has a {key!r} entry, which imports Python{_CODE_HINT}"
                    )
                pending.append(item)
        elif isinstance(value, list):
            pending.extend(value)


def check_task_folder(field: str, folder: Path, roots: Sequence[Path], allow_code: bool) -> None:
    """Refuses a task folder whose YAML would import Python or include files outside the roots.

    Args:
        field: The request field named in errors, e.g. ``spec.task_paths[0]``.
        folder: The folder, already resolved (see :func:`check_task_root`).
        roots: The task roots; files and ``include:`` targets must stay under them. Empty:
            under ``folder``.
        allow_code: Whether the operator allows ``!function`` and ``class:``.
    """
    try:
        walk_task_yaml(folder, roots, task_yaml_rules(allow_code))
    except RefusedFileError as exc:
        raise InvalidArgumentError(field, str(exc)) from None
