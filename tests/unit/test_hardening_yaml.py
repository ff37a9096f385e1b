"""Task YAML goes through one safe loader: no tags of any spelling, no repeated or merge keys.

Each refusal names the file, the line and the rule. The code-running cases plant a module
outside every root that writes a marker file when imported; the marker must never appear,
neither when the source is sent nor when lm-eval is asked to load it.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError

from eval_service.task_index import TaskIndex
from eval_service.tasks import task_manager
from eval_service.tasks.safety import ALLOW_CODE_ENV
from eval_service.tasks.sources import store_task_source
from greenprune.client.spec import ExperimentFileError, parse_experiment
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.file_read import RefusedFileError
from greenprune.core.limits import TASK_YAML_MAX_BYTES, TASK_YAML_MAX_DEPTH
from greenprune.core.safe_yaml import YamlRules, load_yaml
from tests.unit.test_hardening_spec import ALIAS_BOMB
from tests.unit.test_task_sources import facts_source

RULES = YamlRules(max_bytes=1 << 20, max_depth=8, max_nodes=1000)
BASE_YAML = """\
dataset_path: json
dataset_kwargs:
  data_files: {test: data.jsonl}
test_split: test
output_type: generate_until
doc_to_text: "{{q}}"
doc_to_target: "{{a}}"
"""
DATA = b'{"q": "1+1", "a": "2"}\n'


@pytest.fixture(autouse=True)
def _no_task_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_CODE_ENV, raising=False)


# -- the loader ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a: 1\nb: !function m.f\n", 2, "tag '!function'"),
        ("%TAG !! !\n---\na: 1\nb: !!function m.f\n", 1, "%TAG !! !"),
        ("a: !<!function> m.f\n", 1, "tag '!function'"),
        ("a: !!python/name:os.system\n", 1, "python/name:os.system"),
        ("a: ! text\n", 1, "tag '!'"),
        ("a: !!str text\n", 1, "tag 'tag:yaml.org,2002:str'"),
        ("a:\n  b: 1\n  b: 2\n", 3, "a.b: appears twice"),
        ("1: x\n0x1: y\n", 2, "0x1: appears twice"),
        ("a: 1\n'a': 2\n", 2, "a: appears twice"),
        ("a: {x: 1}\n<<: {x: 2}\n", 2, "merge keys (<<)"),
        ("a: &anchor [1]\n", 1, "anchors and aliases"),
        ("? [a]\n: 1\n", 1, "a key must be a plain value"),
        ("x: " + "[" * 3000 + "]" * 3000 + "\n", 1, "nested more than 8 levels deep"),
        ("x:\n" + "".join("  " * i + "- \n" for i in range(1, 600)), 9, "nested more than 8"),
        ("a: 1\n---\nb: 2\n", 2, "more than one YAML document"),
        ("[" + "1, " * 1001 + "1]\n", 1, "more than 1000 values"),
        ("a: [unclosed\n", 2, "not valid YAML"),
    ],
)
def test_the_loader_refuses_with_the_file_the_line_and_the_rule(
    text: str, line: int, words: str
) -> None:
    with pytest.raises(RefusedFileError) as caught:
        load_yaml(text, "t.yaml", RULES)
    assert caught.value.line == line, caught.value
    assert str(caught.value).startswith(f"t.yaml:{line}: ") and words in str(caught.value)


def test_the_size_is_checked_before_parsing() -> None:
    # Twice the limit of text that does not even parse: refused for its size, not its syntax.
    content = b"[" * (2 * RULES.max_bytes)
    with pytest.raises(RefusedFileError) as caught:
        load_yaml(content, "big.yaml", RULES)
    assert "larger than the 1048576 allowed" in str(caught.value)
    with pytest.raises(RefusedFileError, match="not UTF-8 text"):
        load_yaml(b"a: \xff\n", "bin.yaml", RULES)


def test_plain_yaml_loads_and_tags_load_only_where_allowed() -> None:
    loaded = load_yaml("a: [1, two]\nb: {c: null}\n", "t.yaml", RULES)
    assert loaded.data == {"a": [1, "two"], "b": {"c": None}}
    tolerant = YamlRules(1 << 16, 8, 1000, allow_tags=True, allow_aliases=True)
    assert load_yaml("a: !function m.f\nb: &x [1]\nc: *x\n", "t.yaml", tolerant).data == {
        "a": "m.f",
        "b": [1],
        "c": [1],
    }


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name: x\n<<: {models: [m]}\n", "2 merge keys (<<)"),
        ("%TAG !! tag:yaml.org,2002:python/\n---\nname: !!name:os.system x\n", "1 declares"),
    ],
)
def test_the_experiment_file_goes_through_the_same_loader(text: str, words: str) -> None:
    with pytest.raises(ExperimentFileError) as caught:
        parse_experiment(text)
    assert str(caught.value).startswith("experiment.yaml:") and words in str(caught.value)


# -- task code in sources and task roots --------------------------------------------------------


def _evil_module(tmp_path: Path) -> tuple[Path, Path]:
    """A module outside every root that leaves a marker when imported; (module, marker)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    marker = tmp_path / "MARKER"
    (outside / "evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "def process(docs):\n    return docs\n"
    )
    return outside / "evil", marker


