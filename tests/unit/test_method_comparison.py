"""Compression methods of equal size, side by side: paired energy and accuracy differences."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.core import verdicts
from results_service.comparisons import METHOD_COMPARISON_COLUMNS
from results_service.store import ResultsStore
from tests import samples

DRIFT = (1.0, 1.05, 1.1, 1.15, 1.2, 1.25)
"""A drift common to every checkpoint of a round."""


def _method_comparison(
    tmp_path: Path, depth_factor: float, depth_correct: int, view: str = "method_comparison"
) -> pd.DataFrame:
    families = {"base": ("baseline", 0.0), "w25": ("width", 0.25), "d25": ("depth", 0.25)}
    correct = {"base": 180, "w25": 100, "d25": depth_correct}
    with ResultsStore(tmp_path / "methods.duckdb") as store:
        for checkpoint, (family, ratio) in families.items():
            run = samples.prune_run(
                f"prune-{checkpoint}",
                model="m",
                ratio=ratio,
                checkpoint_id=checkpoint,
                experiment="methods",
            )
            run.result.method_family = family
            store.record_prune_run(run)
            store.record_eval_run(
                samples.eval_run(
                    f"run-{checkpoint}",
                    task="facts",
                    metrics={"acc": correct[checkpoint] / 200},
                    net_joules=1.0,
                    checkpoint_id=checkpoint,
                    experiment="methods",
                    items=samples.nested_items(correct[checkpoint] / 200, 200),
                )
            )
        costs = {"base": 1e-3, "w25": 0.8e-3, "d25": 0.8e-3 * depth_factor}
        profile = samples.profile_run(
            "profile-1",
            model="m",
            costs=costs,
            experiment="methods",
            rounds=len(DRIFT),
            batch_sizes=(32,),
            phases=("prefill",),
            round_noise=DRIFT,
        )
        skipped = {"base": 0.0, "w25": 0.25, "d25": 0.3}
        for point in profile.result.points:
            point.kernel_path = "dense float32"
            point.macs_skipped_share = skipped[point.checkpoint_id]
        store.record_profile_run(profile)
        return store.query_view(view).to_pandas()


def test_depth_cheaper_and_more_accurate_than_width_at_the_same_ratio_is_a_finding(
    tmp_path: Path,
) -> None:
    table = _method_comparison(tmp_path, depth_factor=0.7, depth_correct=170)
    assert len(table) == 2  # one energy pair, one accuracy pair; the baseline is not a method
    energy = table[table["kind"] == "energy"].iloc[0]
    assert (energy["method_a"], energy["method_b"]) == ("depth", "width")
    assert energy["verdict"] == verdicts.HIGHER and energy["estimate"] > 0.3  # width: ~43% more
    accuracy = table[table["kind"] == "accuracy"].iloc[0]
    assert accuracy["verdict"] == verdicts.LOWER and accuracy["high"] < 0  # width: 70 fewer right
    assert (table["family"] == verdicts.PAIRWISE).all() and (table["family_size"] == 2).all()


def test_each_side_of_an_energy_pair_carries_its_findings_realization(tmp_path: Path) -> None:
    table = _method_comparison(tmp_path / "a", depth_factor=0.5, depth_correct=160)
    found = _method_comparison(tmp_path / "b", 0.5, 160, view="findings")
    energy = found[found["kind"] == "energy"].set_index("checkpoint_id")
    (pair,) = table[table["kind"] == "energy"].to_dict("records")
    for side in ("a", "b"):
        finding = energy.loc[pair[f"checkpoint_{side}"]]
        # width saves 20% for 25% of MACs skipped (0.8), depth 60% for 30% (2.0): not 1 or equal
        assert pair[f"realization_{side}"] == finding["realization_ratio"]
        assert pair[f"kernel_path_{side}"] == "dense float32"
    assert {pair["method_a"], pair["method_b"]} == {"width", "depth"}
    assert pair["realization_a"] != pair["realization_b"]
    realized = {pair["method_a"]: pair["realization_a"], pair["method_b"]: pair["realization_b"]}
    assert realized["width"] == pytest.approx(0.2 / 0.25, rel=0.05)
    assert realized["depth"] == pytest.approx(0.6 / 0.3, rel=0.05)


def test_methods_that_measure_alike_are_never_lower_or_higher(tmp_path: Path) -> None:
    table = _method_comparison(tmp_path, depth_factor=1.0, depth_correct=100)
    assert len(table) == 2
    assert not table["verdict"].isin([verdicts.LOWER, verdicts.HIGHER]).any()
    assert all(
        text.startswith(f"{word}: ")
        for word, text in zip(table["verdict"], table["text"], strict=True)
    )


def test_the_store_serves_the_view(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.duckdb")
    table = store.query_view("method_comparison")
    assert [column.name for column in table.columns] == list(METHOD_COMPARISON_COLUMNS)


def test_sparsity_pairs_with_width_at_the_same_share_and_shows_its_kernel_path(
    tmp_path: Path,
) -> None:
    with ResultsStore(tmp_path / "sparse.duckdb") as store:
        for checkpoint, family, ratio in (("base", "baseline", 0.0), ("w50", "width", 0.5)):
            run = samples.prune_run(
                f"prune-{checkpoint}", model="m", ratio=ratio, checkpoint_id=checkpoint
            )
            run.result.method_family = family
            run.experiment = "methods"
            store.record_prune_run(run)
        sparse = samples.prune_run("prune-s", model="m", ratio=0.0, checkpoint_id="s24")
        sparse.experiment = "methods"
        sparse.spec.sparsity = pruning_pb2.SPARSITY_WANDA
        sparse.spec.sparsity_pattern = pruning_pb2.SPARSITY_PATTERN_2_4
        sparse.spec.sparsity_ratio = 0.5
        sparse.result.method_family = "wanda-2:4"
        sparse.result.sparsity = "wanda-2:4"
        sparse.result.zeroed_share = 0.5
        sparse.result.cpu_kernel.name = "dense float32"
        sparse.result.cpu_kernel.expectation = "dense kernels: no saving expected"
        store.record_prune_run(sparse)
        for checkpoint, correct in (("base", 180), ("w50", 100), ("s24", 150)):
            store.record_eval_run(
                samples.eval_run(
                    f"run-{checkpoint}",
                    task="facts",
                    metrics={"acc": correct / 200},
                    net_joules=1.0,
                    checkpoint_id=checkpoint,
                    experiment="methods",
                    items=samples.nested_items(correct / 200, 200),
                )
            )
        configurations = store.query_view("configurations").to_pandas()
        table = store.query_view("method_comparison").to_pandas()
    row = configurations.set_index("checkpoint_id").loc["s24"]
    assert (row["ratio"], row["achieved_ratio"], row["zeroed_share"]) == (0.5, 0.5, 0.5)
    assert row["parameters_removed"] == 0  # zeroed weights are still stored
    assert (row["method_family"], row["cpu_kernel"]) == ("wanda-2:4", "dense float32")
    (pair,) = table[table["kind"] == "accuracy"].itertuples()
    assert {pair.method_a, pair.method_b} == {"wanda-2:4", "width"}
