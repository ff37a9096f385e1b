"""A failure inside a library says what the job was doing and where it failed."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from eval_service.errors import LibraryError, describe, library_failures
from greenprune.core.errors import InvalidArgumentError
from greenprune.rpc.errors import status_for


def test_an_empty_assertion_names_the_task_the_checkpoint_and_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module pytest does not rewrite, so the assertion has no text, as in lm-eval.
    (tmp_path / "fake_lm_eval.py").write_text(
        "def encode(context_enc):\n    assert len(context_enc) > 0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = importlib.import_module("fake_lm_eval")
    with (
        pytest.raises(LibraryError) as caught,
        library_failures("checkpoint 'c1'"),
        library_failures("task 'greenprune_facts'"),
    ):
        fake.encode([])
    message = str(caught.value)
    assert message.startswith("checkpoint 'c1', task 'greenprune_facts': AssertionError: ")
    assert "assert len(context_enc) > 0" in message
    assert "fake_lm_eval.py:2" in message
    code, wire = status_for(caught.value)
    assert code.name == "INTERNAL" and wire == message  # the text reaches the job's error


def test_a_message_is_kept_and_bounded() -> None:
    try:
        raise RuntimeError("x" * 10_000)
    except RuntimeError as exc:
        text = describe(exc, "task 't'")
    assert text.startswith("task 't': RuntimeError: xxx") and len(text) <= 600


def test_our_own_errors_pass_unchanged() -> None:
    with (
        pytest.raises(InvalidArgumentError) as caught,
        library_failures(lambda: "stage"),
    ):
        raise InvalidArgumentError("spec.tasks", "unknown")
    assert caught.value.field == "spec.tasks" and caught.value.message == "unknown"
