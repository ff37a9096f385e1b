"""The findings rules on real DuckDB stores: paired intervals that tell findings from noise.

A/A comparisons must never read lower or higher, a consistent 20% saving must read lower, and
a meter that drifts over time must not make the configuration measured first look cheaper.
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from greenprune.api.common.v1.energy_pb2 import Interval
from greenprune.api.eval.v1 import eval_pb2
from greenprune.api.results.v1 import results_pb2
from greenprune.core import findings, verdicts
from results_service.migrations import LATEST_VERSION
from results_service.store import ResultsStore, ViewFilter
from tests import samples

MODEL = "reference:tiny-llama"
BASE, PRUNED = "ckpt-base", "ckpt-pruned"
ROUND_NOISE = (1.0, 1.15, 0.9, 1.3, 1.05, 0.85, 1.2, 0.95)


def _store(tmp_path: Path, experiment: str, pruned_ratio: float = 0.2) -> ResultsStore:
    store = ResultsStore(tmp_path / f"{experiment}.duckdb")
    for request_id, ratio, checkpoint in (
        ("prune-base", 0.0, BASE),
        ("prune-pruned", pruned_ratio, PRUNED),
    ):
        store.record_prune_run(
            samples.prune_run(
                request_id,
                model=MODEL,
                ratio=ratio,
                checkpoint_id=checkpoint,
                experiment=experiment,
            )
        )
    return store


def _record_evals(
    store: ResultsStore, experiment: str, base_items: dict, pruned_items: dict
) -> None:
    runs = [
        samples.eval_run(
            f"eval-{checkpoint}",
            task="greenprune_facts",
            metrics={"acc": sum(items.values()) / len(items)},
            net_joules=10.0,
            model=MODEL,
            checkpoint_id=checkpoint,
            experiment=experiment,
            items=items,
        )
        for checkpoint, items in ((BASE, base_items), (PRUNED, pruned_items))
    ]
    store.record_eval_runs(runs)


def _profile(name: str, pruned_cost: float) -> results_pb2.ProfileRun:
    """A profile of the baseline (1 mJ/token) and the pruned checkpoint, with common drift."""
    return samples.profile_run(
        f"profile-{name}",
        model=MODEL,
        costs={BASE: 1e-3, PRUNED: pruned_cost},
        experiment=name,
        rounds=len(ROUND_NOISE),
        round_noise=ROUND_NOISE,
    )


def _findings(store: ResultsStore, kind: str) -> pd.DataFrame:
    frame = store.query_view("findings").to_pandas()
    return frame[frame["kind"] == kind].reset_index(drop=True)


DECIDED = (verdicts.LOWER, verdicts.HIGHER)


def test_a_a_differences_are_never_lower_or_higher(tmp_path: Path) -> None:
    with _store(tmp_path, "aa") as store:
        assert store.record_profile_run(_profile("aa", 1e-3))
        items = samples.nested_items(0.8, 200)
        _record_evals(store, "aa", items, dict(items))
        energy = _findings(store, "energy")
        accuracy = _findings(store, "accuracy")
    assert len(energy) == 4 and len(accuracy) == 2  # the task, and the mean over tasks
    for frame in (energy, accuracy):
        assert (frame["low"] <= 0).all() and (frame["high"] >= 0).all()
        assert not frame["verdict"].isin(DECIDED).any()
        assert all(
            text.startswith(f"{word}: ")
            for word, text in zip(frame["verdict"], frame["text"], strict=True)
        )
    # Identical rounds: equivalent within the 3% margin; identical documents: the score
    # interval keeps its width (not [0, 0]).
    assert (energy["verdict"] == verdicts.EQUIVALENT).all()
    assert accuracy.loc[0, "count"] == 200 and accuracy.loc[0, "method"] == "paired-score-tango"
    assert accuracy.loc[0, "low"] < 0 < accuracy.loc[0, "high"]
    assert set(energy["family"]) == {verdicts.PRIMARY, verdicts.SECONDARY}
    primary = pd.concat([energy, accuracy])
    primary = primary[primary["family"] == verdicts.PRIMARY]
    # Primary: energy at the largest prefill batch, and the task's headline accuracy.
    assert len(primary) == 2 and (primary["family_size"] == 2).all()
    assert (primary["adjustment"] == "holm").all() and (primary["margin"].notna()).all()


def test_a_consistent_saving_is_lower_despite_common_drift(tmp_path: Path) -> None:
    with _store(tmp_path, "saving") as store:
        store.record_profile_run(_profile("saving", 0.8e-3))
        _record_evals(
            store, "saving", samples.nested_items(0.9, 200), samples.nested_items(0.7, 200)
        )
        energy = _findings(store, "energy")
        accuracy = _findings(store, "accuracy")
        profile_view = store.query_view("profile").to_pandas()
    assert energy["estimate"].to_numpy() == pytest.approx(-0.2, abs=0.02)
    assert (energy["high"] < 0).all() and (energy["verdict"] == verdicts.LOWER).all()
    assert energy["text"].str.match(r"^lower: \u2212\d+\.\d% \[").all()
    assert energy["parameters_removed"].notna().all()
    row = accuracy.iloc[0]
    assert row["estimate"] == pytest.approx(-0.2)
    assert row["high"] < 0 and row["verdict"] == verdicts.LOWER
    assert row["method"] == "paired-score-tango"
    # The baseline's net energy per window lies above idle; every measure has an interval.
    assert profile_view["above_idle"].all()
    assert (profile_view["joules_per_token_low"] <= profile_view["joules_per_token"]).all()


def _drifting_points(order: str) -> list[eval_pb2.ProfilePoint]:
    """Two identical checkpoints on a meter whose readings rise 2% per window.

    ``order`` "interleaved" measures both in every round in a shuffled order; "sequential"
    measures every round of the baseline first, then the other's.
    """
    import random

    rng = random.Random(3)
    rounds = 10
    if order == "interleaved":
        schedule = []
        for r in range(rounds):
            pair = [BASE, PRUNED]
            rng.shuffle(pair)
            schedule += [(r, position, c) for position, c in enumerate(pair)]
    else:
        schedule = [(r, 0, c) for c in (BASE, PRUNED) for r in range(rounds)]
    return [
        eval_pb2.ProfilePoint(
            checkpoint_id=checkpoint,
            phase="prefill",
            batch_size=8,
            round=r,
            position=position,
            net_joules=5.0 * (1 + 0.02 * clock),
            gross_joules=6.0 * (1 + 0.02 * clock),
            wall_seconds=1.0,
            tokens=5000,
            iterations=4,
        )
        for clock, (r, position, checkpoint) in enumerate(schedule)
    ]


@pytest.mark.parametrize("order", ["interleaved", "sequential"])
def test_drift_does_not_make_the_first_measured_look_cheaper(tmp_path: Path, order: str) -> None:
    with _store(tmp_path, order) as store:
        run = results_pb2.ProfileRun(
            request_id=f"profile-{order}",
            experiment=order,
            model=MODEL,
            result=eval_pb2.ProfileResult(points=_drifting_points(order), energy_method="rapl"),
        )
        store.record_profile_run(run)
        row = _findings(store, "energy").iloc[0]
    if order == "interleaved":
        assert abs(row["estimate"]) < 0.02
        assert row["verdict"] not in DECIDED
        assert row["low"] < 0 < row["high"]
    else:  # the contrast: measured one after the other, drift reads as a 20% "increase"
        assert row["estimate"] > 0.15 and row["verdict"] == verdicts.HIGHER


def test_net_energy_at_idle_is_said_so(tmp_path: Path) -> None:
    points = _drifting_points("interleaved")
    for index, point in enumerate(points):
        point.net_joules = (-0.5 if index % 2 else 0.5) * (1 + index / 100)
    with _store(tmp_path, "idle") as store:
        run = results_pb2.ProfileRun(
            request_id="profile-idle",
            experiment="idle",
            model=MODEL,
            result=eval_pb2.ProfileResult(points=points),
        )
        store.record_profile_run(run)
        row = _findings(store, "energy").iloc[0]
        profile = store.query_view("profile").to_pandas()
    assert row["verdict"] == verdicts.INCONCLUSIVE and findings.NOT_ABOVE_IDLE in row["text"]
    assert not profile["above_idle"].any()
    assert findings.describe_energy(0.1, -0.04, 0.3).startswith(findings.NOT_ABOVE_IDLE)


def test_record_profile_run_is_idempotent(tmp_path: Path) -> None:
    with _store(tmp_path, "idem") as store:
        run = samples.demo_profile(experiment="idem")
        assert store.record_profile_run(run)
        changed = results_pb2.ProfileRun()
        changed.CopyFrom(run)
        changed.result.points[0].net_joules = 99.0
        assert not store.record_profile_run(changed)
        stored = store.get_profile_run(run.request_id)
    assert stored.result == run.result
    assert stored.spec == run.spec


def test_a_store_written_before_profiles_migrates_and_says_no_paired_data(
    tmp_path: Path,
) -> None:
    # A store of schema version 1: the version-2 store without the tables version 2 added.
    path = samples.v2_store(tmp_path / "old.duckdb")
    connection = duckdb.connect(str(path))
    for table in ("item_scores", "profile_points", "profile_runs"):
        connection.execute(f"DROP TABLE {table}")
    connection.execute("DELETE FROM schema_version WHERE version > 1")
    connection.close()
    eval_runs = samples.v2_runs()["eval_runs"]
    with ResultsStore(path) as store:
        assert store.applied_migrations == list(range(2, LATEST_VERSION + 1))
        assert len(store.query_view("runs", ViewFilter(experiment="old")).rows) == len(eval_runs)
        accuracy = _findings(store, "accuracy")
        assert store.query_view("profile").rows == []
    assert len(accuracy) > 0
    assert (accuracy["method"] == findings.NO_PAIRED_DATA).all()
    assert accuracy["text"].str.startswith(findings.NO_PAIRED_DATA).all()
    assert accuracy["verdict"].isna().all()


def test_added_message_fields_reach_an_existing_store(tmp_path: Path) -> None:
    path = tmp_path / "grown.duckdb"
    ResultsStore(path).close()
    with duckdb.connect(str(path)) as connection:
        connection.execute("ALTER TABLE profile_points DROP COLUMN iterations")
    with ResultsStore(path) as store:
        assert store.applied_migrations == []
        assert store.derived == ["profile_points"]  # rebuilt from the records
    connection = duckdb.connect(str(path))
    names = {row[0] for row in connection.execute("DESCRIBE profile_points").fetchall()}
    connection.close()
    assert "iterations" in names


def test_describe_change_leads_with_the_verdict() -> None:
    inside = Interval(median=-0.012, low=-0.05, high=0.03, count=6, method="paired-t-log-ratio")
    outside = Interval(median=-0.234, low=-0.251, high=-0.21, count=6, method="paired-t-log-ratio")
    assert findings.describe_change(outside, relative=True, verdict="lower") == (
        "lower: \u221223.4% [\u221225.1, \u221221.0]"
    )
    assert findings.describe_change(inside, relative=True, verdict="inconclusive") == (
        "inconclusive: \u22121.2% [\u22125.0, +3.0]"
    )
    assert findings.describe_change(inside, relative=True) == (
        "\u22121.2% [\u22125.0, +3.0] (not interleaved: no verdict)"
    )
    few = Interval(median=-0.1, low=-math.inf, high=math.inf, count=2, method="too-few-rounds")
    assert findings.describe_change(few, relative=True, verdict="inconclusive") == (
        "inconclusive: too few rounds (2 < 3)"
    )
    assert findings.describe_change(None, relative=False, estimate=-0.05) == (
        "no paired data (\u22125.0 pt)"
    )
    assert findings.ratio_text(0.2, 0.083) == (
        "20% of prunable parameters = 8.3% of all parameters"
    )


def test_eval_runs_of_one_repeat_show_their_change_without_an_interval() -> None:
    # Net energy as (median, low, high): one repeat has no spread, three repeats have.
    one, other_one = (0.40, 0.40, 0.40), (0.44, 0.44, 0.44)
    change = findings.energy_change_unpaired(one, other_one)
    assert change is not None and change.method == findings.ONE_REPEAT
    assert change.median == pytest.approx(0.1)
    text = findings.describe_change(change, relative=True)
    assert text == "+10.0%, one repeat: no interval (not interleaved: no verdict)"
    spread = findings.energy_change_unpaired((0.40, 0.38, 0.42), (0.44, 0.43, 0.45))
    assert spread is not None and spread.method == "interval-ends"
    assert spread.low < spread.median < spread.high
    assert findings.describe_change(spread, relative=True).startswith("+10.0% [")
    # One side of one repeat is enough: its own spread is unknown.
    assert findings.energy_change_unpaired(one, (0.44, 0.43, 0.45)).method == findings.ONE_REPEAT


def test_an_int8_point_of_the_unpruned_model_is_not_the_baseline(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "int8.duckdb") as store:
        # "a-int8" sorts first and was pruned last, yet the baseline is the uncompressed one.
        for name, family in (("b-base", "baseline"), ("a-int8", "int8")):
            run = samples.prune_run(f"prune-{name}", model=MODEL, ratio=0.0, checkpoint_id=name)
            run.result.method_family = family
            store.record_prune_run(run)
        store.record_profile_run(
            samples.profile_run(
                "profile", model=MODEL, costs={"a-int8": 0.9e-3, "b-base": 1e-3}, rounds=4
            )
        )
        configurations = store.query_view("configurations").to_pandas()
        energy = _findings(store, "energy")
    baseline = configurations[configurations["is_baseline"]]
    assert list(baseline["checkpoint_id"]) == ["b-base"]
    assert set(energy["checkpoint_id"]) == {"a-int8"}
    assert energy["estimate"].to_numpy() == pytest.approx(-0.1)


def test_pareto_mask_keeps_only_undominated_points_and_neighbours_step_along_it() -> None:
    points = pd.DataFrame(
        {
            "experiment": ["e"] * 4 + ["f"],
            "task": ["t"] * 5,
            "net_joules": [10.0, 20.0, 15.0, 5.0, 100.0],
            "accuracy": [0.5, 0.9, 0.4, float("nan"), 0.1],
        }
    )
    mask = findings.pareto_mask(points)
    # (15, 0.4) is beaten by (10, 0.5); NaN never counts; "f" is its own front.
    assert list(mask) == [True, True, False, False, True]
    neighbours = findings.front_neighbours(points, mask)
    # The cheapest point of each front has no neighbour; (20, 0.9) steps from (10, 0.5).
    assert list(neighbours) == [None, 0, None, None, None]


def test_the_experiments_recorded_margins_and_adjustment_judge_its_findings(
    tmp_path: Path,
) -> None:
    with _store(tmp_path, "declared") as store:
        run = _profile("declared", 0.98e-3)  # 2% cheaper in every round
        run.spec.analysis.energy_relative = 0.05
        run.spec.analysis.adjustment = "none"
        store.record_profile_run(run)
        energy = _findings(store, "energy")
    assert (energy["margin"] == 0.05).all() and (energy["adjustment"] == "none").all()
    # Identical ratios in every round: -2%, certainly; still lower, even inside the margin.
    assert (energy["verdict"] == verdicts.LOWER).all()
    assert store_default_margin(tmp_path) == 0.03


def store_default_margin(tmp_path: Path) -> float:
    """The energy margin of an experiment whose runs record none: the documented default."""
    with _store(tmp_path, "undeclared") as store:
        store.record_profile_run(_profile("undeclared", 1e-3))
        return float(_findings(store, "energy")["margin"].iloc[0])
