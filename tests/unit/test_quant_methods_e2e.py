"""experiments/methods.yaml end to end through the local stack: every method gets its points.

Slow (a few minutes on 2 cores): the stack is started in a temporary GREENPRUNE_HOME on free
ports, the methods experiment runs with its own small limits, and every prune run in the
store carries its method family, while every checkpoint is in the energy profile.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenprune.client.plan import plan_experiment
from greenprune.client.spec import load_experiment
from tests.e2e.test_demo import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
pytest.importorskip("torchao")

ROOT = Path(__file__).resolve().parents[2]
METHODS = ROOT / "experiments" / "methods.yaml"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("methods")
    running = Stack(folder / "home", METHODS)
    build = running.cli("reference-model", "build", timeout=900)
    assert build.returncode == 0, build.stdout + build.stderr
    up = running.cli("up", timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield running
    finally:
        running.cli("down", timeout=120)


def test_methods_experiment_produces_every_method(stack: Stack) -> None:
    result = stack.cli("run", str(METHODS), "--no-progress", timeout=1500)
    if os.environ.get("GREENPRUNE_SHOW_TABLE"):
        print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    plan = plan_experiment(load_experiment(METHODS))
    prune_runs, eval_runs = stack.runs("methods")
    families = {run.result.method_family for run in prune_runs}
    assert {"baseline", "width", "depth", "int8", "width+int8"} <= families
    assert len(prune_runs) == len(plan.prune_steps)
    assert len(eval_runs) >= len(plan.eval_steps)
    depth = [run for run in prune_runs if run.result.method_family == "depth"]
    assert sorted(run.result.layers_after for run in depth) == [2, 3]
    quantized = [run for run in prune_runs if run.result.quantization_bits == 8]
    assert quantized and all(run.result.quantization_library for run in quantized)
