"""``greenprune report``: every change with its interval, its verdict and its family.

The figures come from the store's ``task_breakdown`` view; the report only renders them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from greenprune.client import report
from greenprune.client.report import ResultRow
from greenprune.core import findings, verdicts
from results_service.store import ResultsStore
from tests import samples

# ratio: (accuracy, net joules, half width of the net-energy interval)
STUDY = {0.0: (0.912, 2.66, 1.0), 0.2: (0.875, 1.65, 0.15), 0.4: (0.5, 1.0, 0.05)}


def _report(tmp_path: Path, items: bool = False) -> list[ResultRow]:
    with ResultsStore(tmp_path / "report.duckdb") as store:
        for ratio, (accuracy, joules, spread) in STUDY.items():
            checkpoint = f"ckpt-{ratio}"
            store.record_prune_run(
                samples.prune_run(
                    f"prune-{ratio}",
                    model="m",
                    ratio=ratio,
                    checkpoint_id=checkpoint,
                    experiment="demo",
                    parameters_before=2_000_000,
                )
            )
            run = samples.eval_run(
                f"eval-{ratio}",
                task="facts",
                metrics={"acc": accuracy},
                net_joules=joules,
                stderr=0.02,
                checkpoint_id=checkpoint,
                experiment="demo",
                items=samples.nested_items(accuracy, 250) if items else None,
            )
            run.result.energy.net_joules.low = joules - spread
            run.result.energy.net_joules.high = joules + spread
            store.record_eval_run(run)
        table = store.query_view("task_breakdown")
    return report.rows_from_view([column.name for column in table.columns], table.rows)


def test_every_change_leads_with_its_verdict_and_names_its_family(tmp_path: Path) -> None:
    base, noisy, clear = _report(tmp_path, items=True)
    assert base.delta_energy_text == report.BASELINE_TEXT
    # Per-task net energy: eval runs measured apart, an interval without a verdict.
    assert noisy.delta_energy_text.endswith(f"({findings.NO_VERDICT})")
    assert noisy.delta_energy_low < 0 < noisy.delta_energy_high
    # Accuracy: paired by document (nested: the pruned checkpoints only lose documents).
    assert noisy.delta_value_method == clear.delta_value_method == "paired-score-tango"
    assert noisy.delta_value_verdict == clear.delta_value_verdict == verdicts.LOWER
    assert clear.delta_value_text.startswith("lower: \u221241.2 pt [")
    assert (noisy.delta_value_family, noisy.delta_value_family_size) == (verdicts.PRIMARY, 2)
    assert noisy.delta_value_adjustment == "holm" and noisy.delta_value_margin == 0.01
    console = Console(width=250, record=True)
    report.print_rows([base, noisy, clear], "table", console)
    text = console.export_text()
    assert "primary family of 2, Holm" in text and "margin \u00b11.0 pt" in text
    assert "no measurable" not in text and f"{noisy.removed_share:.1%} of all" in text
    records = json.loads(report.to_json([base, noisy, clear]))
    assert records[1]["delta_value_verdict"] == "lower"
    assert records[1]["delta_value_family_size"] == 2
    header = report.to_csv([base, noisy, clear]).splitlines()[0]
    assert "delta_value_verdict" in header and "delta_value_family" in header


def test_runs_without_per_document_scores_have_no_verdict(tmp_path: Path) -> None:
    _, noisy, _ = _report(tmp_path)
    assert noisy.delta_value_method == findings.NO_PAIRED_DATA
    assert noisy.delta_value_verdict == "" and noisy.delta_value_text.startswith("no paired data")


def test_net_energy_at_idle_is_said_so() -> None:
    row = ResultRow("demo", "m", 0.0, 10, "t", "acc", 0.9, 0.02, 0.15, -0.05, 0.35)
    console = Console(width=250, record=True)
    report.print_rows([row], "table", console)
    assert findings.NOT_ABOVE_IDLE in console.export_text()


def test_the_energy_profile_table_names_each_checkpoint_its_verdict_and_family() -> None:
    import pandas as pd

    def row(kind: str, checkpoint: str, text: str) -> dict[str, object]:
        return {
            "kind": kind,
            "model": "m",
            "checkpoint_id": checkpoint,
            "ratio": 0.4,
            "parameters_removed": 0.169,
            "phase": "prefill",
            "batch_size": 32,
            "baseline_value": 3e-4,
            "value": 2.5e-4,
            "text": text,
            "family": "primary" if kind == "energy" else None,
            "family_size": 4,
            "adjustment": "holm",
            "margin": 0.03,
        }

    frame = pd.DataFrame(
        [
            row("energy", "ckpt-pruned", "−16.6% [−27.3, −4.2]"),
            row("energy", "ckpt-recovered", "inconclusive: −1.0% [−5.0, +3.0]"),
            row("accuracy", "ckpt-pruned", "−37.4 pt [−44.4, −30.4]"),
        ]
    )
    table = report.energy_findings_table(frame, title="profile")
    assert table is not None and table.row_count == 2
    console = Console(record=True, width=250)
    console.print(table)
    text = console.export_text()
    assert "ckpt-pruned" in text and "ckpt-recovered" in text
    assert "inconclusive: " in text and "16.9% of all" in text
    assert "primary family of 4, Holm" in text and "margin \u00b13.0%" in text
    assert report.energy_findings_table(frame[frame["kind"] == "accuracy"]) is None


def test_the_energy_table_says_when_zeroed_weights_run_on_dense_kernels() -> None:
    import pandas as pd

    note = findings.kernel_note("dense float32", 0.0, 0.5, verdict="equivalent")
    frame = pd.DataFrame(
        [
            {
                "kind": "energy",
                "model": "m",
                "checkpoint_id": "ckpt-wanda",
                "method_family": "wanda-2:4",
                "ratio": 0.5,
                "parameters_removed": 0.0,
                "phase": "prefill",
                "batch_size": 8,
                "baseline_value": 3e-4,
                "value": 3e-4,
                "text": "equivalent (+0.1% [−2.0, +2.2])",
                "verdict": "equivalent",
                "family": "primary",
                "family_size": 1,
                "adjustment": "holm",
                "margin": 0.03,
                "kernel_note": note,
            }
        ]
    )
    table = report.energy_findings_table(frame)
    console = Console(record=True, width=400)
    console.print(table)
    text = console.export_text()
    assert "multiplies the zeroed weights too" in text
    assert "their sparsity cannot turn into saved work here" in text


# The rows of the report: the headline metric against the baseline ------------------------------


def _rows(tmp_path: Path, metrics: dict[float, list[tuple[str, str, float]]]) -> list[ResultRow]:
    """Records one checkpoint per ratio with these (task, metric, value) and 10 x (1 - ratio) J."""
    with ResultsStore(tmp_path / "rows.duckdb") as store:
        for ratio, values in metrics.items():
            checkpoint = f"ck{ratio}"
            store.record_prune_run(
                samples.prune_run(
                    f"prune-{ratio}", model="m", ratio=ratio, checkpoint_id=checkpoint
                )
            )
            run = samples.eval_run(
                f"eval-{ratio}",
                task="t",
                metrics={},
                net_joules=10 * (1 - ratio),
                checkpoint_id=checkpoint,
            )
            for task, metric, value in values:
                run.result.metrics.add(task=task, metric=metric, value=value, stderr=0.01)
            store.record_eval_run(run)
        table = store.query_view("task_breakdown")
    return report.rows_from_view([column.name for column in table.columns], table.rows)


def test_rows_pick_the_headline_and_compare_against_the_baseline(tmp_path: Path) -> None:
    pairs = {
        ratio: [("t", "acc_norm", acc - 0.1), ("t", "acc", acc)]
        for ratio, acc in ((0.0, 0.8), (0.4, 0.6))
    }
    base, pruned = _rows(tmp_path, pairs)
    assert (base.metric, base.value, base.stderr) == ("acc", 0.8, 0.01)
    assert base.delta_value == 0.0 and base.delta_energy == 0.0
    assert pruned.delta_value == pytest.approx(-0.2) and pruned.delta_energy == pytest.approx(-0.4)
    assert pruned.net_joules_low < pruned.net_joules < pruned.net_joules_high
    assert pruned.estimated and pruned.parameters == 2_400_000 - 480_000


def test_no_baseline_means_no_deltas(tmp_path: Path) -> None:
    (row,) = _rows(tmp_path, {0.2: [("t", "acc", 0.5)]})
    assert row.delta_value is None and row.delta_energy is None and row.delta_value_text == ""


def test_the_headline_is_the_accuracy_of_the_task_itself(tmp_path: Path) -> None:
    own = [("sub", "acc", 0.1), ("t", "word_perplexity", 9.0), ("t", "acc", 0.7)]
    (row,) = _rows(tmp_path / "own", {0.0: own})
    assert (row.metric, row.value, row.metric_kind) == ("acc", 0.7, "accuracy")
    perplexities = [("t", "bits_per_byte", 1.5), ("t", "word_perplexity", 9.0)]
    (row,) = _rows(tmp_path / "ppl", {0.0: perplexities})
    assert (row.metric, row.value, row.metric_kind) == ("word_perplexity", 9.0, "perplexity")


def test_perplexity_changes_are_relative(tmp_path: Path) -> None:
    rows = _rows(
        tmp_path, {0.0: [("t", "word_perplexity", 100.0)], 0.4: [("t", "word_perplexity", 110.0)]}
    )
    assert rows[1].delta_value == pytest.approx(0.1)
    assert rows[1].delta_value_text == "no paired data (+10.0%)"


def test_a_distilled_checkpoint_is_named_so_in_the_table() -> None:
    row = ResultRow(
        "demo",
        "m",
        0.5,
        10,
        "t",
        "acc",
        0.9,
        0.02,
        0.15,
        -0.05,
        0.35,
        recovered=True,
        method_family="wanda-2:4+lora-distill",
    )
    console = Console(width=250, record=True)
    report.print_rows([row], "table", console)
    assert "0.50 wanda-2:4 +LoRA distilled" in console.export_text()
