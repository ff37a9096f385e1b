"""The experiment file check refuses alias bombs, deep nesting and binary files, cheaply."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from greenprune.client.spec import ExperimentFileError, load_experiment

DEMO = Path(__file__).resolve().parents[2] / "experiments" / "demo.yaml"
MAX_REFUSAL_BYTES = 32 * 1024 * 1024
"""Peak Python allocation allowed while refusing a hostile file (expanding one takes GBs)."""

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
def test_hostile_files_are_refused_cheaply_and_cleanly(tmp_path: Path, content, words: str) -> None:  # noqa: ANN001
    path = _write(tmp_path, content)
    tracemalloc.start()
    try:
        with pytest.raises(ExperimentFileError) as caught:
            load_experiment(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Refused before anything is expanded: the bomb would build 9**10 list items.
    assert peak < MAX_REFUSAL_BYTES, f"refusing it allocated {peak} bytes"
    assert words in str(caught.value)
    assert str(caught.value).startswith("bad.yaml:")


def test_the_demo_file_still_loads() -> None:
    assert load_experiment(DEMO).experiment.models


def test_the_cli_prints_no_traceback_for_an_alias_bomb(tmp_path: Path) -> None:
    path = _write(tmp_path, ALIAS_BOMB)
    done = subprocess.run(
        [sys.executable, "-m", "greenprune.client.cli", "run", str(path), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,  # a guard against a hang, not a speed requirement
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "bad.yaml:" in done.stderr and "aliases" in done.stderr


def test_an_unknown_reference_model_is_refused_by_the_file_check(tmp_path: Path) -> None:
    text = DEMO.read_text().replace("reference:tiny-llama", "reference:nope", 1)
    path = _write(tmp_path, text)
    with pytest.raises(ExperimentFileError) as caught:
        load_experiment(path)
    assert "no reference model 'reference:nope'" in str(caught.value)
    assert "reference:tiny-llama" in str(caught.value)
