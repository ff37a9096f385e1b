"""The app's pure parts: frame reshaping, chart builders and the table conversion.

No server, no Streamlit runtime: every input is a hand-made frame or message.
"""

from __future__ import annotations

import math

import grpc
import pandas as pd
import pytest
from google.protobuf import struct_pb2

from greenprune.api.results.v1 import results_pb2
from results_app import charts, frames
from results_app.data import describe_error, table_to_frame


def _runs(rows: list[tuple[float, str | None, str, float, float]]) -> pd.DataFrame:
    """A ``runs`` view: (ratio, checkpoint, task, accuracy, net joules) per run."""
    return pd.DataFrame(
        [
            {
                "run_id": f"r{index}",
                "experiment": "e",
                "model": "m",
                "checkpoint_id": checkpoint,
                "ratio": ratio,
                "achieved_ratio": ratio * 0.9,
                "parameters_after": 100,
                "task": task,
                "metric": "acc",
                "accuracy": accuracy,
                "accuracy_stderr": 0.02,
                "net_joules": joules,
                "net_joules_low": joules * 0.9,
                "net_joules_high": joules * 1.1,
                "estimated": False,
                "measurement_method": "rapl",
            }
            for index, (ratio, checkpoint, task, accuracy, joules) in enumerate(rows)
        ]
    )


STUDY = _runs(
    [
        (0.0, None, "a", 0.8, 100.0),
        (0.0, None, "b", 0.6, 50.0),
        (0.5, "c50", "a", 0.6, 60.0),
        (0.5, "c50", "b", 0.5, 30.0),
        (0.5, "c50", "b", 0.3, 40.0),  # a repeat of the same checkpoint and task
    ]
)


def test_task_points_average_repeats_and_shrink_the_stderr() -> None:
    points = frames.task_points(STUDY).set_index(["ratio", "task"])
    assert points.at[(0.5, "b"), "accuracy"] == pytest.approx(0.4)
    assert points.at[(0.5, "b"), "net_joules"] == pytest.approx(35.0)
    assert points.at[(0.5, "b"), "runs"] == 2
    assert points.at[(0.5, "b"), "accuracy_stderr"] == pytest.approx(0.02 / math.sqrt(2))
    assert points.at[(0.0, "a"), "label"] == "m (unpruned)"
    assert points.at[(0.5, "a"), "label"] == "m @ 50% [c50]"


def test_labels_name_the_experiment_when_there_are_several() -> None:
    other = STUDY.assign(experiment="f")
    labels = set(frames.task_points(pd.concat([STUDY, other]))["label"])
    assert labels == {"e: m (unpruned)", "e: m @ 50% [c50]", "f: m (unpruned)", "f: m @ 50% [c50]"}


def test_averaged_points_mean_accuracy_and_sum_energy() -> None:
    averaged = frames.averaged_points(frames.task_points(STUDY)).set_index("ratio")
    assert averaged.at[0.5, "accuracy"] == pytest.approx((0.6 + 0.4) / 2)
    assert averaged.at[0.5, "net_joules"] == pytest.approx(60.0 + 35.0)
    assert averaged.at[0.5, "net_joules_low"] == pytest.approx((60.0 + 35.0) * 0.9)
    assert averaged.at[0.0, "task_set"] == "a,b"
    assert averaged.at[0.0, "accuracy_stderr"] == pytest.approx(math.sqrt(2 * 0.02**2) / 2)


def test_pareto_mask_keeps_only_undominated_points() -> None:
    points = pd.DataFrame(
        {
            "experiment": ["e"] * 4 + ["f"],
            "task": ["t"] * 5,
            "net_joules": [10.0, 20.0, 15.0, 5.0, 100.0],
            "accuracy": [0.5, 0.9, 0.4, float("nan"), 0.1],
        }
    )
    mask = frames.pareto_mask(points)
    # (15, 0.4) is beaten by (10, 0.5); NaN never counts; "f" is its own front.
    assert list(mask) == [True, True, False, False, True]


def test_headlines_compare_with_the_baseline_on_shared_tasks() -> None:
    extra = _runs([(0.5, "c50", "only-pruned", 0.1, 10.0)])
    headline = frames.headlines(frames.task_points(pd.concat([STUDY, extra]))).iloc[0]
    assert headline["tasks"] == 2
    assert headline["baseline_accuracy"] == pytest.approx(0.7)
    assert headline["accuracy"] == pytest.approx(0.5)
    assert headline["accuracy_change"] == pytest.approx(0.5 / 0.7 - 1)
    assert headline["energy_change"] == pytest.approx(95.0 / 150.0 - 1)
    assert headline["energy_change_low"] == pytest.approx(95.0 * 0.9 / (150.0 * 1.1) - 1)
    assert headline["energy_change_high"] == pytest.approx(95.0 * 1.1 / (150.0 * 0.9) - 1)
    text = frames.headline_text(headline)
    # Both ratios, and every change with its interval (never a bare percentage first).
    assert text.startswith("at 50% of prunable parameters")
    assert "accuracy \u221220.0 pt [" in text
    assert "net energy: \u221236.7% [\u221248.2, \u221222.6]" in text
    assert headline["energy_measurable"]


def test_headlines_need_a_baseline() -> None:
    assert frames.headlines(frames.task_points(STUDY[STUDY["ratio"] > 0])).empty


