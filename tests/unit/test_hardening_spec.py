"""The experiment file check refuses alias bombs, deep nesting and binary files, quickly."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from greenprune.client.spec import ExperimentFileError, load_experiment

DEMO = Path(__file__).resolve().parents[2] / "experiments" / "demo.yaml"

ALIAS_BOMB = (
    "\n".join(
        ["a: &a [x, x, x, x, x, x, x, x, x]"]
        + [
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}" + f", *{chr(97 + i)}" * 8 + "]"
            for i in range(9)
        ]
    )
    + "\n"
)


def _write(tmp_path: Path, content: str | bytes, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (ALIAS_BOMB, "aliases"),
        (
            "models: [m]\nunknown_key:\n  " + ALIAS_BOMB.replace("\n", "\n  "),
            "aliases",
        ),
        ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
        ("x:\n" + "".join("  " * i + "- \n" for i in range(1, 200)), "nested"),
        ("models: !!python/object/apply:os.system [echo hi]\n", "tags"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "binary"),
        (b"models: [a]\x00\x01\n", "YAML"),
    ],
)
def test_hostile_files_are_refused_quickly_and_cleanly(tmp_path: Path, content, words: str) -> None:  # noqa: ANN001
    path = _write(tmp_path, content)
    started = time.perf_counter()
    with pytest.raises(ExperimentFileError) as caught:
        load_experiment(path)
    assert time.perf_counter() - started < 1.0
    assert words in str(caught.value)
    assert str(caught.value).startswith("bad.yaml:")


def test_the_demo_file_still_loads() -> None:
    assert load_experiment(DEMO).experiment.models


def test_the_cli_prints_no_traceback_for_an_alias_bomb(tmp_path: Path) -> None:
    path = _write(tmp_path, ALIAS_BOMB)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "greenprune.client.cli", "run", str(path), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert "aliases" in done.stderr + done.stdout
    assert time.perf_counter() - started < 30


def test_an_unknown_reference_model_is_refused_by_the_file_check(tmp_path: Path) -> None:
    text = DEMO.read_text().replace("reference:tiny-llama", "reference:nope", 1)
    path = _write(tmp_path, text)
    with pytest.raises(ExperimentFileError) as caught:
        load_experiment(path)
    assert "no reference model 'reference:nope'" in str(caught.value)
    assert "reference:tiny-llama" in str(caught.value)
