"""The local lm-eval tasks: committed data, offline loading from any directory, and scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from eval_service.tasks import LOCAL_TASKS, SUITE, TASKS_DIR, materialised_tasks_dir, task_manager
from eval_service.tasks.generate import write_task_data
from greenprune.core.reference import Recipe, build_reference_model

MULTIPLE_CHOICE = ("greenprune_facts", "greenprune_arith")


def _evaluate(model_dir: Path, workdir: Path) -> dict[str, dict[str, Any]]:
    """Runs the suite through lm_eval.simple_evaluate with ``workdir`` as working directory."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        model = HFLM(
            pretrained=AutoModelForCausalLM.from_pretrained(model_dir),
            tokenizer=AutoTokenizer.from_pretrained(model_dir),
            backend="causal",
            batch_size=64,
            device="cpu",
        )
        output = lm_eval.simple_evaluate(
            model=model, tasks=[SUITE], task_manager=task_manager(), bootstrap_iters=1000
        )
    assert output is not None
    return output["results"]


@pytest.fixture(scope="module")
def reference_scores(
    reference_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """The reference model's suite results, evaluated from a directory outside the repo."""
    return _evaluate(reference_model_dir, tmp_path_factory.mktemp("elsewhere"))


@pytest.fixture(scope="module")
def untrained_scores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Suite results of the reference architecture after only two training steps."""
    model_dir = tmp_path_factory.mktemp("untrained")
    build_reference_model(model_dir, Recipe().shortened(steps=2))
    return _evaluate(model_dir, tmp_path_factory.mktemp("elsewhere"))


def test_committed_task_data_equals_a_fresh_generation(tmp_path: Path) -> None:
    write_task_data(tmp_path)
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == sorted(p.name for p in TASKS_DIR.glob("*.jsonl"))
    for name in generated:
        assert (TASKS_DIR / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_task_sizes_and_chance_level() -> None:
    sizes = {}
    for task in LOCAL_TASKS:
        lines = (TASKS_DIR / f"{task}.jsonl").read_text().splitlines()
        sizes[task] = len(lines)
        for doc in map(json.loads, lines):
            if task in MULTIPLE_CHOICE:  # four distinct choices: chance is 0.25
                assert len(set(doc["choices"])) == len(doc["choices"]) == 4
    assert 200 <= sizes["greenprune_facts"] <= 300
    assert 200 <= sizes["greenprune_arith"] <= 300
    assert sizes["greenprune_heldout"] == 50


def test_materialised_configs_point_at_the_shipped_data(tmp_path: Path) -> None:
    folder = materialised_tasks_dir(tmp_path)
    assert materialised_tasks_dir(tmp_path) == folder
    for task in LOCAL_TASKS:
        config = yaml.safe_load((folder / f"{task}.yaml").read_text())
        data_file = Path(config["dataset_kwargs"]["data_files"]["test"])
        assert data_file.is_absolute()
        assert data_file == TASKS_DIR / f"{task}.jsonl"
    assert (folder / f"{SUITE}.yaml").is_file()


def test_task_manager_indexes_local_and_extra_tasks(tmp_path: Path) -> None:
    extra = tmp_path / "mine"
    extra.mkdir()
    config = yaml.safe_load((TASKS_DIR / "greenprune_facts.yaml").read_text())
    config["task"] = "my_own_task"
    (extra / "mine.yaml").write_text(yaml.safe_dump(config))
    names = set(task_manager(extra_paths=[extra]).all_tasks)
    assert {*LOCAL_TASKS, SUITE, "my_own_task"} <= names


# The model is deterministic, so the spread that matters is that of the question sample:
# lm-eval's stderr is the standard error of the mean over documents. Requiring the score
# minus two standard errors to clear the bar means the model clears it for the population of
# such questions (about 97.5% one-sided), not just for this particular draw.
@pytest.mark.parametrize(("task", "bar"), [("greenprune_facts", 0.8), ("greenprune_arith", 0.6)])
def test_reference_model_clears_the_bar(
    reference_scores: dict[str, dict[str, Any]], task: str, bar: float
) -> None:
    result = reference_scores[task]
    assert result["acc,none"] - 2 * result["acc_stderr,none"] > bar, result


def test_untrained_model_is_near_chance_and_more_perplexed(
    reference_scores: dict[str, dict[str, Any]], untrained_scores: dict[str, dict[str, Any]]
) -> None:
    for task in MULTIPLE_CHOICE:
        untrained = untrained_scores[task]
        # Chance is 0.25; three standard errors leave room for a lucky draw.
        assert untrained["acc,none"] < 0.25 + 3 * untrained["acc_stderr,none"], untrained
    trained_ppl = reference_scores["greenprune_heldout"]["word_perplexity,none"]
    untrained_ppl = untrained_scores["greenprune_heldout"]["word_perplexity,none"]
    assert 1.0 < trained_ppl < untrained_ppl / 10
