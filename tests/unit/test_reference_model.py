"""The reference tiny Llama: its world, its deterministic build, its cache and its files."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from greenprune.core.errors import NotFoundError
from greenprune.core.reference import (
    Recipe,
    build_reference_model,
    calibration_texts,
    ensure_reference_model,
    reference_model_names,
)
from greenprune.core.reference import build as build_module
from greenprune.core.reference.world import (
    N_CHOICES,
    arithmetic_facts,
    heldout_documents,
    multiple_choice_docs,
    training_lines,
    world_facts,
)

SHORT = Recipe().shortened(steps=2)


def test_no_evaluation_question_is_in_the_training_corpus() -> None:
    corpus = set(training_lines())
    docs = multiple_choice_docs(world_facts(), 0) + multiple_choice_docs(arithmetic_facts(), 0)
    for doc in docs:
        answer = doc["choices"][doc["answer"]]
        assert f"{doc['question']} {answer}" not in corpus
    # The same fact is taught in other forms, so the held-out question is answerable.
    fact = world_facts()[0]
    assert all(s in corpus for s in fact.statements)
    assert any(q.startswith("Question: ") for q in corpus)
    assert not corpus & set(heldout_documents())


def test_questions_have_four_distinct_choices_one_right() -> None:
    for doc in multiple_choice_docs(world_facts(), 0) + multiple_choice_docs(arithmetic_facts(), 0):
        choices = doc["choices"]
        assert len(choices) == N_CHOICES == len(set(choices))
        assert 0 <= doc["answer"] < N_CHOICES


def test_calibration_texts_come_from_the_training_corpus() -> None:
    texts = calibration_texts(8, seed=3)
    assert len(texts) == 8
    assert texts == calibration_texts(8, seed=3)
    assert texts != calibration_texts(8, seed=4)
    corpus = training_lines()
    for text in texts:
        assert any(text.startswith(f"{line} ") for line in corpus)


def test_build_is_deterministic(tmp_path: Path) -> None:
    first = build_reference_model(tmp_path / "a", SHORT)
    second = build_reference_model(tmp_path / "b", SHORT)
    other_seed = build_reference_model(tmp_path / "c", replace(SHORT, seed=1, steps=1))
    assert first.weights_sha256 == second.weights_sha256
    assert first.weights_sha256 != other_seed.weights_sha256
    tokenizer_a = (tmp_path / "a" / "tokenizer.json").read_bytes()
    assert tokenizer_a == (tmp_path / "b" / "tokenizer.json").read_bytes()
    assert first.recipe_hash == SHORT.digest() != Recipe().digest()


def test_reference_model_loads_with_plain_auto_classes(reference_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(reference_model_dir)
    model = AutoModelForCausalLM.from_pretrained(reference_model_dir)
    config = model.config
    assert type(model).__name__ == "LlamaForCausalLM"
    assert config.num_key_value_heads < config.num_attention_heads
    assert config.num_hidden_layers >= 4
    parameters = sum(p.numel() for p in model.parameters())
    assert 2_000_000 <= parameters <= 10_000_000
    manifest = json.loads((reference_model_dir / build_module.MANIFEST_NAME).read_text())
    assert manifest["parameters"] == parameters
    assert manifest["recipe_hash"] == build_module.RECIPES["tiny-llama"].digest()

    prompt = "The zorb is"
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    assert tokenizer.decode(ids[0]) == prompt
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], config.vocab_size)


def test_ensure_returns_the_cached_model_without_rebuilding(reference_model_dir: Path) -> None:
    weights = reference_model_dir / build_module.WEIGHTS_NAME
    before = weights.stat().st_mtime_ns
    messages: list[str] = []
    assert ensure_reference_model(log=messages.append) == reference_model_dir
    assert weights.stat().st_mtime_ns == before
    assert messages == []


def test_concurrent_callers_share_one_build_and_stale_builds_are_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(build_module.RECIPES, "short", SHORT)
    messages: list[str] = []
    paths: list[Path] = []

    def call() -> None:
        paths.append(ensure_reference_model("short", tmp_path, log=messages.append))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert paths[0] == paths[1] == tmp_path / "models" / "reference-short"
    assert sum(m.startswith("building") for m in messages) == 1

    # A cached model whose recipe hash no longer matches is rebuilt in place.
    manifest_path = paths[0] / build_module.MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "recipe_hash": "outdated"}))
    messages.clear()
    assert ensure_reference_model("short", tmp_path, log=messages.append) == paths[0]
    assert sum(m.startswith("building") for m in messages) == 1
    assert json.loads(manifest_path.read_text())["recipe_hash"] == SHORT.digest()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        ".reference-short.lock",
        "reference-short",
    ]


def test_unknown_reference_model_is_not_found(tmp_path: Path) -> None:
    assert reference_model_names() == ["tiny-llama"]
    with pytest.raises(NotFoundError, match="no-such-model"):
        ensure_reference_model("no-such-model", tmp_path)


def test_default_cache_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENPRUNE_CACHE_DIR", str(tmp_path))
    assert build_module.default_cache_dir() == tmp_path
    monkeypatch.delenv("GREENPRUNE_CACHE_DIR")
    assert build_module.default_cache_dir() == Path.home() / ".cache" / "greenprune"