_EVIL = "include: base.yaml\ntask: evil_tag\n"
TAG_SPELLINGS = [
    "%TAG !! !\n---\n" + _EVIL + "process_docs: !!function {module}.process\n",
    "%TAG !x! !fun\n---\n" + _EVIL + "process_docs: !x!ction {module}.process\n",
    _EVIL + "process_docs: !<!function> {module}.process\n",
    _EVIL + "doc_to_text: !function {module}.process\n",
]


def _tag_files(template: str, module: Path) -> list[tuple[str, bytes]]:
    return [
        ("evil.yaml", template.format(module=module).encode()),
        ("base.yaml", BASE_YAML.encode()),
        ("data.jsonl", DATA),
    ]


@pytest.mark.parametrize("template", TAG_SPELLINGS)
def test_a_function_tag_of_any_spelling_never_runs_from_a_source(
    tmp_path: Path, template: str
) -> None:
    module, marker = _evil_module(tmp_path)
    root = tmp_path / "sources"
    try:
        stored = store_task_source(_tag_files(template, module), root)
    except InvalidArgumentError as error:
        assert error.field == "task_source.files[0]"
        assert error.message.startswith("evil.yaml:") and "tag" in error.message
        assert ALLOW_CODE_ENV in error.message
    else:  # what the eval worker would then do with it
        with contextlib.suppress(Exception):
            task_manager([stored.folder]).load_task_or_group(["evil_tag"])
        pytest.fail(f"stored a source with a function tag (marker written: {marker.exists()})")
    assert not marker.exists()


@pytest.mark.parametrize("template", TAG_SPELLINGS)
def test_a_function_tag_of_any_spelling_never_runs_from_a_task_root(
    tmp_path: Path, template: str
) -> None:
    module, marker = _evil_module(tmp_path)
    folder = tmp_path / "root" / "evil"
    folder.mkdir(parents=True)
    for name, content in _tag_files(template, module):
        (folder / name).write_bytes(content)
    with pytest.raises(InvalidArgumentError) as caught:
        asyncio.run(TaskIndex([tmp_path / "root"]).manager_for(["evil_tag"], [str(folder)]))
    assert caught.value.field == "spec.task_paths[0]" and "tag" in caught.value.message
    # The worker checks again before lm-eval reads the folder.
    with pytest.raises(InvalidArgumentError, match="evil.yaml:"):
        task_manager([folder]).load_task_or_group(["evil_tag"])
    assert not marker.exists()


def test_a_template_that_reaches_python_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    files = facts_source("ssti_facts")
    escape = f"{{{{ cycler.__init__.__globals__.os.open({str(marker)!r}, 65) }}}}"
    text = files[0][1].decode().replace("doc_to_text: question", f'doc_to_text: "{escape}"')
    assert escape in text
    stored = store_task_source([(files[0][0], text.encode()), files[1]], tmp_path / "sources")
    with pytest.raises(SecurityError, match="__init__"):  # lm-eval renders it on loading
        task_manager([stored.folder]).load_task_or_group(["ssti_facts"])
    assert not marker.exists()


# -- server files through repeated keys, merge keys and includes --------------------------------


def _outside_data(tmp_path: Path) -> Path:
    path = tmp_path / "server-file.jsonl"
    path.write_bytes(DATA * 7)
    return path


