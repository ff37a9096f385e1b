"""The computed views that compare configurations.

They are ``findings``, ``task_breakdown``, ``method_comparison`` and ``comparisons``.

Each compares configurations of one model in one experiment, with the change functions of
``measures.py`` (the rules of ``greenprune.core.findings``): against the baseline that
``views.py`` marks (``findings``, ``task_breakdown``), methods of equal size against each other
(``method_comparison``), or every pair (``comparisons``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from greenprune.core import findings
from greenprune.core.findings import BASELINE_FAMILY, BASELINE_TEXT, finite
from results_service import measures
from results_service.measures import CONFIG, key_of, typed
from results_service.profiles import FINDINGS_COLUMNS, energy_findings, findings_frame

# findings ------------------------------------------------------------------------------------


def _baselines(points: pd.DataFrame) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The baseline's task point of each (experiment, model, task)."""
    base = points[points["is_baseline"]]
    return {(row["experiment"], row["model"], row["task"]): row for row in base.to_dict("records")}


def _accuracy_findings(
    runs: pd.DataFrame, items: pd.DataFrame, seed: int = 0
) -> list[dict[str, object]]:
    """Every configuration's headline value against the baseline's, per task.

    Paired by document; no interval without per-document scores.
    """
    points = measures.task_points(runs)
    if points.empty:
        return []
    scores = measures.item_scores(items)
    baselines = _baselines(points)
    rows: list[dict[str, object]] = []
    for point in points[~points["is_baseline"]].to_dict("records"):
        base = baselines.get((point["experiment"], point["model"], point["task"]))
        metric = None if base is None else base["headline_metric"]
        if base is None or findings.missing(metric):
            continue
        kind = base["headline_kind"]
        row: dict[str, object] = {
            "kind": "accuracy",
            **{name: point[name] for name in CONFIG},
            "ratio": point["ratio"],
            "parameters_removed": point["parameters_removed"],
            "method_family": point["method_family"],
            "phase": None,
            "batch_size": None,
            "task": point["task"],
            "metric": metric,
            "baseline_value": base["value"],
            "value": point["value"],
            "relative": kind != "accuracy",
        }
        row.update(
            measures.value_change(base, point, metric, kind, scores, unpaired=False, seed=seed)
        )
        rows.append(row)
    return rows


