"""experiments/methods.yaml end to end through the local stack: every method gets its points.

The stack is started in a temporary GREENPRUNE_HOME on free ports, the methods experiment runs
with smaller evaluations and profile than the file's, and every variant's prune job carries its
method family.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from greenprune.client.plan import plan_experiment
from greenprune.client.spec import load_experiment
from tests.e2e.test_demo import SUCCEEDED, Stack, assert_cards_match_the_store

pytestmark = [pytest.mark.slow(minutes=6), pytest.mark.timeout(1800)]
pytest.importorskip("torchao")

ROOT = Path(__file__).resolve().parents[2]
METHODS = ROOT / "experiments" / "methods.yaml"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("methods")
    # experiments/methods.yaml with smaller evaluations and profile: the mechanics of every
    # method through the services, within a minute or two of jobs.
    methods = yaml.safe_load(METHODS.read_text())
    methods["pruning"]["ratios"] = [0.0, 0.5]  # the baseline and one compressed size
    methods["eval"].update(tasks=["greenprune_facts"], limit=16, idle_seconds=0, warmup_batches=0)
    methods["energy"].update(batch_sizes=[4], rounds=2, window_seconds=0.1, decode_tokens=2)
    experiment = folder / "methods.yaml"
    experiment.write_text(yaml.safe_dump(methods, sort_keys=False))
    running = Stack(folder / "home", experiment)
    build = running.cli("reference-model", "build", timeout=900)
    assert build.returncode == 0, build.stdout + build.stderr
    up = running.cli("up", timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield running
    finally:
        running.cli("down", timeout=120)


def test_methods_experiment_produces_every_method(stack: Stack) -> None:
    result = stack.cli("run", str(stack.experiment), "--no-progress", timeout=1500)
    if os.environ.get("GREENPRUNE_SHOW_TABLE"):
        print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    plan = plan_experiment(load_experiment(stack.experiment))
    jobs = [job for job in stack.prune_jobs() if job.status.state == SUCCEEDED]
    assert len(jobs) == len(plan.prune_steps)
    families = {job.result.method_family for job in jobs}
    assert {"baseline", "width", "depth", "int8", "width+int8"} <= families
    depth = [job for job in jobs if job.result.method_family == "depth"]
    assert [job.result.layers_after for job in depth] == [2]
    quantized = [job for job in jobs if job.result.quantization_bits == 8]
    assert quantized and all(job.result.quantization_library for job in quantized)
    # The store keeps one row per step (its columns for the new fields are the store's part).
    prune_runs, eval_runs = stack.runs("methods")
    assert len(prune_runs) == len(plan.prune_steps)
    assert len(eval_runs) >= len(plan.eval_steps)
    # Every checkpoint's model card: its header parses and its figures are the store's; every
    # compressed one carries its verdicts (the run rewrote the cards when it ended).
    assert_cards_match_the_store(stack, "methods")
