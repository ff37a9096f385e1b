"""Task folders never execute client-chosen code, and only folders under the roots are read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from eval_service.task_index import TaskIndex
from eval_service.tasks import task_manager
from eval_service.tasks.safety import ALLOW_CODE_ENV
from greenprune.core.errors import InvalidArgumentError

EVIL_YAML = """\
task: evil_task
dataset_path: json
dataset_kwargs:
  data_files: {{test: data.jsonl}}
test_split: test
output_type: generate_until
doc_to_text: "{{{{q}}}}"
doc_to_target: "{{{{a}}}}"
{extra}
"""


def _evil_folder(root: Path, extra: str = "process_docs: !function evil.process_docs") -> Path:
    folder = root / "evil"
    folder.mkdir(parents=True)
    marker = root / "MARKER"
    (folder / "evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "def process_docs(docs):\n    return docs\n"
    )
    (folder / "data.jsonl").write_text('{"q": "1+1", "a": "2"}\n')
    (folder / "evil.yaml").write_text(EVIL_YAML.format(extra=extra))
    return folder


def _refused(index: TaskIndex, paths: list[str]) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as caught:
        asyncio.run(index.manager_for(["evil_task"], paths))
    return caught.value


def test_function_tag_is_refused_and_never_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(ALLOW_CODE_ENV, raising=False)
    folder = _evil_folder(tmp_path)
    error = _refused(TaskIndex([tmp_path]), [str(folder)])
    assert error.field == "spec.task_paths[0]"
    assert "!function" in error.message and ALLOW_CODE_ENV in error.message
    # The worker's own TaskManager refuses too, before lm-eval imports evil.py.
    with pytest.raises(InvalidArgumentError) as caught:
        task_manager([folder]).load_task_or_group(["evil_task"])
    assert "!function" in caught.value.message and ALLOW_CODE_ENV in caught.value.message
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("class: !function evil.Task", "evil.yaml:9: uses the tag '!function'"),
        ("class: evil.Task", "evil.yaml: has a 'class' entry, which imports Python"),
        (
            "metric_list:\n  - metric: !function evil.metric",
            "evil.yaml:10: uses the tag '!function'",
        ),
        ("x: !!python/name:os.system", "evil.yaml:9: uses the tag 'tag:yaml.org,2002:python/name"),
        # Refused for leaving the root, not because the included file does not exist.
        (
            "include: /etc/evil.yaml",
            "evil.yaml:1: includes '/etc/evil.yaml', outside the task roots",
        ),
        (
            "include: ../../outside.yaml",
            "evil.yaml:1: includes '../../outside.yaml', outside the task roots",
        ),
    ],
)
def test_other_code_entries_and_escaping_includes_are_refused(
    tmp_path: Path, extra: str, reason: str, monkeypatch
) -> None:
    monkeypatch.delenv(ALLOW_CODE_ENV, raising=False)
    root = tmp_path / "root"
    folder = _evil_folder(root, extra)
    error = _refused(TaskIndex([root]), [str(folder)])
    assert error.field == "spec.task_paths[0]"
    assert error.message.startswith(reason), error.message
    assert not (root / "MARKER").exists()


@pytest.mark.parametrize("path", ["/etc", "/usr", "{root}/../..", "{root}/../outside"])
def test_folders_outside_the_roots_are_refused(tmp_path: Path, path: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    error = _refused(TaskIndex([root]), [path.format(root=root)])
    assert error.field == "spec.task_paths[0]" and "outside the task roots" in error.message


def test_no_roots_means_no_task_folders(tmp_path: Path) -> None:
    error = _refused(TaskIndex([]), [str(tmp_path)])
    assert error.field == "spec.task_paths[0]" and "accepts no task folders" in error.message


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to("/etc")
    error = _refused(TaskIndex([root]), [str(root / "link")])
    assert error.field == "spec.task_paths[0]" and "outside the task roots" in error.message


def test_operator_may_allow_task_code(tmp_path: Path, monkeypatch) -> None:
    folder = _evil_folder(tmp_path)
    manager = asyncio.run(
        TaskIndex([tmp_path], allow_code=True).manager_for(["evil_task"], [str(folder)])
    )
    assert "evil_task" in manager.all_tasks
    monkeypatch.setenv(ALLOW_CODE_ENV, "1")
    task_manager([folder])  # no refusal in the worker either


def test_plain_task_folders_under_the_root_still_work(tmp_path: Path) -> None:
    folder = _evil_folder(tmp_path, extra="")
    manager = asyncio.run(TaskIndex([tmp_path]).manager_for(["evil_task"], [str(folder)]))
    assert "evil_task" in manager.all_tasks
