"""Pruning the reference model costs accuracy on its own facts, measurably.

Needs the reference model (the session fixture ``reference_model_dir`` builds it into the
cache once, which takes minutes on a CPU) and the local lm-eval tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from greenprune.core.checkpoint import load_checkpoint
from greenprune.core.models import load_source_model
from pruning_service.pruner import PruneConfig, run_prune

REFERENCE = "reference:tiny-llama"
TASK = "greenprune_facts"


def facts_accuracy(model: Any, tokenizer: Any) -> tuple[float, float]:
    """Accuracy on greenprune_facts and its standard error, straight from lm-eval."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from eval_service.tasks import task_manager

    lm = HFLM(pretrained=model, tokenizer=tokenizer, backend="causal", batch_size=32)
    results = simple_evaluate(
        model=lm,
        tasks=[TASK],
        task_manager=task_manager(),
        bootstrap_iters=1000,
        log_samples=False,
        cache_requests=False,
    )
    metrics = results["results"][TASK]
    return float(metrics["acc,none"]), float(metrics["acc_stderr,none"])


@pytest.mark.timeout(900)
def test_pruning_the_reference_model_by_0_4_lowers_accuracy_beyond_the_stderr(
    reference_model_dir: Path, tmp_path: Path
) -> None:
    original, tokenizer = load_source_model(REFERENCE, tmp_path)
    accuracy_before, stderr_before = facts_accuracy(original, tokenizer)

    outcome = run_prune(
        PruneConfig(model=REFERENCE, method="taylor", ratio=0.4),
        checkpoints_dir=tmp_path / "checkpoints",
        checkpoint_id="reference-0.4",
        models_root=tmp_path,
    )
    pruned, pruned_tokenizer, manifest = load_checkpoint(outcome.path)
    accuracy_after, stderr_after = facts_accuracy(pruned, pruned_tokenizer)

    assert abs(manifest["achieved_ratio"] - 0.4) <= 0.03
    assert accuracy_before > 0.5, "the reference model should know its own world"
    assert accuracy_before - accuracy_after > max(stderr_before, stderr_after)
