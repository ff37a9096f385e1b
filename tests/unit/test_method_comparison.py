"""Compression methods of equal size, side by side: paired energy and accuracy differences."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from greenprune.core import findings
from results_service.store import ResultsStore


def _points(depth_factor: float) -> pd.DataFrame:
    rows = []
    families = {"base": ("baseline", 0.0), "w25": ("width", 0.25), "d25": ("depth", 0.25)}
    for round_index in range(6):
        drift = 1.0 + 0.05 * round_index  # common to every checkpoint of a round
        for checkpoint, (family, ratio) in families.items():
            cost = {"base": 1.0, "w25": 0.8, "d25": 0.8 * depth_factor}[checkpoint]
            rows.append(
                {
                    "experiment": "methods",
                    "model": "m",
                    "run_id": "profile-1",
                    "checkpoint_id": checkpoint,
                    "ratio": ratio,
                    "achieved_ratio": ratio,
                    "parameters_before": 100,
                    "parameters_after": 100 - 20 * ratio,
                    "method_family": family,
                    "phase": "prefill",
                    "batch_size": 32,
                    "round": round_index,
                    "position": 0,
                    "net_joules": cost * drift * (1 + 0.01 * ((round_index * 7) % 3)),
                    "gross_joules": 2.0,
                    "wall_seconds": 1.0,
                    "tokens": 1000,
                    "iterations": 10,
                }
            )
    return pd.DataFrame(rows)


def _metrics_and_items(depth_correct: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = {"base": ("baseline", 0.0, 180), "w25": ("width", 0.25, 100), "d25": ("depth", 0.25)}
    metrics, items = [], []
    for seq, (checkpoint, spec) in enumerate(runs.items()):
        family, ratio = spec[0], spec[1]
        correct = spec[2] if len(spec) > 2 else depth_correct
        metrics.append(
            {
                "run_id": f"run-{checkpoint}",
                "seq": seq,
                "experiment": "methods",
                "model": "m",
                "checkpoint_id": checkpoint,
                "ratio": ratio,
                "achieved_ratio": ratio,
                "method_family": family,
                "parameters_before": 100,
                "parameters_after": 100,
                "task": "facts",
                "metric_task": "facts",
                "metric": "acc",
                "value": correct / 200,
            }
        )
        for doc in range(200):
            items.append(
                {
                    "run_id": f"run-{checkpoint}",
                    "task": "facts",
                    "doc_id": doc,
                    "metric": "acc",
                    "value": float(doc < correct),
                }
            )
    return pd.DataFrame(metrics), pd.DataFrame(items)


def test_depth_cheaper_and_more_accurate_than_width_at_the_same_ratio_is_a_finding() -> None:
    metrics, items = _metrics_and_items(depth_correct=170)
    table = findings.method_comparison_table(_points(0.7), metrics, items)
    assert len(table) == 2  # one energy pair, one accuracy pair; the baseline is not a method
    energy = table[table["kind"] == "energy"].iloc[0]
    assert (energy["method_a"], energy["method_b"]) == ("depth", "width")
    assert energy["measurable"] and energy["estimate"] > 0.3  # width costs ~43% more than depth
    accuracy = table[table["kind"] == "accuracy"].iloc[0]
    assert accuracy["measurable"] and accuracy["high"] < 0  # width: 70 fewer documents right


def test_methods_that_measure_alike_show_no_measurable_change() -> None:
    metrics, items = _metrics_and_items(depth_correct=100)
    table = findings.method_comparison_table(_points(1.0), metrics, items)
    assert not table["measurable"].any()
    assert all(text.startswith(findings.NO_CHANGE) for text in table["text"])


def test_the_store_serves_the_view(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.duckdb")
    table = store.query_view("method_comparison")
    assert [column.name for column in table.columns] == list(findings.METHOD_COMPARISON_COLUMNS)
