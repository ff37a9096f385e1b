"""Payback arithmetic: known costs and savings, and "never"."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from greenprune.api.common.v1.energy_pb2 import Interval
from greenprune.core.payback import NEVER, format_tokens, payback


def test_known_cost_and_saving_give_tokens_with_an_interval() -> None:
    # 100 J spent; the baseline spends 1e-4 J/token and the checkpoint 20 % less [-30 %, -10 %].
    result = payback(100.0, 1e-4, Interval(median=-0.2, low=-0.3, high=-0.1))
    assert result.saving == pytest.approx((2e-5, 1e-5, 3e-5))
    assert result.tokens == pytest.approx(5e6)
    assert result.tokens_low == pytest.approx(100.0 / 3e-5)
    assert result.tokens_high == pytest.approx(1e7)
    assert not result.never
    assert result.describe() == "5M tokens [3.33M, 10M]"


def test_pruning_plus_recovery_cost_adds_up() -> None:
    pruning, recovery = 30.0, 90.0
    result = payback(pruning + recovery, 2e-4, Interval(median=-0.25, low=-0.25, high=-0.25))
    assert result.tokens == pytest.approx(120.0 / 5e-5)
    assert result.tokens_low == result.tokens_high == pytest.approx(2.4e6)


def test_a_saving_whose_interval_reaches_zero_is_a_lower_bound_not_never() -> None:
    # -5 % [-12 %, +2 %]: the data say "at least 50 J / (12 % x 1e-4 J/token)", possibly never.
    result = payback(50.0, 1e-4, Interval(median=-0.05, low=-0.12, high=0.02))
    assert not result.never and result.open_ended
    assert result.tokens_low == pytest.approx(50.0 / 1.2e-5) and result.tokens_high is None
    assert result.describe() == "\u2265 4.17M tokens (possibly never)"
    assert NEVER not in result.describe().split(" (")[0]


@pytest.mark.parametrize(
    "change",
    [
        Interval(median=0.0, low=0.0, high=0.0),  # certainly no saving
        Interval(median=0.1, low=0.05, high=0.2),  # measurably costs more per token
    ],
)
def test_a_saving_measurably_not_above_zero_never_pays_back(change: Interval) -> None:
    result = payback(50.0, 1e-4, change)
    assert result.never and not result.open_ended
    assert result.tokens is result.tokens_low is result.tokens_high is None
    assert result.describe() == NEVER


def test_a_change_without_finite_bounds_is_refused() -> None:
    with pytest.raises(ValueError) as caught:
        payback(50.0, 1e-4, Interval(median=math.nan, low=math.nan, high=math.nan))
    assert str(caught.value) == "the change needs finite figures, not (nan, nan, nan)"


def test_no_cost_pays_back_at_once() -> None:
    assert payback(0.0, 1e-4, Interval(median=-0.1, low=-0.2, high=-0.05)).tokens == 0.0


@pytest.mark.parametrize(
    ("cost", "base", "reason"),
    [
        (-1.0, 1e-4, "the cost must be a finite number of joules >= 0, not -1.0"),
        (1.0, 0.0, "the baseline J/token must be positive, not 0.0"),
        (math.inf, 1e-4, "the cost must be a finite number of joules >= 0, not inf"),
    ],
)
def test_bad_inputs_are_refused(cost: float, base: float, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        payback(cost, base, Interval(median=-0.1, low=-0.2, high=-0.05))
    assert str(caught.value) == reason


def test_token_counts_read_with_suffixes() -> None:
    assert [format_tokens(v) for v in (950, 12_345, 4.1e6, 2e9)] == ["950", "12.3k", "4.1M", "2G"]


def test_the_payback_view_adds_recovery_energy_and_says_never(tmp_path: Path) -> None:
    from greenprune.api.pruning.v1 import pruning_pb2
    from results_service.store import ResultsStore
    from tests import samples

    model = "reference:tiny-llama"
    runs = {
        "base": (0.0, 1e-3),
        "pruned": (0.4, 0.8e-3),
        "recovered": (0.4, 0.8e-3),
        "same": (0.2, 1e-3),  # saves nothing: never
    }
    noise = (1.0, 1.15, 0.9, 1.3, 1.05, 0.85, 1.2, 0.95)
    with ResultsStore(tmp_path / "payback.duckdb") as store:
        for name, (ratio, _) in runs.items():
            run = samples.prune_run(f"prune-{name}", model=model, ratio=ratio, checkpoint_id=name)
            if name == "recovered":
                run.spec.recovery.CopyFrom(pruning_pb2.RecoverySpec(rank=8, steps=60))
                run.result.recovery.energy.CopyFrom(samples.energy_report(90.0, estimated=False))
                run.result.recovery.steps = 60
                run.result.recovery.parent_content_hash = "sha256:prune-pruned"
            store.record_prune_run(run)
        profile = samples.profile_run(
            "profile",
            model=model,
            costs={name: cost for name, (_, cost) in runs.items()},
            rounds=len(noise),
            round_noise=noise,
        )
        store.record_profile_run(profile)
        frame = store.query_view("payback").to_pandas().set_index("checkpoint_id")
        configurations = store.query_view("configurations").to_pandas()
        stored, _ = store.list_runs("prune_runs")
    assert sorted(frame.index) == ["pruned", "recovered", "same"]
    assert (frame["batch_size"] == 8).all() and (frame["phase"] == "prefill").all()
    pruned, recovered = frame.loc["pruned"], frame.loc["recovered"]
    assert not pruned["recovered"] and recovered["recovered"]
    assert pruned["cost_joules"] == pytest.approx(30.0)
    assert recovered["cost_joules"] == pytest.approx(30.0 + 90.0)
    # Same saving per token, four times the cost: four times the tokens.
    assert recovered["payback_tokens"] == pytest.approx(4 * pruned["payback_tokens"])
    assert pruned["payback_tokens_low"] <= pruned["payback_tokens"] <= pruned["payback_tokens_high"]
    assert frame.loc["same", "never"] and frame.loc["same", "text"] == NEVER
    # The recovery survives the store's round trip (lineage included).
    back = {run.request_id: run for run in stored}
    assert back["prune-recovered"].result.recovery.parent_content_hash == "sha256:prune-pruned"
    assert back["prune-recovered"].spec.recovery.steps == 60
    assert not back["prune-pruned"].spec.HasField("recovery")
    lineage = configurations.set_index("checkpoint_id")
    assert lineage.loc["recovered", "parent_checkpoint_id"] == "pruned"
    assert lineage.loc["recovered", "recovered"] and not lineage.loc["pruned", "recovered"]
    assert lineage.loc["recovered", "method_family"] == "width+lora"


def test_report_shows_the_payback_table(tmp_path: Path) -> None:
    import pandas as pd
    from rich.console import Console

    from greenprune.client.report import payback_table
    from results_service.profiles import PAYBACK_COLUMNS

    assert payback_table(pd.DataFrame(columns=list(PAYBACK_COLUMNS))) is None
    row = dict.fromkeys(PAYBACK_COLUMNS)
    row.update(
        experiment="demo",
        model="reference:tiny-llama",
        checkpoint_id="c",
        ratio=0.4,
        recovered=True,
        phase="prefill",
        batch_size=32,
        pruning_joules=30.0,
        recovery_joules=90.0,
        cost_joules=120.0,
        saving_joules_per_token=2e-5,
        saving_joules_per_token_low=1e-5,
        saving_joules_per_token_high=3e-5,
        never=False,
        text="6M tokens [4M, 12M]",
    )
    console = Console(record=True, width=200)
    console.print(payback_table(pd.DataFrame([row]), title="demo payback"))
    text = console.export_text()
    assert "LoRA" in text and "6M tokens [4M, 12M]" in text and "90" in text


def test_recovered_and_unrecovered_rows_at_one_ratio_keep_their_own_findings(
    tmp_path: Path,
) -> None:
    from rich.console import Console

    from greenprune.api.pruning.v1 import pruning_pb2
    from greenprune.client import report
    from results_service.store import ResultsStore
    from tests import samples

    with ResultsStore(tmp_path / "lora.duckdb") as store:
        for name, ratio, correct in (("base", 0.0, 186), ("pruned", 0.4, 112), ("lora", 0.4, 160)):
            run = samples.prune_run(f"prune-{name}", model="m", ratio=ratio, checkpoint_id=name)
            if name == "lora":
                run.spec.recovery.CopyFrom(pruning_pb2.RecoverySpec(rank=8, steps=60))
            store.record_prune_run(run)
            store.record_eval_run(
                samples.eval_run(
                    f"eval-{name}",
                    task="arith",
                    metrics={"acc": correct / 200},
                    net_joules=2.0,
                    checkpoint_id=name,
                    items=samples.nested_items(correct / 200, 200),
                )
            )
        table = store.query_view("task_breakdown")
    rows = report.rows_from_view([c.name for c in table.columns], table.rows)
    base, pruned, recovered = (
        {row.checkpoint_id: row for row in rows}[c] for c in ("base", "pruned", "lora")
    )
    assert base.delta_value_text == report.BASELINE_TEXT
    # Each checkpoint is paired with the baseline by document: 74 and 26 documents fewer right.
    assert pruned.delta_value == pytest.approx(-0.37) and recovered.delta_value == pytest.approx(
        -0.13
    )
    assert pruned.delta_value_method == recovered.delta_value_method == "paired-score-tango"
    console = Console(width=250, record=True)
    report.print_rows([pruned, recovered], "table", console)
    assert "0.40 +LoRA" in console.export_text()


def test_cost_and_saving_must_be_measured_alike() -> None:
    from greenprune.core.payback import measure_kind, mismatch

    assert measure_kind("rapl") == measure_kind("nvml") == "counter"
    assert measure_kind("cpu-time-estimate") == "cpu-time" and measure_kind("") == "unrecorded"
    assert mismatch("cpu-time-estimate", {"pruning": "cpu-time-estimate"}) is None
    assert mismatch("nvml", {"pruning": "rapl", "recovery": "rapl"}) is None
    reason = mismatch("cpu-time-estimate", {"pruning": "cpu-load-estimate"})
    assert reason == (
        "the pruning was measured as cpu-load-estimate, the saving as cpu-time-estimate"
    )
    assert "the recovery was measured as an unrecorded method" in str(
        mismatch("rapl", {"pruning": "rapl", "recovery": ""})
    )


def test_the_payback_view_refuses_to_divide_unlike_measures(tmp_path: Path) -> None:
    from results_service.store import ResultsStore
    from tests import samples

    model = "reference:tiny-llama"
    with ResultsStore(tmp_path / "unlike.duckdb") as store:
        for name, ratio in (("base", 0.0), ("pruned", 0.4)):
            run = samples.prune_run(f"prune-{name}", model=model, ratio=ratio, checkpoint_id=name)
            # A pruning metered with CodeCarbon's load estimate, a profile read from RAPL.
            run.result.energy.CopyFrom(samples.energy_report(30.0, estimated=True))
            store.record_prune_run(run)
        profile = samples.profile_run(
            "profile", model=model, costs={"base": 1e-3, "pruned": 0.8e-3}, rounds=6
        )
        store.record_profile_run(profile)
        frame = store.query_view("payback").to_pandas().set_index("checkpoint_id")
        found = store.query_view("findings").to_pandas()
    # Every energy finding says how it was measured.
    energy = found[found["kind"] == "energy"]
    assert len(energy) and set(energy["energy_method"]) == {"rapl"}
    assert not energy["estimated"].any()
    row = frame.loc["pruned"]
    assert not row["comparable"] and pd_isna(row["never"]) and pd_isna(row["payback_tokens"])
    assert row["text"] == (
        "not comparable: the pruning was measured as cpu-load-estimate, the saving as rapl"
    )
    assert (row["energy_method"], row["cost_energy_method"]) == ("rapl", "cpu-load-estimate")
    assert not row["estimated"]


def pd_isna(value: object) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_the_payback_view_gives_a_lower_bound_when_the_saving_may_be_zero(
    tmp_path: Path,
) -> None:
    from results_service.store import ResultsStore
    from tests import samples

    model = "reference:tiny-llama"
    with ResultsStore(tmp_path / "bound.duckdb") as store:
        for name, ratio in (("base", 0.0), ("slight", 0.2)):
            run = samples.prune_run(f"prune-{name}", model=model, ratio=ratio, checkpoint_id=name)
            store.record_prune_run(run)
        profile = samples.profile_run(
            "profile", model=model, costs={"base": 1e-3, "slight": 0.98e-3}, rounds=6
        )
        # A 2% saving under 4% round-to-round noise of its own: the interval reaches 0.
        wobble = (1.05, 0.95, 1.04, 0.97, 1.03, 0.96)
        for point in profile.result.points:
            if point.checkpoint_id == "slight":
                point.net_joules *= wobble[point.round]
        store.record_profile_run(profile)
        row = store.query_view("payback").to_pandas().set_index("checkpoint_id").loc["slight"]
    assert row["change_low"] < 0 < row["change_high"]
    assert not row["never"] and row["open_ended"]
    assert row["text"].startswith("\u2265 ") and row["text"].endswith("tokens (possibly never)")
    assert row["payback_tokens_low"] > 0 and pd_isna(row["payback_tokens_high"])
    assert row["verdict"] == "inconclusive" and row["family"] == "primary"
