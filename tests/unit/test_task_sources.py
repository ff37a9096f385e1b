"""Task sources: task YAML and data sent as content, checked and stored in the service's folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eval_service.tasks import TASKS_DIR, task_manager
from eval_service.tasks.safety import ALLOW_CODE_ENV
from eval_service.tasks.sources import source_folder, store_task_source
from greenprune.client.task_files import read_task_folder
from greenprune.core.errors import InvalidArgumentError, NotFoundError
from greenprune.core.limits import MAX_TASK_SOURCE_BYTES, MAX_TASK_SOURCE_FILES


def facts_source(task: str = "my_facts", data: str = "data/facts.jsonl") -> list[tuple[str, bytes]]:
    """A copy of the local facts task under another name, with its data in a subfolder."""
    config = yaml.safe_load((TASKS_DIR / "greenprune_facts.yaml").read_text())
    config["task"] = task
    config["dataset_kwargs"]["data_files"] = {"test": f"../{data}"}
    return [
        ("tasks/facts.yaml", yaml.safe_dump(config).encode()),
        (data, (TASKS_DIR / "greenprune_facts.jsonl").read_bytes()),
    ]


def _refused(files: list[tuple[str, bytes]], root: Path) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as caught:
        store_task_source(files, root)
    assert not any(root.glob("*/*")), "nothing is left behind"
    return caught.value


def test_a_source_is_stored_once_by_content_with_its_data_made_absolute(tmp_path: Path) -> None:
    root = tmp_path / "sources"
    stored = store_task_source(facts_source(), root)
    assert stored.name.startswith("taskSources/") and stored.folder.parent == root
    assert store_task_source(list(reversed(facts_source())), root) == stored
    assert store_task_source(facts_source("other"), root).name != stored.name
    config = yaml.safe_load((stored.folder / "tasks/facts.yaml").read_text())
    data = Path(config["dataset_kwargs"]["data_files"]["test"])
    assert data == stored.folder.resolve() / "data/facts.jsonl" and data.is_file()
    assert source_folder(root, stored.name, "f") == stored.folder
    task = task_manager([stored.folder]).load_task_or_group(["my_facts"])["my_facts"]
    assert len(list(task.test_docs())) > 0


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/etc/x.yaml", "relative"),
        ("../x.yaml", "relative"),
        ("a/../../x.yaml", "relative"),
        ("a//x.yaml", "relative"),
        (".hidden/x.yaml", "hidden"),
        ("x.py", ".py only where"),
        ("x.so", "a task source holds"),
        ("a\\x.yaml", "backslash"),
        ("a\x00.yaml", "control characters"),
        ("x" * 300 + ".yaml", "characters"),
    ],
)
def test_paths_that_leave_the_source_or_carry_code_are_refused(
    tmp_path: Path, path: str, reason: str
) -> None:
    error = _refused([*facts_source(), (path, b"task: x\n")], tmp_path)
    assert error.field == "task_source.files[2].path" and reason in error.message


EVIL = "task: evil\ndataset_path: json\n"


@pytest.mark.parametrize(
    ("yaml_text", "reason"),
    [
        (EVIL + "process_docs: !function evil.process_docs\n", "!function"),
        (EVIL + "class: evil.Task\n", "'class'"),
        (EVIL + "x: !!python/name:os.system\n", "python"),
        (EVIL + "a: &a [1, 2]\nb: *a\n", "aliases"),
        (EVIL + "include: ../../outside.yaml\n", "outside"),
        (EVIL + "include: /etc/evil.yaml\n", "outside"),
        (EVIL + "dataset_kwargs: {data_files: {test: /etc/passwd}}\n", "not a file of"),
        (EVIL + "dataset_kwargs: {data_files: [../../x.jsonl]}\n", "not a file of"),
        (EVIL + "dataset_kwargs: {data_dir: /etc}\n", "not a file of"),
        (EVIL + "dataset_kwargs: {data_files: {test: missing.jsonl}}\n", "names no file"),
        ("task: evil\ndataset_path: /etc\n", "server path"),
        ("task: [unclosed\n", "not valid YAML"),
        ("task: 5\n", "not text"),
        ("task: greenprune_facts\n", "would replace greenprune's own"),
    ],
)
def test_yaml_that_runs_code_or_reaches_outside_is_refused(
    tmp_path: Path, yaml_text: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_CODE_ENV, raising=False)
    error = _refused([("evil.yaml", yaml_text.encode())], tmp_path)
    assert error.field.startswith("task_source.files") and reason in error.message, error


def test_the_operator_can_allow_task_code(tmp_path: Path) -> None:
    files = [("t.yaml", (EVIL + "process_docs: !function helpers.docs\n").encode())]
    files.append(("helpers.py", b"def docs(d):\n    return d\n"))
    stored = store_task_source(files, tmp_path, allow_code=True)
    assert "!function" in (stored.folder / "t.yaml").read_text()
    assert store_task_source(files[:1], tmp_path, allow_code=True).name != stored.name


def test_counts_and_sizes_are_bounded(tmp_path: Path) -> None:
    many = [(f"f{i}.txt", b"") for i in range(MAX_TASK_SOURCE_FILES)] + [("t.yaml", b"task: t")]
    assert "1 to" in _refused(many, tmp_path).message
    assert "bytes" in _refused([("t.yaml", b"x" * (MAX_TASK_SOURCE_BYTES + 1))], tmp_path).message
    assert "no task YAML" in _refused([("data.jsonl", b"{}")], tmp_path).message
    assert "twice" in _refused([("t.yaml", b"task: a"), ("T.yaml", b"task: b")], tmp_path).message
    assert "UTF-8" in _refused([("t.yaml", b"\xff\xfe")], tmp_path).message


def test_unknown_or_malformed_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"^spec.task_sources\[0\]: .* is not stored"):
        source_folder(tmp_path, "taskSources/" + "0" * 32, "spec.task_sources[0]")
    for name in ("taskSources/../../etc", "/etc", "taskSources/" + "A" * 32, ""):
        with pytest.raises(InvalidArgumentError) as caught:
            source_folder(tmp_path, name, "spec.task_sources[0]")
        assert caught.value.field == "spec.task_sources[0]"
        assert "is not a task source name" in caught.value.message


def test_the_client_reads_a_folder_as_content(tmp_path: Path) -> None:
    for path, content in facts_source():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(content)
    (tmp_path / "helpers.py").write_text("print('never sent')\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.yaml").write_text("x: 1\n")
    source = read_task_folder(tmp_path)
    assert sorted(f.path for f in source.files) == ["data/facts.jsonl", "tasks/facts.yaml"]
    with pytest.raises(InvalidArgumentError, match="not a folder"):
        read_task_folder(tmp_path / "missing")
    with pytest.raises(InvalidArgumentError, match="no task YAML"):
        read_task_folder(tmp_path / "data")


def test_a_source_without_tasks_is_refused_and_not_kept(tmp_path: Path) -> None:
    import asyncio

    from eval_service.task_index import TaskIndex

    index = TaskIndex([], False, tmp_path)
    with pytest.raises(InvalidArgumentError, match="define no task"):
        asyncio.run(index.store_source([("t.yaml", b"include: nope.yaml\n")]))
    assert list(tmp_path.iterdir()) == []
    stored, names = asyncio.run(index.store_source(facts_source()))
    assert names == ["my_facts"] and stored.folder.is_dir()
