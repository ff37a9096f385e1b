"""Pruning draws (``pruning.seeds``), the propagated payback interval and the request mix."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from greenprune.api.common.v1.energy_pb2 import Interval
from greenprune.client.plan import plan_experiment
from greenprune.client.spec import ExperimentFileError, LoadedExperiment, parse_experiment
from greenprune.core import verdicts
from greenprune.core.payback import AT_LEAST, NEVER, payback

ROOT = Path(__file__).resolve().parents[2]

FILE = """\
name: draws
models: [reference:tiny-llama]
pruning:
  ratios: [0.0, 0.2, 0.4]
  seeds: {seeds}
eval:
  tasks: [greenprune_arith]
seed: 3
"""


def _plan(seeds: int, extra: str = ""):  # noqa: ANN202 - a Plan
    text = FILE.format(seeds=seeds) + extra
    return plan_experiment(LoadedExperiment(parse_experiment(text, Path("d.yaml")), ROOT))


# Payback: the interval propagates the baseline's and the cost's uncertainty ------------------

CHANGE = Interval(median=-0.2, low=-0.3, high=-0.1, count=6)


def _width(result) -> float:  # noqa: ANN001
    return result.tokens_high - result.tokens_low


def test_a_wider_baseline_interval_widens_the_payback_interval() -> None:
    exact = payback(100.0, 1e-4, CHANGE)
    narrow = payback(
        100.0,
        1e-4,
        CHANGE,
        baseline=Interval(median=1e-4, low=0.95e-4, high=1.05e-4, count=6),
        seed=3,
    )
    wide = payback(
        100.0,
        1e-4,
        CHANGE,
        baseline=Interval(median=1e-4, low=0.6e-4, high=1.4e-4, count=6),
        seed=3,
    )
    assert exact.method == "change-interval" and narrow.method == wide.method == "monte-carlo"
    assert wide.tokens_low < narrow.tokens_low and wide.tokens_high > narrow.tokens_high
    assert _width(wide) > _width(narrow)
    # The point estimate is the medians' and stays inside; the seed makes it repeatable.
    assert wide.tokens == exact.tokens and wide.tokens_low <= wide.tokens <= wide.tokens_high
    again = payback(
        100.0,
        1e-4,
        CHANGE,
        baseline=Interval(median=1e-4, low=0.6e-4, high=1.4e-4, count=6),
        seed=3,
    )
    assert again == wide


def test_the_spread_of_the_pruning_draws_widens_the_payback_interval() -> None:
    one = payback([100.0], 1e-4, CHANGE)
    close = payback([98.0, 100.0, 102.0], 1e-4, CHANGE, seed=1)
    apart = payback([60.0, 100.0, 140.0], 1e-4, CHANGE, seed=1)
    # One draw is one measurement: exact, as a single cost always was.
    assert one.cost_draws == 1 and one.method == "change-interval"
    assert one == payback(100.0, 1e-4, CHANGE)
    assert close.cost_joules == apart.cost_joules == pytest.approx(100.0)
    assert apart.cost_draws == 3 and _width(apart) > _width(close) > 0


def test_a_saving_reaching_zero_stays_a_lower_bound_with_every_uncertainty() -> None:
    change = Interval(median=-0.05, low=-0.12, high=0.02, count=6)
    base = Interval(median=1e-4, low=0.8e-4, high=1.2e-4, count=6)
    result = payback([40.0, 60.0], 1e-4, change, baseline=base, seed=0)
    assert result.method == "monte-carlo"
    assert not result.never and result.open_ended and result.tokens_high is None
    assert result.describe().startswith(AT_LEAST) and NEVER not in result.describe().split(" (")[0]
    # Never stays the change's to say: measurably no saving, whatever the baseline and cost.
    worse = payback([40.0, 60.0], 1e-4, Interval(median=0.05, low=0.01, high=0.1), baseline=base)
    assert worse.never and worse.describe() == NEVER


# Pruning draws: the accuracy interval covers the documents and the draws ---------------------


def _scores(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    return (rng.random(n) < p).astype(float)


def test_one_draw_is_todays_paired_test() -> None:
    rng = np.random.default_rng(0)
    base, other = _scores(rng, 80, 0.8), _scores(rng, 80, 0.7)
    assert verdicts.draws_test(base, [other], 0.01, seed=5) == verdicts.scores_test(
        base, other, 0.01
    )


def test_draws_that_disagree_widen_the_interval_beyond_the_documents() -> None:
    rng = np.random.default_rng(1)
    base = _scores(rng, 120, 0.8)
    near = base.copy()
    near[:4] = 1 - near[:4]
    far = _scores(rng, 120, 0.45)
    agree = verdicts.draws_test(base, [near, near], 0.01, seed=2).interval
    disagree = verdicts.draws_test(base, [near, far], 0.01, seed=2).interval
    singles = [verdicts.scores_test(base, d, 0.01).interval for d in (near, far)]
    # Identical draws: the documents' interval alone.
    assert (agree.low, agree.high) == pytest.approx((singles[0].low, singles[0].high))
    assert disagree.method == "two-stage-bootstrap-2-draws"
    assert disagree.high - disagree.low > max(s.high - s.low for s in singles)
    assert disagree.median == pytest.approx((singles[0].median + singles[1].median) / 2)


def test_draws_that_agree_on_every_document_never_give_zero_width() -> None:
    base = np.array([1.0, 0.0] * 20)
    test = verdicts.draws_test(base, [base, base, base], 0.01, seed=0)
    assert test.interval.low < 0 < test.interval.high
    assert verdicts.verdict(test.interval.median, test.p_difference, test.p_equivalence) != "lower"


# Planning: one prune step per point and draw -------------------------------------------------


def test_seeds_plan_one_prune_step_per_draw_with_distinct_seeds_and_ids() -> None:
    single, double = _plan(1), _plan(2)
    pruned = [s for s in double.prune_steps if s.ratio > 0]
    assert len(pruned) == 4 and len(double.prune_steps) == 5  # the baseline is drawn once
    for ratio in (0.2, 0.4):
        draws = [s for s in pruned if s.ratio == ratio]
        assert sorted(s.spec.seed for s in draws) == [3, 4]
        assert len({s.request_id for s in draws}) == 2
    # Draw 0 is the step one seed plans: resuming a single-seed run reuses its checkpoints.
    assert {s.request_id for s in single.prune_steps} <= {s.request_id for s in double.prune_steps}
    assert all(s.spec.seed == 3 for s in single.prune_steps)
    # Every draw is evaluated; the profile measures the first draw of each point.
    assert len(double.eval_steps) == 5
    (profile,) = double.profile_steps
    assert [s.draw for s in profile.prunes] == [0, 0, 0]
    assert profile.request_id == single.profile_steps[0].request_id


def test_workload_and_seeds_are_bounded_and_recorded() -> None:
    plan = _plan(1, "workload: {prompt_tokens: 256, output_tokens: 32}\n")
    analysis = plan.eval_steps[0].spec.analysis
    assert (analysis.workload.prompt_tokens, analysis.workload.output_tokens) == (256, 32)
    assert plan.profile_steps[0].spec.analysis.workload.prompt_tokens == 256
    assert not _plan(1).eval_steps[0].spec.analysis.HasField("workload")
    # The workload is not part of a step's id: declaring it repeats nothing.
    assert [s.request_id for s in plan.steps] == [s.request_id for s in _plan(1).steps]
    with pytest.raises(ExperimentFileError, match="pruning.seeds: must be <= 16"):
        _plan(17)
    with pytest.raises(ExperimentFileError, match="workload.prompt_tokens: must be >= 1"):
        _plan(1, "workload: {prompt_tokens: 0}\n")


# The views: draws as one finding, the request mix and its payback ----------------------------


def _items(correct: int, n: int = 100, first: int = 0) -> dict[int, float]:
    return {doc: 1.0 if first <= doc < first + correct else 0.0 for doc in range(n)}


def test_the_findings_view_joins_the_draws_of_a_point(tmp_path: Path) -> None:
    from results_service.store import ResultsStore
    from tests import samples

    def study(path: Path, draws: dict[str, tuple[int, int]]):  # noqa: ANN202
        with ResultsStore(path) as store:
            for name, (seed, correct) in {"base": (7, 90), **draws}.items():
                ratio = 0.0 if name == "base" else 0.4
                run = samples.prune_run(f"p-{name}", model="m", ratio=ratio, checkpoint_id=name)
                run.spec.seed = seed
                store.record_prune_run(run)
                store.record_eval_run(
                    samples.eval_run(
                        f"e-{name}",
                        task="arith",
                        metrics={"acc": correct / 100},
                        net_joules=2.0,
                        checkpoint_id=name,
                        items=_items(correct),
                    )
                )
            found = store.query_view("findings").to_pandas()
            configurations = store.query_view("configurations").to_pandas()
            breakdown = store.query_view("task_breakdown").to_pandas()
        texts = dict(zip(breakdown["checkpoint_id"], breakdown["value_change_text"], strict=True))
        return found[found["metric"] == "acc"].set_index("checkpoint_id"), configurations, texts

    one, _, one_texts = study(tmp_path / "one.duckdb", {"d0": (7, 80)})
    two, configurations, texts = study(tmp_path / "two.duckdb", {"d0": (7, 80), "d1": (8, 60)})
    # One draw: today's paired test, unchanged.
    expected = verdicts.scores_test(list(_items(90).values()), list(_items(80).values()), 0.01)
    assert one.loc["d0", "low"] == pytest.approx(expected.interval.low)
    assert one.loc["d0", "draws"] == 1
    # Two draws: one row on the first draw, the mean change, wider than either draw alone.
    assert list(two.index) == ["d0"]
    row = two.loc["d0"]
    assert row["draws"] == 2 and (row["draw_low"], row["draw_high"]) == pytest.approx((0.6, 0.8))
    assert row["estimate"] == pytest.approx(-0.2)
    assert row["high"] - row["low"] > one.loc["d0", "high"] - one.loc["d0", "low"]
    drawn = configurations.set_index("checkpoint_id")
    assert drawn.loc["d1", "draw_of"] == "d0" and drawn.loc["d1", "draws"] == 2
    assert drawn.loc["base", "draws"] == 1
    # Every table reads the point's change on each of its draws, saying so.
    assert texts["d0"] == texts["d1"] == two.loc["d0", "text"]
    assert texts["d1"].endswith("(mean of 2 pruning draws)")
    assert "draws" not in one_texts["d0"] and one_texts["d0"] == one.loc["d0", "text"]


def test_the_request_mix_is_priced_per_phase_and_paid_back_in_requests(tmp_path: Path) -> None:
    from rich.console import Console

    from greenprune.client.report import payback_table, payback_windows_table
    from results_service.store import ResultsStore
    from tests import samples

    prompt, output = 96, 32
    with ResultsStore(tmp_path / "mix.duckdb") as store:
        for name, ratio in (("base", 0.0), ("pruned", 0.4)):
            store.record_prune_run(
                samples.prune_run(f"p-{name}", model="m", ratio=ratio, checkpoint_id=name)
            )
        profile = samples.profile_run(
            "profile",
            model="m",
            costs={"base": 1e-3, "pruned": 0.8e-3},
            round_noise=(1.0, 1.1, 0.9, 1.05, 0.95, 1.02),
        )
        profile.spec.analysis.workload.prompt_tokens = prompt
        profile.spec.analysis.workload.output_tokens = output
        store.record_profile_run(profile)
        frame = store.query_view("payback").to_pandas().set_index("checkpoint_id")
        found = store.query_view("findings").to_pandas()
        windows = store.query_view("payback_windows").to_pandas()
    row = frame.loc["pruned"]
    # Every phase and batch size: the same cost over that window's saving per token.
    by_window = windows.set_index(["phase", "batch_size"])
    assert sorted(by_window.index) == [("decode", 1), ("decode", 8), ("prefill", 1), ("prefill", 8)]
    assert by_window.loc[("prefill", 8), "text"] == row["text"]
    assert by_window.loc[("prefill", 1), "payback_tokens"] == pytest.approx(
        row["payback_tokens"] / math.sqrt(8), rel=0.06
    )  # a batch of 1 costs sqrt(8) times the J/token: the same share saves more per token
    # Prefill and decode cost alike here: a request is (prompt + output) tokens at batch 8.
    per_token = 1e-3 / math.sqrt(8)
    assert row["request_batch_size"] == 8
    assert row["baseline_joules_per_request"] == pytest.approx(
        per_token * (prompt + output), rel=0.06
    )
    assert row["request_change"] == pytest.approx(row["change"])
    assert row["payback_requests"] == pytest.approx(row["payback_tokens"] / (prompt + output))
    assert row["payback_requests_low"] <= row["payback_requests"] <= row["payback_requests_high"]
    assert row["request_verdict"] == "lower" and "requests" in row["payback_requests_text"]
    assert row["interval_method"] == "monte-carlo" and row["cost_draws"] == 1
    request = found[found["phase"] == "request"]
    assert list(request["family"]) == ["secondary"] and list(request["metric"]) == [
        "joules_per_request"
    ]
    console = Console(record=True, width=260)
    console.print(payback_table(frame.reset_index()))
    text = console.export_text()
    per_window = Console(record=True, width=260)
    per_window.print(payback_windows_table(windows))
    rows = per_window.export_text()
    assert rows.count("│ decode ") == 2 and rows.count("│ prefill ") == 2
    assert "J/request" in text and "requests [" in text and "96 prompt + 32 output" in text


def test_the_app_shows_each_draws_accuracy() -> None:
    import pandas as pd

    from results_app import charts, frames

    points = pd.DataFrame(
        {
            "experiment": ["x"] * 4,
            "model": ["m"] * 4,
            "checkpoint_id": ["base", "d0", "d1", "d0"],
            "ratio": [0.0, 0.4, 0.4, 0.4],
            "method_family": ["baseline", "width", "width", "width"],
            "task": ["arith", "arith", "arith", None],
            "accuracy": [0.9, 0.8, 0.6, 0.8],
        }
    )
    configurations = pd.DataFrame(
        {
            "experiment": ["x"] * 3,
            "checkpoint_id": ["base", "d0", "d1"],
            "draw_of": ["base", "d0", "d0"],
            "draws": [1, 2, 2],
            "pruning_seed": [7, 7, 8],
        }
    )
    draws = frames.pruning_draws(points, configurations)
    arith = draws[draws["task"] == "arith"]
    assert list(arith["pruning_seed"]) == [7, 8] and list(arith["accuracy"]) == [0.8, 0.6]
    assert set(draws["draw"]) == {"d0"} and len(draws) == 3
    assert charts.draws_chart(draws).to_dict()["mark"]["type"] == "circle"
    assert frames.pruning_draws(points, configurations.assign(draws=1)).empty
