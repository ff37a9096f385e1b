"""Synthetic ResultsService records, for tests, benchmarks and demos of the app.

Nothing here is measured: the figures follow simple formulas so that a reader can predict every
view. Use these to fill a store, never to report results. ``v2_store`` and ``v2_runs`` give a
store written by the previous schema (``tests/data/results_store_v2``) and its runs.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
from google.protobuf import json_format

from greenprune.api.common.v1 import energy_pb2, layers_pb2
from greenprune.api.eval.v1 import eval_pb2
from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.api.results.v1 import results_pb2


def interval(median: float, spread: float = 0.05, count: int = 3) -> energy_pb2.Interval:
    """Returns an Interval of ``median`` +- ``spread`` (a fraction of the median)."""
    return energy_pb2.Interval(
        median=median,
        low=median * (1 - spread),
        high=median * (1 + spread),
        count=count,
        method="bootstrap-percentile-95",
    )


def energy_report(
    net_joules: float,
    *,
    tokens: int = 10_000,
    samples: int = 100,
    wall_seconds: float = 10.0,
    estimated: bool = True,
    repeats: int = 3,
) -> energy_pb2.EnergyReport:
    """Returns an EnergyReport whose headline (cpu) net energy is ``net_joules``.

    The cpu component is a ``rapl`` counter reading, or with ``estimated`` a
    ``cpu-load-estimate``. The RAM component draws a constant 20 W, as CodeCarbon estimates it
    on a machine without power counters.
    """
    method = "cpu-load-estimate" if estimated else "rapl"
    ram_gross = 20.0 * wall_seconds
    idle_cpu_watts = 1.0
    cpu_gross = net_joules + idle_cpu_watts * wall_seconds
    components = [
        energy_pb2.ComponentEnergy(
            component="cpu",
            method=method,
            estimated=estimated,
            gross_joules=interval(cpu_gross, count=repeats),
            net_joules=interval(net_joules, count=repeats),
            idle_watts=idle_cpu_watts,
        ),
        energy_pb2.ComponentEnergy(
            component="ram",
            method="constant-estimate",
            estimated=True,
            gross_joules=interval(ram_gross, spread=0.0, count=repeats),
            net_joules=interval(0.0, spread=0.0, count=repeats),
            idle_watts=20.0,
        ),
    ]
    return energy_pb2.EnergyReport(
        components=components,
        headline_component="cpu",
        net_joules=interval(net_joules, count=repeats),
        gross_joules=interval(cpu_gross, count=repeats),
        wall_seconds=interval(wall_seconds, count=repeats),
        tokens_per_second=interval(tokens / wall_seconds, count=repeats),
        tokens=tokens,
        samples=samples,
        joules_per_token=net_joules / tokens,
        joules_per_sample=net_joules / samples,
        peak_rss_bytes=512 * 1024 * 1024,
        peak_cuda_bytes=0,
        device_name="cpu",
        hardware="synthetic 2-core CPU",
        gpu_shared=False,
        estimated=estimated,
        repeats=repeats,
        repeat_net_joules=[net_joules * 0.98, net_joules, net_joules * 1.03][:repeats],
        energy_method=method,
    )


def prune_run(
    request_id: str,
    *,
    model: str,
    ratio: float,
    checkpoint_id: str,
    experiment: str = "",
    parameters_before: int = 2_400_000,
    layers: int = 4,
    keep_first_layers: int = 1,
    keep_last_layers: int = 1,
) -> results_pb2.PruneRun:
    """Returns a PruneRun that removed ``ratio`` of the prunable parameters of the middle layers.

    Kept layers have 8 query heads, 2 key/value heads and an MLP width of 512.
    """
    prunable_before = parameters_before // 2
    prunable_after = round(prunable_before * (1 - ratio))
    shapes = []
    for index in range(layers):
        kept = index < keep_first_layers or index >= layers - keep_last_layers
        keep = 1.0 if kept else 1 - ratio
        shapes.append(
            layers_pb2.LayerShape(
                index=index,
                attention_heads=max(2, round(8 * keep)),
                key_value_heads=2,
                intermediate_size=round(512 * keep),
                kept=kept,
            )
        )
    parameters_after = parameters_before - (prunable_before - prunable_after)
    return results_pb2.PruneRun(
        request_id=request_id,
        experiment=experiment,
        job_name=f"pruneJobs/{request_id}",
        spec=pruning_pb2.PruneSpec(
            model=model,
            method=pruning_pb2.PRUNING_METHOD_TAYLOR,
            ratio=ratio,
            prune_attention_heads=True,
            prune_mlp=True,
            keep_first_layers=keep_first_layers,
            keep_last_layers=keep_last_layers,
            calibration=pruning_pb2.CalibrationSpec(samples=32, sequence_length=64, source="x"),
            seed=7,
        ),
        result=pruning_pb2.PruneResult(
            checkpoint_id=checkpoint_id,
            parameters_before=parameters_before,
            parameters_after=parameters_after,
            prunable_parameters_before=prunable_before,
            prunable_parameters_after=prunable_after,
            achieved_ratio=1 - prunable_after / prunable_before,
            macs_before=parameters_before * 64,
            macs_after=parameters_after * 64,
            bytes_on_disk=parameters_after * 4,
            layers=shapes,
            wall_seconds=3.0,
            energy=energy_report(30.0, tokens=2048, samples=32, wall_seconds=3.0, estimated=False),
            uniform=keep_first_layers == 0 and keep_last_layers == 0,
            content_hash=f"sha256:{request_id}",
            architecture="LlamaForCausalLM",
            versions={"torch": "2.13.0", "torch_pruning": "1.6.1"},
        ),
    )


def eval_run(
    request_id: str,
    *,
    task: str,
    metrics: Mapping[str, float],
    net_joules: float | None,
    model: str = "",
    checkpoint_id: str = "",
    experiment: str = "",
    samples: int = 100,
    stderr: float | None = 0.01,
    items: Mapping[int, float] | None = None,
    item_metric: str = "acc",
) -> results_pb2.EvalRun:
    """Returns an EvalRun of one task; ``net_joules`` None leaves the energy report out.

    ``items`` maps document ids to their ``item_metric`` score (``TaskResult.items``).
    """
    spec = eval_pb2.EvalSpec(tasks=[task], batch_size=8, repeats=3, device="cpu", seed=1)
    if checkpoint_id:
        spec.checkpoint_id = checkpoint_id
    else:
        spec.model = model
    result = eval_pb2.TaskResult(
        task=task,
        samples=samples,
        metrics=[
            eval_pb2.MetricValue(
                task=task,
                metric=name,
                value=value,
                stderr=None if "perplexity" in name else stderr,
                samples=samples,
            )
            for name, value in metrics.items()
        ],
        items=[
            eval_pb2.ItemScore(doc_id=doc, metric=item_metric, value=value)
            for doc, value in (items or {}).items()
        ],
    )
    if net_joules is not None:
        result.energy.CopyFrom(energy_report(net_joules, samples=samples))
    return results_pb2.EvalRun(
        request_id=request_id,
        experiment=experiment,
        checkpoint_id=checkpoint_id,
        model=model,
        spec=spec,
        result=result,
        versions={"lm_eval": "0.4.13", "codecarbon": "3.3.2"},
        job_name=f"evalJobs/{request_id}",
    )


def demo_study(
    experiment: str = "demo",
    models: Sequence[str] = ("reference:tiny-llama",),
    ratios: Sequence[float] = (0.0, 0.2, 0.4),
    tasks: Sequence[str] = ("greenprune_facts", "greenprune_arith"),
    perplexity_task: str | None = "greenprune_text",
) -> tuple[list[results_pb2.PruneRun], list[results_pb2.EvalRun]]:
    """Returns a small sweep: one prune run per model and ratio, one eval run per task.

    Accuracy falls as 0.9 - 0.5 x ratio (acc_norm 0.02 lower), net energy as 100 x
    (1 - 0.5 x ratio) J, and the perplexity task's word_perplexity rises as 10 x (1 + ratio).
    """
    prune_runs: list[results_pb2.PruneRun] = []
    eval_runs: list[results_pb2.EvalRun] = []
    for model_index, model in enumerate(models):
        for ratio in ratios:
            checkpoint = f"ckpt-{model_index}-{round(ratio * 100):03d}"
            prune_runs.append(
                prune_run(
                    f"{experiment}-prune-{checkpoint}",
                    model=model,
                    ratio=ratio,
                    checkpoint_id=checkpoint,
                    experiment=experiment,
                )
            )
            for task in tasks:
                eval_runs.append(
                    eval_run(
                        f"{experiment}-eval-{checkpoint}-{task}",
                        task=task,
                        metrics={"acc": 0.9 - 0.5 * ratio, "acc_norm": 0.88 - 0.5 * ratio},
                        net_joules=100.0 * (1 - 0.5 * ratio),
                        items=nested_items(0.9 - 0.5 * ratio, 100),
                        model=model,
                        checkpoint_id=checkpoint,
                        experiment=experiment,
                    )
                )
            if perplexity_task:
                eval_runs.append(
                    eval_run(
                        f"{experiment}-eval-{checkpoint}-{perplexity_task}",
                        task=perplexity_task,
                        metrics={"word_perplexity": 10.0 * (1 + ratio), "bits_per_byte": 1.5},
                        net_joules=50.0 * (1 - 0.5 * ratio),
                        model=model,
                        checkpoint_id=checkpoint,
                        experiment=experiment,
                    )
                )
    return prune_runs, eval_runs


def nested_items(accuracy: float, documents: int) -> dict[int, float]:
    """Per-document scores with the given accuracy: documents ``0 .. accuracy x n - 1`` right.

    Lower accuracies get nested subsets, so a pruned model loses documents, never gains them.
    """
    right = round(accuracy * documents)
    return {doc: 1.0 if doc < right else 0.0 for doc in range(documents)}


def profile_run(
    request_id: str,
    *,
    model: str,
    costs: Mapping[str, float],
    experiment: str = "",
    rounds: int = 6,
    batch_sizes: Sequence[int] = (1, 8),
    phases: Sequence[str] = ("prefill", "decode"),
    prefill_tokens: int = 64,
    drift: float = 0.0,
    round_noise: Sequence[float] | None = None,
    seed: int = 0,
) -> results_pb2.ProfileRun:
    """Returns a ProfileRun measured in interleaved rounds.

    Args:
        request_id: The run's id.
        model: The base model.
        costs: Each checkpoint's net joules per token at batch 1 (it falls as 1/sqrt(batch)).
        experiment: The experiment.
        rounds: The rounds; each measures every checkpoint once in a shuffled order.
        batch_sizes: The batch sizes.
        phases: The phases.
        prefill_tokens: Tokens per sequence of a prefill window (decode: one per step).
        drift: The relative rise of every reading per window measured (a warming machine).
        round_noise: A factor per round shared by every window of that round (common drift).
        seed: Seed of the shuffled order of each round.
    """
    order_rng = random.Random(seed)
    points: list[eval_pb2.ProfilePoint] = []
    clock = 0
    for round_index in range(rounds):
        order = list(costs)
        order_rng.shuffle(order)
        common = round_noise[round_index] if round_noise else 1.0
        for position, checkpoint in enumerate(order):
            for phase in phases:
                for batch in batch_sizes:
                    iterations = 8
                    per_step = prefill_tokens if phase == "prefill" else 1
                    tokens = batch * per_step * iterations
                    joules = costs[checkpoint] / batch**0.5 * tokens * common * (1 + drift * clock)
                    clock += 1
                    points.append(
                        eval_pb2.ProfilePoint(
                            checkpoint_id=checkpoint,
                            phase=phase,
                            batch_size=batch,
                            round=round_index,
                            position=position,
                            net_joules=joules,
                            gross_joules=joules + 2.0,
                            wall_seconds=joules / 10.0,
                            tokens=tokens,
                            iterations=iterations,
                        )
                    )
    return results_pb2.ProfileRun(
        request_id=request_id,
        experiment=experiment,
        model=model,
        spec=eval_pb2.EvalSpec(
            model=model,
            device="cpu",
            seed=seed,
            profile=eval_pb2.ProfileSpec(
                checkpoint_ids=list(costs),
                batch_sizes=list(batch_sizes),
                prefill_tokens=prefill_tokens,
                decode_tokens=8,
                rounds=rounds,
            ),
        ),
        result=eval_pb2.ProfileResult(
            points=points,
            energy_method="rapl",
            estimated=False,
            hardware="test CPU",
            device_name="cpu",
            idle_watts=2.0,
            prefill_tokens=prefill_tokens,
            decode_tokens=8,
        ),
        job_name=f"evalJobs/{request_id}",
    )


def demo_profile(
    experiment: str = "demo",
    model: str = "reference:tiny-llama",
    ratios: Sequence[float] = (0.0, 0.2, 0.4),
    model_index: int = 0,
) -> results_pb2.ProfileRun:
    """Returns the profile of ``demo_study``'s checkpoints.

    J/token falls as 1 - 0.5 x ratio, with a round-to-round factor common to every checkpoint
    of a round.
    """
    costs = {
        f"ckpt-{model_index}-{round(ratio * 100):03d}": 1e-3 * (1 - 0.5 * ratio) for ratio in ratios
    }
    return profile_run(
        f"{experiment}-profile-{model_index}",
        model=model,
        costs=costs,
        experiment=experiment,
        round_noise=(1.0, 1.1, 0.95, 1.2, 1.05, 0.9),
    )


V2_STORE = Path(__file__).resolve().parent / "data" / "results_store_v2"
"""A store of schema version 2 as DuckDB's EXPORT DATABASE wrote it (see its README.md)."""

_RUN_TYPES = {
    "prune_runs": results_pb2.PruneRun,
    "eval_runs": results_pb2.EvalRun,
    "profile_runs": results_pb2.ProfileRun,
}


def v2_store(path: Path) -> Path:
    """Writes the version-2 store of ``V2_STORE`` to the DuckDB file ``path`` and returns it."""
    folder = path.parent / f"{path.stem}-export"
    shutil.copytree(V2_STORE, folder)
    connection = duckdb.connect(str(path))
    try:
        connection.execute(f"IMPORT DATABASE '{folder}'")
    finally:
        connection.close()
    return path


def v2_runs() -> dict[str, list]:
    """The runs the version-2 store holds, as the messages recorded, by table."""
    runs: dict[str, list] = {name: [] for name in _RUN_TYPES}
    for line in (V2_STORE / "runs.jsonl").read_text().splitlines():
        entry = json.loads(line)
        message = json_format.ParseDict(entry["run"], _RUN_TYPES[entry["kind"]]())
        runs[entry["kind"]].append(message)
    return runs
