"""The app's pure parts: labels, reshaping, chart builders and the table conversion.

No server, no Streamlit runtime: every input is a hand-made frame or message, shaped as the
views the app reads.
"""

from __future__ import annotations

import grpc
import pandas as pd
import pytest
from google.protobuf import struct_pb2

from greenprune.api.results.v1 import results_pb2
from results_app import charts, frames
from results_app.data import describe_error, table_to_frame


def _points(rows: list[tuple[float, str | None, float, float, bool, object]]) -> pd.DataFrame:
    """Rows of the ``tradeoff`` view over all tasks.

    Each is (ratio, checkpoint, accuracy, energy, on front, step distinct).
    """
    return pd.DataFrame(
        [
            {
                "experiment": "e",
                "model": "m",
                "checkpoint_id": checkpoint,
                "ratio": ratio,
                "achieved_ratio": ratio * 0.9,
                "parameters_removed": ratio / 2,
                "method_family": "baseline" if checkpoint is None else "width",
                "is_baseline": checkpoint is None,
                "task": None,
                "task_set": "a,b",
                "accuracy": accuracy,
                "accuracy_stderr": 0.02,
                "energy": energy,
                "energy_low": energy * 0.9,
                "energy_high": energy * 1.1,
                "energy_measure": "net_joules",
                "estimated": False,
                "on_front": front,
                "neighbour_checkpoint_id": None,
                "accuracy_change_from_neighbour_text": None,
                "energy_change_from_neighbour_text": None,
                "step_distinct": step,
                "payback": "-",
            }
            for ratio, checkpoint, accuracy, energy, front, step in rows
        ]
    )


POINTS = _points([(0.0, None, 0.7, 150.0, True, None), (0.5, "c50", 0.5, 95.0, True, False)])


def test_labels_name_the_method_and_the_experiment_when_there_are_several() -> None:
    assert frames.config_label("m", 0.0, None) == "m (unpruned)"
    assert frames.config_label("m", 0.5, "c50") == "m @ 50% [c50]"
    assert frames.config_label("m", 0.25, "ckpt-depth", "depth").endswith(" depth")
    assert not frames.config_label("m", 0.25, "ckpt-width", "width").endswith(" width")
    both = pd.concat([POINTS, POINTS.assign(experiment="f")])
    assert set(frames.with_labels(both)["label"]) == {
        "e: m (unpruned)",
        "e: m @ 50% [c50]",
        "f: m (unpruned)",
        "f: m @ 50% [c50]",
    }


def test_nearest_ratio_picks_the_ratio_closest_to_the_target() -> None:
    rows = pd.DataFrame({"experiment": ["e"] * 3, "model": ["m"] * 3, "ratio_b": [0.1, 0.25, 0.5]})
    assert list(frames.nearest_ratio(rows, 0.2)["ratio_b"]) == [0.25]
    assert list(frames.nearest_ratio(rows, 0.45)["ratio_b"]) == [0.5]


def test_the_headline_is_written_from_a_comparison_with_both_ratios() -> None:
    row = pd.Series(
        {
            "ratio_b": 0.5,
            "parameters_removed_b": 0.25,
            "tasks": 2,
            "value_a": 0.7,
            "value_b": 0.5,
            "accuracy_change": -0.2,
            "accuracy_change_text": "\u221220.0 pt [\u221224.0, \u221216.0]",
            "energy_source": "per-task net energy",
            "energy_change_text": "\u221236.7% [\u221242.7, \u221230.0]",
        }
    )
    text = frames.headline_text(row)
    assert text.startswith("at 50% of prunable parameters = 25.0% of all parameters")
    assert "accuracy \u221220.0 pt [" in text and "(0.700 \u2192 0.500)" in text
    assert "per-task net energy: \u221236.7% [" in text and text.endswith("over 2 tasks")


def test_sparsity_curves_draw_the_headline_and_the_views_intervals() -> None:
    accuracy = pd.DataFrame(
        {
            "model": ["m", "m", "m"],
            "task": ["a", "a", "a"],
            "ratio": [0.0, 0.0, 0.5],
            "metric": ["acc_norm", "acc", "acc"],
            "is_headline": [False, True, True],
            "accuracy": [0.1, 0.8, 0.6],
            "accuracy_stderr": [0.01, 0.02, 0.02],
        }
    )
    energy = pd.DataFrame(
        {
            "model": ["m"],
            "task": ["a"],
            "ratio": [0.0],
            "net_joules": [100.0],
            "net_joules_low": [90.0],
            "net_joules_high": [120.0],
            "joules_per_token": [0.01],
            "joules_per_token_low": [0.009],
            "joules_per_token_high": [0.012],
            "tokens_per_second": [500.0],
            "tokens_per_second_low": [450.0],
            "tokens_per_second_high": [550.0],
            "latency_ms": [100.0],
            "latency_ms_low": [90.0],
            "latency_ms_high": [110.0],
        }
    )
    curves = frames.sparsity_curves(accuracy, energy).set_index(["measure", "ratio"])
    assert curves.at[("accuracy", 0.0), "value"] == pytest.approx(0.8)  # the headline: acc
    assert curves.at[("accuracy", 0.0), "high"] == pytest.approx(0.82)
    assert curves.at[("joules_per_token", 0.0), "low"] == pytest.approx(0.009)
    assert curves.at[("latency_ms", 0.0), "value"] == pytest.approx(100.0)
    assert set(curves.index.get_level_values("measure")) == set(frames.CURVE_MEASURES)


