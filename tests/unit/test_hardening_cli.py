"""The CLI reads only regular files of bounded size, and never walks outside the experiment."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from greenprune.client import cli
from greenprune.client.spec import ExperimentFileError, load_experiment
from greenprune.client.task_files import read_task_folder
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import EXPERIMENT_FILE_MAX_BYTES
from tests.unit.test_task_sources import facts_source

EXPERIMENT = """\
name: cli
models: [reference:tiny-llama]
pruning: {method: magnitude-l2, ratios: [0.0]}
eval:
  tasks: [greenprune_facts]
  task_paths: [PATH]
"""


def _finishes(call: Callable[[], object], seconds: float = 60) -> object:
    """Runs ``call`` in a thread and fails (instead of hanging) when it does not return."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the call blocked"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("value")


def _special(tmp_path: Path, kind: str) -> Path:
    if kind == "directory":
        (tmp_path / "exp.yaml").mkdir()
        return tmp_path / "exp.yaml"
    if kind == "FIFO":
        os.mkfifo(tmp_path / "exp.yaml")
        return tmp_path / "exp.yaml"
    if kind == "device":
        return Path("/dev/zero")
    path = tmp_path / "exp.yaml"
    path.write_bytes(b"#" * (EXPERIMENT_FILE_MAX_BYTES + 1))
    return path


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("directory", "is a directory, not a regular file"),
        ("FIFO", "is a FIFO (named pipe), not a regular file"),
        ("device", "is a character device, not a regular file"),
        ("oversized", f"larger than the {EXPERIMENT_FILE_MAX_BYTES} allowed"),
    ],
)
def test_the_cli_refuses_what_is_not_a_small_regular_file_before_reading(
    tmp_path: Path, kind: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _special(tmp_path, kind)
    with pytest.raises(ExperimentFileError) as caught:
        _finishes(lambda: load_experiment(path))
    assert reason in str(caught.value) and str(caught.value).startswith(f"{path.name}:1 ")
    assert _finishes(lambda: cli.main(["run", str(path), "--dry-run"])) == cli.EXIT_USAGE
    printed = capsys.readouterr()
    assert reason in printed.err and "Traceback" not in printed.err + printed.out


@pytest.mark.parametrize("entry", ["../../../../", "/", "../outside", "inside/../../outside"])
def test_task_paths_never_lead_outside_the_experiment_folder(tmp_path: Path, entry: str) -> None:
    folder = tmp_path / "experiment"
    folder.mkdir()
    (tmp_path / "outside").mkdir()
    (folder / "exp.yaml").write_text(EXPERIMENT.replace("PATH", f"'{entry}'"))
    with pytest.raises(ExperimentFileError) as caught:
        load_experiment(folder / "exp.yaml")
    assert f"exp.yaml:6 eval.task_paths[0]: '{entry}' leads outside the experiment's folder" in str(
        caught.value
    )


def test_a_linked_folder_leading_outside_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "experiment"
    folder.mkdir()
    (folder / "tasks").symlink_to(tmp_path, target_is_directory=True)
    (folder / "exp.yaml").write_text(EXPERIMENT.replace("PATH", "tasks"))
    with pytest.raises(ExperimentFileError, match="'tasks' leads outside the experiment's folder"):
        load_experiment(folder / "exp.yaml")


def _task_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "tasks"
    for path, content in facts_source():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(content)
    return folder


def test_the_task_folder_walk_never_follows_links_out(tmp_path: Path) -> None:
    folder = _task_folder(tmp_path)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd.txt").write_text("SECRET")
    (folder / "linked").symlink_to(secret, target_is_directory=True)
    (folder / "inner.jsonl").symlink_to(folder / "data" / "facts.jsonl")
    source = read_task_folder(folder)
    assert sorted(f.path for f in source.files) == [
        "data/facts.jsonl",
        "inner.jsonl",
        "tasks/facts.yaml",
    ]
    assert all(b"SECRET" not in f.content for f in source.files)
    (folder / "passwd.txt").symlink_to(secret / "passwd.txt")
    with pytest.raises(InvalidArgumentError) as caught:
        read_task_folder(folder)
    assert caught.value.field == "eval.task_paths" and "leads outside" in caught.value.message


def test_the_task_folder_walk_refuses_fifos_without_blocking(tmp_path: Path) -> None:
    folder = _task_folder(tmp_path)
    os.mkfifo(folder / "data" / "stream.jsonl")
    with pytest.raises(InvalidArgumentError) as caught:
        _finishes(lambda: read_task_folder(folder))
    assert "stream.jsonl is a FIFO (named pipe), not a regular file" in caught.value.message
