"""``greenprune report``: every change with its interval, "no measurable change" inside it."""

from __future__ import annotations

import json

from rich.console import Console

from greenprune.client import report
from greenprune.client.report import ResultRow
from greenprune.core import findings


def _row(ratio: float, value: float, joules: float, spread: float, **extra: object) -> ResultRow:
    return ResultRow(
        experiment="demo",
        model="m",
        ratio=ratio,
        parameters=round(2_000_000 * (1 - ratio / 2.4)),
        task="facts",
        metric="acc",
        value=value,
        stderr=0.02,
        net_joules=joules,
        net_joules_low=joules - spread,
        net_joules_high=joules + spread,
        parameters_before=2_000_000,
        removed_share=findings.share_removed(2_000_000, round(2_000_000 * (1 - ratio / 2.4))),
        **extra,  # type: ignore[arg-type]
    )


def test_overlapping_intervals_say_no_measurable_change() -> None:
    rows = report.with_deltas(
        [_row(0.0, 0.912, 2.66, 1.0), _row(0.2, 0.875, 1.65, 0.15), _row(0.4, 0.5, 1.0, 0.05)]
    )
    base, noisy, clear = rows
    assert base.delta_energy_text == report.BASELINE_TEXT
    assert noisy.delta_energy_text.startswith(findings.NO_CHANGE)
    assert not noisy.delta_energy_measurable
    assert noisy.delta_value_text.startswith(findings.NO_CHANGE)
    assert clear.delta_value_measurable and clear.delta_value_text.startswith("\u221241.2 pt [")
    assert clear.delta_energy_measurable
    console = Console(width=250, record=True)
    report.print_rows(rows, "table", console)
    text = console.export_text()
    assert findings.NO_CHANGE in text and "8.3% of all" in text
    records = json.loads(report.to_json(rows))
    assert records[1]["delta_energy_text"].startswith(findings.NO_CHANGE)
    assert records[1]["delta_energy_low"] < 0 < records[1]["delta_energy_high"]
    assert "delta_energy_text" in report.to_csv(rows).splitlines()[0]


def test_paired_findings_replace_the_unpaired_interval() -> None:
    rows = report.with_deltas([_row(0.0, 0.9, 2.0, 0.1), _row(0.2, 0.88, 1.5, 0.1)])
    columns = ["kind", "experiment", "model", "task", "metric", "estimate", "low", "high"]
    columns += ["count", "method", "measurable", "text"]
    paired = ["accuracy", "demo", "m", "facts", "acc", -0.02, -0.03, -0.01, 200]
    paired += ["paired-bootstrap", True, "\u22122.0 pt [\u22123.0, \u22121.0]"]
    _, pruned = report.with_findings(rows, columns, [paired])
    assert pruned.delta_value_method == "paired-bootstrap" and pruned.delta_value_measurable
    assert rows[1].delta_value_text.startswith(findings.NO_CHANGE)


def test_net_energy_at_idle_is_said_so() -> None:
    (row,) = report.with_deltas([_row(0.0, 0.9, 0.15, 0.2)])
    console = Console(width=250, record=True)
    report.print_rows([row], "table", console)
    assert findings.NOT_ABOVE_IDLE in console.export_text()


def test_the_energy_profile_table_names_each_checkpoint_and_says_what_is_not_measurable() -> None:
    import pandas as pd
    from rich.console import Console

    from greenprune.client import report as client_report

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
        }

    frame = pd.DataFrame(
        [
            row("energy", "ckpt-pruned", "−16.6% [−27.3, −4.2]"),
            row("energy", "ckpt-recovered", "no measurable change (−1.0% [−5.0, +3.0])"),
            row("accuracy", "ckpt-pruned", "−37.4 pt [−44.4, −30.4]"),
        ]
    )
    table = client_report.energy_findings_table(frame, title="profile")
    assert table is not None and table.row_count == 2
    console = Console(record=True, width=250)
    console.print(table)
    text = console.export_text()
    assert "ckpt-pruned" in text and "ckpt-recovered" in text
    assert "no measurable change" in text and "16.9% of all" in text
    assert client_report.energy_findings_table(frame[frame["kind"] == "accuracy"]) is None