def findings_table(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The ``findings`` view: every difference against the baseline with its paired interval.

    Args:
        inputs: ``windows`` (``views._PROFILE_WINDOWS``), ``runs`` (``views._SCORED_RUNS``) and
            ``items`` (``views._ITEM_SCORES``).
    """
    rows = energy_findings(inputs["windows"])
    rows += _accuracy_findings(inputs["runs"], inputs["items"])
    return findings_frame(rows)


# task_breakdown ------------------------------------------------------------------------------

TASK_BREAKDOWN_COLUMNS: tuple[str, ...] = (
    *CONFIG,
    "ratio",
    "achieved_ratio",
    "parameters_after",
    "task",
    "metric",
    "metric_kind",
    "value",
    "baseline_value",
    "delta_value",
    "relative_delta_value",
    "net_joules",
    "baseline_net_joules",
    "delta_net_joules",
    "relative_delta_net_joules",
    "parameters_before",
    "parameters_removed",
    "method_family",
    "recovered",
    "is_baseline",
    "is_headline",
    "stderr",
    "net_joules_low",
    "net_joules_high",
    "joules_per_token",
    "estimated",
    "runs",
    "run_id",
    *measures.change_columns("value_change"),
    *measures.change_columns("energy_change"),
)
"""The columns of the ``task_breakdown`` view."""


def _metric_points(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration, task and metric, its runs averaged.

    The task is the metric's own (a group task's runs report metrics of its subtasks).
    """
    if metrics.empty:
        return pd.DataFrame()
    frame = metrics.assign(
        task=metrics["metric_task"], headline_metric=metrics["metric"], headline_kind=None
    )
    points = []
    for (metric, kind, headline), group in frame.groupby(
        ["metric", "metric_kind", "is_headline"], sort=True, dropna=False
    ):
        part = measures.task_points(group, value="value", stderr="stderr")
        points.append(part.assign(metric=metric, metric_kind=kind, is_headline=bool(headline)))
    return pd.concat(points, ignore_index=True)


def task_breakdown_table(inputs: Mapping[str, pd.DataFrame], seed: int = 0) -> pd.DataFrame:
    """The ``task_breakdown`` view: every metric of every configuration against the baseline.

    Args:
        inputs: ``metrics`` (``views._METRIC_ROWS``) and ``items`` (``views._ITEM_SCORES``).
        seed: Seed of the paired bootstrap.
    """
    points = _metric_points(inputs["metrics"])
    if points.empty:
        return pd.DataFrame(columns=list(TASK_BREAKDOWN_COLUMNS))
    scores = measures.item_scores(inputs["items"])
    base_rows = points[points["is_baseline"]]
    baselines = {
        (row["experiment"], row["model"], row["task"], row["metric"]): row
        for row in base_rows.to_dict("records")
    }
    rows = []
    for point in points.to_dict("records"):
        row = {name: point.get(name) for name in TASK_BREAKDOWN_COLUMNS}
        base = baselines.get((point["experiment"], point["model"], point["task"], point["metric"]))
        if base is not None:
            row.update(
                baseline_value=base["value"],
                delta_value=point["value"] - base["value"]
                if finite(point["value"]) and finite(base["value"])
                else None,
                relative_delta_value=findings.relative_change(point["value"], base["value"]),
                baseline_net_joules=base["net_joules"],
                delta_net_joules=point["net_joules"] - base["net_joules"]
                if finite(point["net_joules"]) and finite(base["net_joules"])
                else None,
                relative_delta_net_joules=findings.relative_change(
                    point["net_joules"], base["net_joules"]
                ),
            )
            if point["is_baseline"]:
                value = energy = {"estimate": 0.0, "method": BASELINE_TEXT, "text": BASELINE_TEXT}
            else:
                # Per-document scores are of the run's own task: they pair its headline only.
                paired = scores if point["is_headline"] else {}
                value = measures.value_change(
                    base, point, point["metric"], point["metric_kind"], paired, seed=seed
                )
                energy = measures.task_energy_change(base, point)
            row.update(measures.prefixed("value_change", value))
            row.update(measures.prefixed("energy_change", energy))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(TASK_BREAKDOWN_COLUMNS))
    frame = frame.sort_values(
        ["experiment", "model", "ratio", "checkpoint_id", "task", "metric"],
        na_position="first",
        kind="stable",
    )
    frame = _ratio_nulls_last(frame)
    floats = [
        c
        for c in TASK_BREAKDOWN_COLUMNS
        if c.startswith(
            ("value", "baseline_", "delta_", "relative_", "net_joules", "energy_change")
        )
        and not c.endswith(("_method", "_text", "_measurable"))
    ]
    floats += ["ratio", "achieved_ratio", "stderr", "joules_per_token", "parameters_removed"]
    typed(frame, floats=floats, ints=("parameters_after", "parameters_before", "runs"))
    return typed(
        frame,
        bools=(
            "recovered",
            "is_baseline",
            "is_headline",
            "estimated",
            "value_change_measurable",
            "energy_change_measurable",
        ),
    ).reset_index(drop=True)


def _ratio_nulls_last(frame: pd.DataFrame) -> pd.DataFrame:
    known = frame[frame["ratio"].notna()]
    return pd.concat([known, frame[frame["ratio"].isna()]])


# method_comparison ---------------------------------------------------------------------------

METHOD_COMPARISON_COLUMNS: tuple[str, ...] = (
    "kind",
    "experiment",
    "model",
    "ratio",
    "checkpoint_a",
    "method_a",
    "checkpoint_b",
    "method_b",
    "phase",
    "batch_size",
    "task",
    "metric",
    "value_a",
    "value_b",
    "relative",
    *measures.CHANGE_FIELDS,
    *measures.ENERGY_MEASURE_FIELDS,
)
"""The columns of the ``method_comparison`` view: ``b`` against ``a``, of equal size."""


