"""The views the app draws: points per configuration and task, their front, and comparisons.

Runs are recorded in a real store; the expected figures follow from the runs here.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from greenprune.core import findings, verdicts
from results_service.store import ResultsStore, ViewFilter
from tests import samples

SPREAD = 0.05
"""``samples.energy_report`` intervals are the median ± 5%."""

# (checkpoint or "" for the base model, ratio, task, accuracy, net joules), one eval run each.
STUDY = [
    ("", 0.0, "a", 0.8, 100.0),
    ("", 0.0, "b", 0.6, 50.0),
    ("c50", 0.5, "a", 0.6, 60.0),
    ("c50", 0.5, "b", 0.5, 30.0),
    ("c50", 0.5, "b", 0.3, 40.0),  # a repeat of the same checkpoint and task
    ("c50", 0.5, "only-pruned", 0.1, 10.0),
]


def _record(store: ResultsStore, study: list[tuple[str, float, str, float, float]]) -> None:
    checkpoints = {(c, r) for c, r, *_ in study if c}
    for checkpoint, ratio in sorted(checkpoints):
        store.record_prune_run(
            samples.prune_run(
                f"prune-{checkpoint}",
                model="m",
                ratio=ratio,
                checkpoint_id=checkpoint,
                experiment="e",
            )
        )
    store.record_eval_runs(
        [
            samples.eval_run(
                f"eval-{index}",
                task=task,
                metrics={"acc": accuracy},
                net_joules=joules,
                stderr=0.02,
                items=samples.nested_items(accuracy, 200),
                model="m",
                checkpoint_id=checkpoint,
                experiment="e",
            )
            for index, (checkpoint, _, task, accuracy, joules) in enumerate(study)
        ]
    )


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    with ResultsStore(tmp_path_factory.mktemp("tradeoff") / "r.duckdb") as store:
        _record(store, STUDY)
        return {
            view: store.query_view(view, ViewFilter()).to_pandas()
            for view in ("tradeoff", "comparisons", "pareto_front")
        }


def test_task_points_average_repeats_and_shrink_the_stderr(views: dict) -> None:
    points = views["tradeoff"]
    repeated = points[(points["checkpoint_id"] == "c50") & (points["task"] == "b")].iloc[0]
    assert repeated["accuracy"] == pytest.approx(0.4)
    assert repeated["energy"] == pytest.approx(35.0)
    assert repeated["energy_measure"] == "net_joules"
    # The stderr of a mean of n runs with stderr s is s / sqrt(n).
    assert repeated["accuracy_stderr"] == pytest.approx(0.02 / math.sqrt(2))


def test_points_over_tasks_mean_accuracy_and_sum_energy(views: dict) -> None:
    combined = views["tradeoff"][views["tradeoff"]["task"].isna()]
    pruned = combined[combined["checkpoint_id"] == "c50"].iloc[0]
    base = combined[combined["checkpoint_id"].isna()].iloc[0]
    assert pruned["accuracy"] == pytest.approx((0.6 + 0.4 + 0.1) / 3)
    assert pruned["energy"] == pytest.approx(60.0 + 35.0 + 10.0)
    assert pruned["energy_low"] == pytest.approx((60.0 + 35.0 + 10.0) * (1 - SPREAD))
    assert base["task_set"] == "a,b" and base["tasks"] == 2
    assert base["accuracy_stderr"] == pytest.approx(math.sqrt(2 * 0.02**2) / 2)
    assert base["is_baseline"] and not pruned["is_baseline"]


def test_comparisons_with_the_baseline_use_the_shared_tasks(views: dict) -> None:
    rows = views["comparisons"]
    against = rows[rows["is_baseline_a"] & rows["task"].isna()].iloc[0]
    assert against["checkpoint_b"] == "c50" and against["tasks"] == 2
    assert against["value_a"] == pytest.approx(0.7) and against["value_b"] == pytest.approx(0.5)
    base, pruned = 150.0, 95.0
    assert against["energy_change"] == pytest.approx(pruned / base - 1)
    assert against["energy_change_low"] == pytest.approx(
        pruned * (1 - SPREAD) / (base * (1 + SPREAD)) - 1
    )
    assert against["energy_change_high"] == pytest.approx(
        pruned * (1 + SPREAD) / (base * (1 - SPREAD)) - 1
    )
    # Summed net energy of eval runs (not interleaved): an interval, no verdict.
    assert pd.isna(against["energy_change_verdict"])
    assert against["energy_change_text"].endswith(f"({findings.NO_VERDICT})")
    # Accuracy paired by document over both tasks (the latest run of each): 40 + 60 of 400
    # documents fewer right.
    assert against["accuracy_change"] == pytest.approx(-0.25)
    assert against["accuracy_change_verdict"] == verdicts.LOWER
    assert against["accuracy_change_text"].startswith("lower: \u221225.0 pt [")
    assert against["accuracy_change_family"] == verdicts.SECONDARY
    per_task = rows[(rows["checkpoint_b"] == "c50") & rows["is_baseline_a"] & rows["task"].notna()]
    by_task = per_task.set_index("task")
    assert by_task.loc["a", "accuracy_change"] == pytest.approx(0.6 - 0.8)
    assert by_task.loc["b", "energy_change"] == pytest.approx(35.0 / 50.0 - 1)
    assert "only-pruned" not in by_task.index
    # b against a, and a against b: both directions are rows.
    back = rows[(rows["checkpoint_a"] == "c50") & rows["task"].isna()].iloc[0]
    assert back["accuracy_change"] == pytest.approx(0.25)
    assert back["accuracy_change_verdict"] == verdicts.HIGHER
    assert back["accuracy_change_low"] == pytest.approx(-against["accuracy_change_high"])


def test_no_baseline_means_no_comparison_with_one(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "r.duckdb") as store:
        _record(store, [row for row in STUDY if row[0]])
        rows = store.query_view("comparisons").to_pandas()
        configurations = store.query_view("configurations").to_pandas()
    assert not configurations["is_baseline"].any()
    assert rows.empty or not rows["is_baseline_a"].any()


def test_a_front_step_that_is_not_distinct_is_marked(tmp_path: Path) -> None:
    # Three points on one front: base (cheapest), "near" (a hair more accurate and costlier:
    # one document of 200), "far" (clearly more accurate and costlier).
    study = [
        ("", 0.0, "a", 0.50, 100.0),
        ("near", 0.1, "a", 0.505, 101.0),
        ("far", 0.2, "a", 0.90, 300.0),
    ]
    with ResultsStore(tmp_path / "r.duckdb") as store:
        _record(store, study)
        front = store.query_view("pareto_front").to_pandas()
        points = store.query_view("tradeoff").to_pandas()
    front = front.assign(checkpoint_id=front["checkpoint_id"].fillna("base")).set_index(
        "checkpoint_id"
    )
    assert set(front.index) == {"base", "near", "far"}
    assert pd.isna(front.loc["base", "step_distinct"])  # the cheapest has no neighbour
    assert pd.isna(front.loc["near", "neighbour_checkpoint_id"])  # the base model
    assert front.loc["near", "step_distinct"] is False or not front.loc["near", "step_distinct"]
    assert front.loc["near", "accuracy_change_from_neighbour_verdict"] == verdicts.INCONCLUSIVE
    assert front.loc["near", "accuracy_change_from_neighbour_text"].startswith("inconclusive: ")
    assert front.loc["far", "neighbour_checkpoint_id"] == "near"
    assert front.loc["far", "accuracy_change_from_neighbour_verdict"] == verdicts.HIGHER
    # Net energy of eval runs has no verdict, so whether the step is distinct stays open.
    assert pd.isna(front.loc["far", "step_distinct"])
    assert (front["step_family"].dropna() == verdicts.FRONT).all()
    assert (front["step_family_size"].dropna() == 2).all()  # two accuracy steps (energy: none)
    per_task = points[points["task"] == "a"].set_index("checkpoint_id")
    assert per_task["on_front"].all()
    verdicts_of = per_task.loc[["near", "far"], "accuracy_change_from_neighbour_verdict"]
    assert list(verdicts_of) == [verdicts.INCONCLUSIVE, verdicts.HIGHER]