def test_percent_is_signed_and_handles_missing_values() -> None:
    assert frames.percent(-0.1234) == "\u221212.3%"
    assert frames.percent(0.05) == "+5.0%"
    assert frames.percent(float("nan")) == "n/a"


def _layer_marks(spec: dict) -> list[str]:
    return [
        layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
        for layer in spec["layer"]
    ]


def test_tradeoff_chart_layers_bars_front_points_and_baseline() -> None:
    spec = charts.tradeoff_chart(frames.with_labels(POINTS), log_scale=True).to_dict()
    assert _layer_marks(spec) == ["rule", "rule", "rule", "point", "point", "text"]
    dots = spec["layer"][3]["encoding"]
    assert dots["x"]["scale"]["type"] == "log"
    assert dots["color"]["field"] == "ratio"
    # The legend lists the ratios shown, not 0% to 100%.
    assert dots["color"]["scale"]["domain"] == [0.0, 0.5]
    tooltip_fields = {item["field"] for item in dots["tooltip"]}
    assert {"accuracy_stderr", "energy_low", "energy_high", "estimated"} <= tooltip_fields


def test_the_front_marks_a_step_that_is_not_distinct() -> None:
    chart = charts.tradeoff_chart(frames.with_labels(POINTS))
    steps = chart.layer[2].data
    assert list(steps["step"]) == [charts.STEP_NOT_DISTINCT]
    assert (steps["energy"].iloc[0], steps["energy_to"].iloc[0]) == (150.0, 95.0)
    ringed = chart.layer[4].to_dict()["transform"][0]["filter"]
    assert charts.STEP_NOT_DISTINCT in ringed


def test_tradeoff_chart_on_a_log_axis_drops_non_positive_energy() -> None:
    points = _points([(0.0, None, 0.8, 0.0, True, None), (0.5, "c", 0.6, 5.0, True, True)])
    dots = charts.tradeoff_chart(frames.with_labels(points), log_scale=True).layer[3]
    assert list(dots.data["energy"]) == [5.0]


def test_other_charts_build_valid_specs() -> None:
    comparison = pd.DataFrame({"task": ["a", "b"], "value_a": [0.8, 0.6], "value_b": [0.6, 0.4]})
    assert charts.compare_chart(comparison, "first", "second").to_dict()
    layers = pd.DataFrame(
        {
            "layer": [0, 1, 2],
            "attention_heads": [8, 4, 8],
            "key_value_heads": [2, 2, 2],
            "intermediate_size": [512, 256, 512],
            "kept": [True, False, True],
        }
    )
    spec = charts.layers_chart(layers).to_dict()
    assert len(spec["hconcat"]) == 2
    breakdown = pd.DataFrame(
        {
            "model": ["m", "m", "m"],
            "task": ["a", "a", "a"],
            "metric": ["acc", "acc", "acc"],
            "metric_kind": ["accuracy"] * 3,
            "ratio": [0.0, 0.0, 0.5],
            "method_family": ["baseline", "int8", "width"],
            "is_baseline": [True, False, False],
            "baseline_value": [0.8, 0.8, 0.8],
            "relative_delta_value": [0.0, -0.01, -0.25],
            "relative_delta_net_joules": [0.0, -0.1, -0.4],
        }
    )
    changes = frames.task_changes(breakdown)
    # The int8 copy at ratio 0 is a change against the baseline, named by its method.
    assert list(changes["ratio_label"]) == ["0% int8", "50%"]
    heat = charts.change_heatmap(
        changes, "relative_delta_net_joules", "energy", higher_is_better=False
    ).to_dict()
    assert heat["layer"][0]["encoding"]["color"]["scale"]["reverse"] is True


def test_table_to_frame_types_every_column() -> None:
    table = results_pb2.Table(
        columns=[
            results_pb2.Column(name="name", type="string"),
            results_pb2.Column(name="value", type="double"),
            results_pb2.Column(name="count", type="int64"),
            results_pb2.Column(name="flag", type="bool"),
            results_pb2.Column(name="at", type="timestamp"),
        ]
    )
    for row in (["a", 1.5, 3, True, "2026-11-29T01:02:03Z"], [None, None, None, None, None]):
        values = struct_pb2.ListValue()
        values.extend(row)
        table.rows.append(values)
    frame = table_to_frame(table)
    assert list(frame.columns) == ["name", "value", "count", "flag", "at"]
    assert str(frame["count"].dtype) == "Int64" and frame.at[0, "count"] == 3
    assert pd.isna(frame.at[1, "value"]) and pd.isna(frame.at[1, "count"])
    assert str(frame["flag"].dtype) == "boolean"
    assert frame.at[0, "at"] == pd.Timestamp("2026-11-29T01:02:03Z")
    empty = table_to_frame(results_pb2.Table(columns=table.columns))
    assert list(empty.columns) == list(frame.columns) and empty.empty


def test_errors_become_sentences() -> None:
    down = describe_error(grpc.StatusCode.UNAVAILABLE, "connection refused", "h:1")
    assert down.startswith("The results service at h:1 is not reachable")
    assert "refused the app's token" in describe_error(grpc.StatusCode.UNAUTHENTICATED, "", "h:1")
    assert "INTERNAL" in describe_error(grpc.StatusCode.INTERNAL, "boom", "h:1")
