"""Checks on task folders a request names, before lm-eval ever reads them.

lm-eval's task YAML can import Python: ``!function module.name`` entries and ``class:`` keys
load a ``.py`` file next to the YAML and run it in the eval worker. A client that can name a
server folder could therefore run code there, so the EvalService

- accepts only folders under its configured task roots (``GREENPRUNE_EVAL_TASK_ROOTS``), after
  resolving symlinks and ``..``;
- refuses YAML that would import Python (any ``!function`` or other local tag, ``!!python``
  tags, ``class:`` keys) unless the operator sets ``GREENPRUNE_EVAL_ALLOW_TASK_CODE``;
- follows ``include:`` entries and refuses those that leave the root;
- bounds the number and size of YAML files it reads.

The YAML is only *scanned* (tokens, never constructed), so aliases, tags and deep nesting cost
nothing here. lm-eval's own installed tasks are not affected.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import quoted

ALLOW_CODE_ENV = "GREENPRUNE_EVAL_ALLOW_TASK_CODE"
MAX_YAML_FILES = 2000
MAX_YAML_BYTES = 1 << 20
_CODE_KEYS = frozenset({"class"})


def code_allowed_by_env() -> bool:
    """Whether the operator enabled task code through ``GREENPRUNE_EVAL_ALLOW_TASK_CODE``."""
    return os.environ.get(ALLOW_CODE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _inside(path: Path, roots: Iterable[Path]) -> Path | None:
    for root in roots:
        if path == root or path.is_relative_to(root):
            return root
    return None


def check_task_root(field: str, path: str, roots: Sequence[Path]) -> Path:
    """Returns ``path`` resolved, or refuses it when it is not a folder under one of ``roots``."""
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


def scan_yaml(
    field: str, name: str, text: str, allow_code: bool, allow_aliases: bool = True
) -> list[str]:
    """Returns the ``include:`` values of one YAML text, refusing code unless allowed.

    Args:
        field: The request field named in errors.
        name: The file's name, quoted in errors.
        text: The YAML.
        allow_code: Whether tags and ``class:`` keys that import Python are allowed.
        allow_aliases: Whether anchors and aliases are allowed (refused in uploaded sources).
    """
    includes: list[str] = []
    previous: yaml.Token | None = None
    key_name: str | None = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.TagToken) and not allow_code:
                handle, suffix = token.value
                if handle != "!!" or suffix.startswith("python"):
                    raise InvalidArgumentError(
                        field,
                        f"{name} uses the tag {(handle or '') + suffix!r}, which imports"
                        f" Python; set {ALLOW_CODE_ENV}=1 on the EvalService to allow task code",
                    )
            if not allow_aliases and isinstance(token, yaml.AliasToken | yaml.AnchorToken):
                raise InvalidArgumentError(field, f"{name} uses YAML anchors or aliases")
            if isinstance(token, yaml.ScalarToken) and isinstance(previous, yaml.KeyToken):
                key_name = token.value
                if key_name in _CODE_KEYS and not allow_code:
                    raise InvalidArgumentError(
                        field,
                        f"{name} has a {key_name!r} entry, which imports Python; set"
                        f" {ALLOW_CODE_ENV}=1 on the EvalService to allow task code",
                    )
            elif isinstance(token, yaml.ScalarToken) and key_name == "include":
                includes.append(token.value)
            elif isinstance(token, yaml.KeyToken):
                key_name = None
            previous = token
    except yaml.YAMLError as exc:
        raise InvalidArgumentError(field, f"{name} is not valid YAML: {str(exc)[:200]}") from exc
    return includes


def _read(path: Path, field: str) -> str:
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise InvalidArgumentError(field, f"{path.name} is larger than {MAX_YAML_BYTES} bytes")
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(field, f"{path.name} is not UTF-8 text") from exc
    except OSError as exc:
        raise InvalidArgumentError(field, f"{path.name} cannot be read: {exc.strerror}") from exc


def check_task_folder(field: str, folder: Path, roots: Sequence[Path], allow_code: bool) -> None:
    """Refuses a task folder whose YAML would import Python or include files outside the roots.

    Args:
        field: The request field named in errors, e.g. ``spec.task_paths[0]``.
        folder: The folder, already resolved (see :func:`check_task_root`).
        roots: The task roots; ``include:`` targets must stay under them. Empty: under
            ``folder``.
        allow_code: Whether the operator allows ``!function`` and ``class:``.
    """
    resolved_roots = [Path(r).expanduser().resolve() for r in roots] or [folder]
    pending = sorted(folder.glob("**/*.yaml"))
    if len(pending) > MAX_YAML_FILES:
        raise InvalidArgumentError(field, f"holds more than {MAX_YAML_FILES} YAML files")
    seen: set[Path] = set()
    while pending:
        path = pending.pop()
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        if len(seen) > MAX_YAML_FILES:
            raise InvalidArgumentError(field, f"includes more than {MAX_YAML_FILES} YAML files")
        includes = scan_yaml(field, path.name, _read(real, field), allow_code)
        for include in includes:
            target = (real.parent / include).resolve()
            if _inside(target, resolved_roots) is None:
                raise InvalidArgumentError(
                    field, f"{path.name} includes {quoted(include)}, outside the task roots"
                )
            if target.is_file():
                pending.append(target)
