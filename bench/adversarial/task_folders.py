"""Hostile task folders and task YAML (category 1), planted under a task root."""

from __future__ import annotations

from pathlib import Path

from bench.adversarial.verdicts import ACCEPT, REFUSE

TASK_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files: {{test: {data}}}
test_split: test
output_type: multiple_choice
doc_to_text: q
doc_to_choice: choices
doc_to_target: answer
target_delimiter: "{delimiter}"
metric_list:
  - metric: acc
{extra}
"""

EVIL_PY = """\
from pathlib import Path
Path({marker!r}).write_text("ran")
def process_docs(docs):
    return docs
def metric(*args):
    return 0
class Task:
    pass
"""

HOSTILE_TASK_YAML: list[tuple[str, str]] = [
    ("function-tag", "process_docs: !function evil.process_docs"),
    ("class-key", "class: evil.Task"),
    ("class-function", "class: !function evil.Task"),
    ("metric-function", "metric_list:\n  - metric: !function evil.metric"),
    ("python-name", "x: !!python/name:os.system"),
    ("python-apply", 'x: !!python/object/apply:os.system ["touch {marker}"]'),
    ("include-absolute", "include: {outside}/evil_outside.yaml"),
    ("include-relative", "include: ../../outside/evil_outside.yaml"),
    ("include-etc", "include: /etc/hostname"),
]
"""(name, extra YAML) of each hostile task folder planted under the task root; ``{marker}`` is
the folder's marker file, ``{outside}`` a folder beside the root holding evil YAML."""

TASK_FOLDER_PATHS: list[tuple[str, str]] = [
    ("/etc", "/etc"),
    ("/usr", "/usr"),
    ("root/..", "{root}/.."),
    ("root/../..", "{root}/../.."),
    ("sibling outside", "{root}/../outside"),
    ("relative ../../../../etc", "../../../../etc"),
    ("symlink to outside", "{root}/link-outside"),
    ("symlink to /etc", "{root}/link-etc"),
    ("the whole root (holds hostile folders)", "{root}"),
    ("a task file, not a folder", "{root}/function-tag/task.yaml"),
    ("NUL", "{root}/a\x00b"),
    ("300 characters", "{root}/" + "x" * 300),
    ("empty", ""),
]
"""(label, task_paths entry) of folders a client must not load; ``{root}`` is the task root."""

TASK_SOURCE_UPLOADS: list[tuple[str, list[tuple[str, str | bytes]], str]] = [
    ("!function with its module", [("t.yaml", "function-tag"), ("evil.py", "evil")], REFUSE),
    ("!!python/object/apply", [("t.yaml", "python-apply")], REFUSE),
    ("class: key", [("t.yaml", "class-key"), ("evil.py", "evil")], REFUSE),
    ("include of /etc", [("t.yaml", "include-etc")], REFUSE),
    ("path ../escape.yaml", [("../escape.yaml", "plain")], REFUSE),
    ("absolute path", [("/tmp/escape.yaml", "plain")], REFUSE),
    ("NUL in path", [("a\x00b.yaml", "plain")], REFUSE),
    ("a plain task with its data", [("t.yaml", "plain"), ("data.jsonl", "data")], ACCEPT),
]
"""(label, files, expected) sent through CreateTaskSource when the EvalService has it; a file's
content names a HOSTILE_TASK_YAML entry, ``plain`` (a task without code), ``evil`` (the Python
module) or ``data`` (its JSONL)."""


def task_yaml(task: str, extra: str, delimiter: str = " ", data: str = "data.jsonl") -> str:
    return TASK_YAML.format(task=task, extra=extra, delimiter=delimiter, data=data)


DATA_JSONL = '{"q": "Question: 1+1? Answer:", "choices": ["2", "3"], "answer": 0}\n'


def plant_task_root(home: Path) -> tuple[Path, Path, Path]:
    """Writes the task root (hostile folders, the lm-eval failure task).

    Returns:
        The task root, the folder beside it, the folder markers are written to.
    """
    root, outside, markers = home / "tasks", home / "outside", home / "markers"
    for folder in (root, outside, markers):
        folder.mkdir(parents=True, exist_ok=True)
    (outside / "evil.py").write_text(EVIL_PY.format(marker=str(markers / "outside")))
    (outside / "data.jsonl").write_text(DATA_JSONL)
    (outside / "evil_outside.yaml").write_text(
        task_yaml("adv_outside", "process_docs: !function evil.process_docs")
    )
    for name, extra in HOSTILE_TASK_YAML:
        folder = root / name
        folder.mkdir()
        marker = markers / name
        (folder / "evil.py").write_text(EVIL_PY.format(marker=str(marker)))
        (folder / "data.jsonl").write_text(DATA_JSONL)
        text = extra.format(marker=str(marker), outside=str(outside))
        (folder / "task.yaml").write_text(task_yaml(task_name(name), text))
    (root / "link-outside").symlink_to(outside)
    (root / "link-etc").symlink_to("/etc")
    # Category 9: a context of spaces only, which lm-eval encodes to no tokens.
    failing = home / "tasks-library" / "empty-context"
    failing.mkdir(parents=True)
    # An absolute data path: lm-eval resolves a relative one against the worker's folder.
    data = failing / "data.jsonl"
    (failing / "task.yaml").write_text(task_yaml(LIBRARY_TASK, "", delimiter="", data=str(data)))
    data.write_text('{"q": "   ", "choices": ["a", "b"], "answer": 0}\n' * 4)
    return root, outside, markers


def task_name(folder: str) -> str:
    return "adv_" + folder.replace("-", "_")


LIBRARY_TASK = "adv_empty_context"
