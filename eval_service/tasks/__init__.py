"""The local lm-eval tasks about the synthetic world, and a TaskManager that finds them.

lm-eval resolves a task's relative ``data_files`` against the working directory, not the YAML's
folder. ``task_manager`` therefore hands lm-eval copies of these YAML files whose data paths
are absolute (written once per content into the greenprune cache), so the tasks load from any
working directory, fully offline. ``eval_service.tasks.generate.write_task_data`` writes their
JSONL data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from greenprune.core.reference.build import default_cache_dir

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager

TASKS_DIR: Path = Path(__file__).resolve().parent
LOCAL_TASKS: tuple[str, ...] = ("greenprune_facts", "greenprune_arith", "greenprune_heldout")
SUITE = "greenprune_suite"

__all__ = [
    "LOCAL_TASKS",
    "SUITE",
    "TASKS_DIR",
    "materialised_tasks_dir",
    "sandbox_templates",
    "task_manager",
]


def _with_absolute_data_files(config: dict[str, Any], base: Path) -> dict[str, Any]:
    """Returns ``config`` with its ``dataset_kwargs.data_files`` resolved against ``base``."""
    data_files = (config.get("dataset_kwargs") or {}).get("data_files")
    if data_files is None:
        return config

    def absolute(value: str) -> str:
        return str((base / value).resolve())

    if isinstance(data_files, str):
        resolved: object = absolute(data_files)
    elif isinstance(data_files, list):
        resolved = [absolute(v) for v in data_files]
    else:
        resolved = {
            split: [absolute(v) for v in files] if isinstance(files, list) else absolute(files)
            for split, files in data_files.items()
        }
    return {**config, "dataset_kwargs": {**config["dataset_kwargs"], "data_files": resolved}}


def materialised_tasks_dir(cache_dir: Path | None = None) -> Path:
    """Writes (once) copies of the local task YAML files with absolute data paths.

    Args:
        cache_dir: The cache root (default ``default_cache_dir()``).

    Returns:
        A folder ``<root>/lm-eval-tasks/<digest>`` holding the rewritten YAML files; the digest
        covers the YAML text and where the data lives, so edits give a fresh folder.
    """
    sources = sorted(TASKS_DIR.glob("*.yaml"))
    digest = hashlib.sha256(str(TASKS_DIR).encode())
    for source in sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    root = (cache_dir if cache_dir is not None else default_cache_dir()) / "lm-eval-tasks"
    target = root / digest.hexdigest()[:16]
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tasks-", dir=root))
    try:
        for source in sources:
            config = yaml.safe_load(source.read_text(encoding="utf-8"))
            rewritten = _with_absolute_data_files(config, TASKS_DIR)
            (staging / source.name).write_text(yaml.safe_dump(rewritten, sort_keys=False))
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.is_dir():
            raise
    return target


def sandbox_templates() -> None:
    """Renders lm-eval's Jinja prompt templates (``doc_to_text`` and the rest) in a sandbox.

    lm-eval renders them with a plain ``jinja2.Environment``, in which a template such as
    ``{{ cycler.__init__.__globals__.os.system(...) }}`` runs code. The sandbox refuses access
    to such attributes (``jinja2.exceptions.SecurityError``); ordinary templates render alike.
    """
    import lm_eval.utils as lm_utils
    from jinja2.sandbox import SandboxedEnvironment

    if isinstance(lm_utils.env, SandboxedEnvironment):
        return
    sandboxed = SandboxedEnvironment(
        loader=lm_utils.env.loader,
        undefined=lm_utils.env.undefined,
        keep_trailing_newline=lm_utils.env.keep_trailing_newline,
    )
    sandboxed.filters.update(lm_utils.env.filters)
    lm_utils.env = sandboxed


def task_manager(
    extra_paths: Sequence[Path] = (), include_defaults: bool = False, allow_code: bool | None = None
) -> TaskManager:
    """An lm-eval TaskManager that knows the local tasks, from any working directory.

    Args:
        extra_paths: Further folders of task YAML files (the user's own tasks).
        include_defaults: Also index lm-eval's built-in tasks (costs several seconds).
        allow_code: Whether ``extra_paths`` may hold YAML that imports Python (default:
            ``GREENPRUNE_EVAL_ALLOW_TASK_CODE``); refused with InvalidArgumentError otherwise.

    Returns:
        The TaskManager; pass it to ``lm_eval.simple_evaluate(task_manager=...)``.
    """
    from lm_eval.tasks import TaskManager

    from eval_service.tasks.safety import check_task_folder, code_allowed_by_env

    if allow_code is None:
        allow_code = code_allowed_by_env()
    for index, path in enumerate(extra_paths):  # again here, in the worker: never run client code
        folder = Path(path).expanduser().resolve()
        check_task_folder(f"spec.task_paths[{index}]", folder, (Path("/"),), allow_code)
    sandbox_templates()
    include = [str(materialised_tasks_dir())]
    include.extend(str(Path(path).expanduser().resolve()) for path in extra_paths)
    return TaskManager(include_path=include, include_defaults=include_defaults)