def _source(main: str, *extra: tuple[str, bytes]) -> list[tuple[str, bytes]]:
    return [("t.yaml", main.encode()), ("data.jsonl", DATA), *extra]


def _refused(files: list[tuple[str, bytes]], root: Path) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as caught:
        store_task_source(files, root)
    assert not any(root.glob("*/*")), "nothing is left behind"
    return caught.value


@pytest.mark.parametrize(
    ("main", "field", "words"),
    [
        (
            "task: t\n" + BASE_YAML + "dataset_kwargs: {data_files: {test: OUTSIDE}}\n",
            "task_source.files[0]",
            "t.yaml:9: dataset_kwargs: appears twice",
        ),
        (
            "task: t\ndataset_path: json\n<<: {dataset_kwargs: {data_files: OUTSIDE}}\n",
            "task_source.files[0]",
            "t.yaml:3: merge keys (<<)",
        ),
        ("task: t\ndataset_path: json\ndataset_path: /etc\n", "task_source.files[0]", "t.yaml:3"),
        ("task: t\n<<: {dataset_path: /etc}\n", "task_source.files[0]", "t.yaml:2: merge"),
        (
            "task: t\ninclude: base.txt\n",
            "task_source.files[2]",
            "base.txt:3: data path '",
        ),
        (
            "task: t\ninclude: bomb.json\n",
            "task_source.files[3]",
            "bomb.json:1: YAML anchors and aliases",
        ),
        (
            "task: t\ninclude: bomb.txt\n",
            "task_source.files[4]",
            "bomb.txt:1: YAML anchors and aliases",
        ),
    ],
)
def test_repeated_keys_merge_keys_and_included_files_never_reach_server_files(
    tmp_path: Path, main: str, field: str, words: str
) -> None:
    outside = _outside_data(tmp_path)
    base_txt = BASE_YAML.replace("data.jsonl", str(outside)).encode()
    extra = [("base.txt", base_txt), ("bomb.json", ALIAS_BOMB.encode())]
    extra.append(("bomb.txt", ALIAS_BOMB.encode()))
    error = _refused(_source(main.replace("OUTSIDE", str(outside)), *extra), tmp_path / "sources")
    assert error.field == field and words in error.message, error


def test_dataset_path_and_kwargs_never_name_server_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    monkeypatch.chdir(tmp_path)  # datasets loads a dataset_path that names a folder from it
    root = tmp_path / "sources"
    error = _refused(_source("task: t\ndataset_path: etc\n"), root)
    assert "t.yaml:2: dataset_path 'etc' is a server path" in error.message
    cached = BASE_YAML.replace("  data_files:", "  cache_dir: /tmp/x\n  data_files:")
    error = _refused(_source("task: t\n" + cached), root)
    assert "t.yaml:4: dataset_kwargs.cache_dir reaches server paths" in error.message
    assert store_task_source(_source("task: t\n" + BASE_YAML), root).folder.is_dir()


# -- size, depth and shape ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "field", "words"),
    [
        (
            [("t.yaml", b"x: " + b"[" * 3000 + b"]" * 3000 + b"\n")],
            "task_source.files[0]",
            f"t.yaml:1: nested more than {TASK_YAML_MAX_DEPTH} levels deep",
        ),
        (
            [("t.yaml", ("x:\n" + "".join("  " * i + "- \n" for i in range(1, 600))).encode())],
            "task_source.files[0]",
            f"nested more than {TASK_YAML_MAX_DEPTH} levels deep",
        ),
        (
            [("t.yaml", "".join(f"k{i}: {i}\n" for i in range(200_000)).encode())],
            "task_source.files[0]",
            f"larger than the {TASK_YAML_MAX_BYTES} allowed",
        ),
        (
            [("a.yaml", b"task: a\n"), ("a.yaml/b.yaml", b"task: b\n")],
            "task_source.files[0].path",
            "'a.yaml' is both a file and a folder",
        ),
    ],
)
def test_deep_large_and_clashing_files_are_invalid_arguments(
    tmp_path: Path, files: list[tuple[str, bytes]], field: str, words: str
) -> None:
    error = _refused(files, tmp_path)
    assert error.field == field and words in error.message, error