def _equal_size_pairs(configs: pd.DataFrame) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Pairs of compressed configurations with the same target ratio (the same size to remove).

    Configurations of the baseline family (the baseline and its uncompressed copies) and those
    with no family are left out; within a ratio the methods pair in name order.
    """
    usable = configs[
        configs["method_family"].notna() & (configs["method_family"] != BASELINE_FAMILY)
    ]
    pairs = []
    for _ratio, group in usable.groupby("ratio", sort=True):
        rows = group.sort_values(["method_family", "checkpoint_id"]).to_dict("records")
        for index, first in enumerate(rows):
            for second in rows[index + 1 :]:
                if first["method_family"] != second["method_family"]:
                    pairs.append((first, second))
    return pairs


def _pair(kind: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, object]:
    return {
        "kind": kind,
        "experiment": a["experiment"],
        "model": a["model"],
        "ratio": a["ratio"],
        "checkpoint_a": a["checkpoint_id"],
        "method_a": a["method_family"],
        "checkpoint_b": b["checkpoint_id"],
        "method_b": b["method_family"],
    }


def method_comparison_table(inputs: Mapping[str, pd.DataFrame], seed: int = 0) -> pd.DataFrame:
    """The ``method_comparison`` view: compression methods of equal size against each other.

    Energy is paired by profile round (every variant of a model is profiled in the same
    rounds), accuracy by document, with the same rules as the ``findings`` view.

    Args:
        inputs: ``windows``, ``runs`` and ``items`` as for ``findings``.
        seed: Seed of the accuracy bootstrap.
    """
    rows: list[dict[str, object]] = []
    windows = inputs["windows"]
    if not windows.empty:
        frame = measures.with_window_measures(windows)
        for _, run in frame.groupby(["experiment", "model", "run_id"], sort=True):
            configs = run.drop_duplicates(CONFIG)
            for a, b in _equal_size_pairs(configs):
                for (phase, batch), window in run.groupby(["phase", "batch_size"], sort=True):
                    x, y = measures.paired_rounds(window, key_of(a), key_of(b))
                    row = _pair("energy", a, b)
                    row.update(
                        phase=phase,
                        batch_size=batch,
                        task=None,
                        metric="joules_per_token",
                        value_a=measures.summary(x)[0],
                        value_b=measures.summary(y)[0],
                        relative=True,
                    )
                    row.update(measures.window_change(x, y))
                    row.update(measures.energy_measure(window))
                    rows.append(row)
    points = measures.task_points(inputs["runs"])
    scores = measures.item_scores(inputs["items"])
    if not points.empty:
        for _, group in points.groupby(["experiment", "model", "task"], sort=True):
            for a, b in _equal_size_pairs(group):
                metric = a["headline_metric"]
                if findings.missing(metric):
                    continue
                kind = a["headline_kind"]
                row = _pair("accuracy", a, b)
                row.update(
                    phase=None,
                    batch_size=None,
                    task=a["task"],
                    metric=metric,
                    value_a=a["value"],
                    value_b=b["value"],
                    relative=kind != "accuracy",
                )
                row.update(
                    measures.value_change(a, b, metric, kind, scores, unpaired=False, seed=seed)
                )
                rows.append(row)
    return measures.change_frame(rows, METHOD_COMPARISON_COLUMNS, ("value_a", "value_b", "ratio"))


# comparisons ---------------------------------------------------------------------------------

COMPARISONS_COLUMNS: tuple[str, ...] = (
    "experiment",
    "model",
    "checkpoint_a",
    "ratio_a",
    "method_a",
    "is_baseline_a",
    "checkpoint_b",
    "ratio_b",
    "method_b",
    "is_baseline_b",
    "parameters_removed_b",
    "task",
    "tasks",
    "metric",
    "value_a",
    "value_b",
    *measures.change_columns("accuracy_change"),
    "energy_source",
    "energy_a",
    "energy_b",
    *measures.change_columns("energy_change"),
    "estimated",
)
"""The columns of the ``comparisons`` view: ``b`` against ``a``."""

PER_TASK_ENERGY = "per-task net energy"
"""The ``energy_source`` of a change of the net energy of eval runs."""


def _comparison(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, object]:
    return {
        "experiment": a["experiment"],
        "model": a["model"],
        "checkpoint_a": a["checkpoint_id"],
        "ratio_a": a["ratio"],
        "method_a": a["method_family"],
        "is_baseline_a": a["is_baseline"],
        "checkpoint_b": b["checkpoint_id"],
        "ratio_b": b["ratio"],
        "method_b": b["method_family"],
        "is_baseline_b": b["is_baseline"],
        "parameters_removed_b": b["parameters_removed"],
    }


def _by_config(points: pd.DataFrame) -> list[tuple[tuple[Any, ...], pd.DataFrame]]:
    if points.empty:
        return []
    return [(key_of(part.iloc[0]), part) for _, part in points.groupby(CONFIG, dropna=False)]


def comparisons_table(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The ``comparisons`` view: every configuration against every other of its model.

    Args:
        inputs: ``runs`` (``views._SCORED_RUNS``) and ``windows`` (``views._PROFILE_WINDOWS``).
    """
    points = measures.task_points(inputs["runs"])
    scored = measures.accuracy_points(points)
    profiled = measures.profiled_changes(inputs["windows"])
    scored_by = {key: part for key, part in _by_config(scored)}
    rows: list[dict[str, object]] = []
    for _, group in points.groupby(["experiment", "model"], sort=True):
        by_config = dict(_by_config(group))
        for a_key, a_part in by_config.items():
            for b_key, b_part in by_config.items():
                if a_key == b_key:
                    continue
                a_head = a_part.iloc[0].to_dict()
                b_head = b_part.iloc[0].to_dict()
                b_tasks = b_part.set_index("task")
                for a in a_part.to_dict("records"):
                    if a["task"] not in b_tasks.index:
                        continue
                    b = {**b_tasks.loc[a["task"]].to_dict(), "task": a["task"]}
                    row = _comparison(a, b)
                    row.update(task=a["task"], tasks=1, metric=a["headline_metric"])
                    row.update(value_a=a["value"], value_b=b["value"])
                    change = measures.value_change(
                        a, b, a["headline_metric"], a["headline_kind"], {}
                    )
                    row.update(measures.prefixed("accuracy_change", change))
                    energy = measures.task_energy_change(a, b)
                    row.update(
                        energy_source=PER_TASK_ENERGY,
                        energy_a=a["net_joules"],
                        energy_b=b["net_joules"],
                    )
                    row.update(measures.prefixed("energy_change", energy))
                    row["estimated"] = bool(a["estimated"] or b["estimated"])
                    rows.append(row)
                if a_key not in scored_by or b_key not in scored_by:
                    continue
                combined = measures.combined_changes(scored_by[a_key], scored_by[b_key])
                if combined is None:
                    continue
                row = _comparison(a_head, b_head)
                row.update(
                    task=measures.ALL_TASKS, metric="mean accuracy", energy_source=PER_TASK_ENERGY
                )
                row.update({k: v for k, v in combined.items()})
                row.update(profiled.get((a_key, b_key), {}))
                row["estimated"] = bool(a_part["estimated"].any() or b_part["estimated"].any())
                rows.append(row)
    frame = pd.DataFrame(rows, columns=list(COMPARISONS_COLUMNS))
    floats = [
        c for c in COMPARISONS_COLUMNS if c.startswith(("ratio_", "value_", "energy_a", "energy_b"))
    ]
    floats += [
        c
        for c in COMPARISONS_COLUMNS
        if c.startswith(("accuracy_change", "energy_change"))
        and not c.endswith(("_method", "_text", "_measurable"))
    ]
    floats.append("parameters_removed_b")
    bools = ("is_baseline_a", "is_baseline_b", "accuracy_change_measurable")
    bools += ("energy_change_measurable", "estimated")
    return typed(frame, floats=floats, ints=("tasks",), bools=bools)


__all__ = [
    "COMPARISONS_COLUMNS",
    "FINDINGS_COLUMNS",
    "METHOD_COMPARISON_COLUMNS",
    "TASK_BREAKDOWN_COLUMNS",
    "comparisons_table",
    "findings_table",
    "method_comparison_table",
    "task_breakdown_table",
]