def test_nearest_ratio_picks_the_ratio_closest_to_the_target() -> None:
    rows = pd.DataFrame({"experiment": ["e"] * 3, "model": ["m"] * 3, "ratio": [0.1, 0.25, 0.5]})
    assert list(frames.nearest_ratio(rows, 0.2)["ratio"]) == [0.25]
    assert list(frames.nearest_ratio(rows, 0.45)["ratio"]) == [0.5]


def test_sparsity_curves_scale_the_energy_interval_to_joules_per_token() -> None:
    accuracy = pd.DataFrame(
        {
            "model": ["m", "m", "m"],
            "task": ["a", "a", "a"],
            "ratio": [0.0, 0.0, 0.5],
            "metric": ["acc_norm", "acc", "acc"],
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
            "tokens_per_second": [500.0],
            "tokens_per_second_low": [450.0],
            "tokens_per_second_high": [550.0],
            "wall_seconds": [10.0],
            "wall_seconds_low": [9.0],
            "wall_seconds_high": [11.0],
            "samples": [100],
        }
    )
    curves = frames.sparsity_curves(accuracy, energy).set_index(["measure", "ratio"])
    assert curves.at[("accuracy", 0.0), "value"] == pytest.approx(0.8)  # acc before acc_norm
    assert curves.at[("accuracy", 0.0), "high"] == pytest.approx(0.82)
    assert curves.at[("joules_per_token", 0.0), "low"] == pytest.approx(0.009)
    assert curves.at[("joules_per_token", 0.0), "high"] == pytest.approx(0.012)
    assert curves.at[("latency_ms", 0.0), "value"] == pytest.approx(100.0)
    assert set(curves.index.get_level_values("measure")) == set(frames.CURVE_MEASURES)


def test_compare_configs_reports_changes_of_the_second_against_the_first() -> None:
    points = frames.task_points(STUDY)
    table = frames.compare_configs(points, "m (unpruned)", "m @ 50% [c50]").set_index("task")
    assert table.at["a", "accuracy_change"] == pytest.approx(0.6 / 0.8 - 1)
    assert table.at["b", "energy_change"] == pytest.approx(35.0 / 50.0 - 1)


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
    points = frames.task_points(STUDY)
    points = points.assign(on_front=frames.pareto_mask(points))
    spec = charts.tradeoff_chart(points, log_scale=True).to_dict()
    assert _layer_marks(spec) == ["rule", "rule", "line", "point", "text"]
    assert spec["layer"][3]["encoding"]["x"]["scale"]["type"] == "log"
    assert spec["layer"][3]["encoding"]["color"]["field"] == "ratio"
    tooltip_fields = {item["field"] for item in spec["layer"][3]["encoding"]["tooltip"]}
    assert {"accuracy_stderr", "net_joules_low", "net_joules_high", "estimated"} <= tooltip_fields


def test_tradeoff_chart_on_a_log_axis_drops_non_positive_energy() -> None:
    points = frames.task_points(_runs([(0.0, None, "a", 0.8, 0.0), (0.5, "c", "a", 0.6, 5.0)]))
    points = points.assign(on_front=True)
    dots = charts.tradeoff_chart(points, log_scale=True).layer[3]
    assert list(dots.data["net_joules"]) == [5.0]


def test_other_charts_build_valid_specs() -> None:
    points = frames.task_points(STUDY)
    comparison = frames.compare_configs(points, "m (unpruned)", "m @ 50% [c50]")
    assert charts.compare_chart(comparison, "m (unpruned)", "m @ 50% [c50]").to_dict()
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
            "model": ["m", "m"],
            "task": ["a", "a"],
            "metric": ["acc", "acc"],
            "metric_kind": ["accuracy", "accuracy"],
            "ratio": [0.0, 0.5],
            "relative_delta_value": [0.0, -0.25],
            "relative_delta_net_joules": [0.0, -0.4],
        }
    )
    changes = frames.task_changes(breakdown)
    assert list(changes["ratio_label"]) == ["50%"]
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


def test_variants_of_equal_size_stay_apart_and_carry_their_method() -> None:
    def run(checkpoint: str, ratio: float, family: str, accuracy: float) -> dict[str, object]:
        return {
            "run_id": f"r-{checkpoint}",
            "experiment": "methods",
            "model": "m",
            "checkpoint_id": checkpoint,
            "ratio": ratio,
            "task": "facts",
            "achieved_ratio": ratio,
            "parameters_after": 100,
            "parameters_before": 120,
            "accuracy": accuracy,
            "accuracy_stderr": 0.01,
            "metric": "acc",
            "net_joules": 1.0,
            "net_joules_low": 0.9,
            "net_joules_high": 1.1,
            "estimated": True,
            "measurement_method": "cpu-load-estimate",
            "method_family": family,
        }

    runs = pd.DataFrame(
        [
            run("ckpt-base", 0.0, "baseline", 0.9),
            run("ckpt-width", 0.25, "width", 0.55),
            run("ckpt-depth", 0.25, "depth", 0.88),
            run("ckpt-int8", 0.0, "int8", 0.9),
        ]
    )
    points = frames.task_points(runs).set_index("checkpoint_id")
    assert points.loc["ckpt-depth", "method_family"] == "depth"
    assert points.loc["ckpt-depth", "label"].endswith(" depth")
    assert not points.loc["ckpt-width", "label"].endswith(" width")
    assert points["label"].is_unique
    averaged = frames.averaged_points(frames.task_points(runs))
    assert set(averaged["method_family"]) == {"baseline", "width", "depth", "int8"}
