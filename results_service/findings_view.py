"""The ``findings`` view: every difference against the baseline, judged within its family.

Energy is paired by profile round (per phase and batch size), accuracy by document (per task,
and over the tasks a configuration shares with the baseline: ``mean accuracy``). Each change
gets its verdict (``greenprune.core.verdicts``) adjusted within its family, per experiment and
model:

* **primary**: energy at the profile's largest batch of ``findings.PROFILE_PHASE`` (prefill)
  and each task's headline accuracy, every compressed configuration against the baseline;
* **secondary**: every other change (other phases and batch sizes, the mean over tasks).

Every view that shows a change against the baseline takes it from here
(:func:`judged_findings`), so the same pair reads the same on every page.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import pandas as pd

from greenprune.core import findings, verdicts
from greenprune.core.findings import CHANGE_FIELDS
from results_service import measures
from results_service.measures import (
    CONFIG,
    ENERGY_MEASURE_FIELDS,
    change_frame,
    energy_measure,
    key_of,
    paired_rounds,
    summary,
    window_change,
    with_window_measures,
)

MEAN_ACCURACY = "mean accuracy"
"""The ``metric`` of a change of the mean headline accuracy over tasks (``task`` None)."""

FINDINGS_COLUMNS: tuple[str, ...] = (
    "kind",
    *CONFIG,
    "ratio",
    "parameters_removed",
    "phase",
    "batch_size",
    "task",
    "metric",
    "baseline_value",
    "value",
    *CHANGE_FIELDS,
    "method_family",
    *ENERGY_MEASURE_FIELDS,
    "kernel_path",
    "macs_skipped_share",
    "realization_ratio",
    "kernel_note",
)
"""The columns of the ``findings`` view (``energy_method``/``estimated``, the kernel path, its
MACs skipped, the realization ratio and the kernel note: energy rows only)."""


def energy_findings(windows: pd.DataFrame, analysis: Any) -> list[dict[str, object]]:
    """Every profiled configuration's J/token against its profile run's baseline.

    Paired by round, per phase and batch size: the ``energy`` rows of ``findings``, with their
    unadjusted verdicts (``analysis``: experiment name to ``measures.Analysis``).
    """
    if windows.empty:
        return []
    frame = with_window_measures(windows)
    rows: list[dict[str, object]] = []
    for (_experiment, _model, _run), run in frame.groupby(
        ["experiment", "model", "run_id"], sort=True
    ):
        baselines = run[run["is_baseline"]]
        if baselines.empty:
            continue
        base = key_of(baselines.iloc[0])
        others = run[~run["is_baseline"]].drop_duplicates(CONFIG)
        for (phase, batch), window in run.groupby(["phase", "batch_size"], sort=True):
            for other in others.sort_values("checkpoint_id").to_dict("records"):
                b, o = paired_rounds(window, base, key_of(other))
                row: dict[str, object] = {
                    "kind": "energy",
                    **{name: other[name] for name in CONFIG},
                    "ratio": other["ratio"],
                    "parameters_removed": other["parameters_removed"],
                    "method_family": other["method_family"],
                    "phase": phase,
                    "batch_size": batch,
                    "task": None,
                    "metric": "joules_per_token",
                    "baseline_value": summary(b)[0],
                    "value": summary(o)[0],
                    "relative": True,
                }
                row.update(window_change(b, o, analysis(other["experiment"]).margins))
                row.update(energy_measure(window))
                row.update(_kernel_path(window, other))
                rows.append(row)
    return rows


def _kernel_path(window: pd.DataFrame, other: Mapping[str, object]) -> dict[str, object]:
    """The kernel path a configuration ran on in a window, and the MACs it skips."""
    mine = window[window["checkpoint_id"].fillna("") == (other["checkpoint_id"] or "")]
    first = mine.iloc[0].to_dict() if len(mine) else dict(other)
    return {
        "kernel_path": kernel_path_of(first),
        "macs_skipped_share": first.get("macs_skipped_share"),
        "zeroed_share": other.get("zeroed_share"),
    }


def kernel_path_of(row: Mapping[str, object]) -> str | None:
    """A profile window's kernel path, None when unrecorded."""
    path = row.get("kernel_path")
    return None if findings.missing(path) or not path else str(path)


def _explain_kernels(row: dict[str, object]) -> None:
    """What an energy row's kernels made of its removal, by its adjusted verdict, in place."""
    skipped = row.get("macs_skipped_share")
    row["realization_ratio"] = findings.realization_ratio(row.get("estimate"), skipped)
    row["kernel_note"] = findings.kernel_note(
        row.get("kernel_path"),
        skipped,
        row.get("zeroed_share"),
        verdict=str(row.get("verdict")),
        estimate=row.get("estimate"),
    )


def _accuracy_findings(
    runs: pd.DataFrame, items: pd.DataFrame, analysis: Any
) -> list[dict[str, object]]:
    """Every configuration's headline value against the baseline's, per task and over tasks.

    Paired by document; "no paired data" without per-document scores.
    """
    points = measures.task_points(runs)
    if points.empty:
        return []
    scores = measures.item_scores(items)
    base = points[points["is_baseline"]]
    baselines = {(r["experiment"], r["model"], r["task"]): r for r in base.to_dict("records")}
    rows: list[dict[str, object]] = []
    for point in points[~points["is_baseline"]].to_dict("records"):
        reference = baselines.get((point["experiment"], point["model"], point["task"]))
        metric = None if reference is None else reference["headline_metric"]
        if reference is None or findings.missing(metric):
            continue
        kind = reference["headline_kind"]
        row = _finding_row("accuracy", point, reference["value"], point["value"])
        row.update(task=point["task"], metric=metric)
        margins = analysis(point["experiment"]).margins
        row.update(measures.value_change(reference, point, metric, kind, scores, margins))
        rows.append(row)
    scored = measures.accuracy_points(points)
    by_config = {key: part for key, part in _by_config(scored)}
    for key, part in by_config.items():
        first = part.iloc[0]
        if first["is_baseline"]:
            continue
        base_key = next(
            (
                other
                for other, other_part in by_config.items()
                if other[:2] == key[:2] and other_part.iloc[0]["is_baseline"]
            ),
            None,
        )
        if base_key is None:
            continue
        reference = by_config[base_key]
        shared = sorted(set(part["task"]) & set(reference["task"]))
        if not shared:
            continue
        mean_a = float(reference.set_index("task").loc[shared, "value"].mean())
        mean_b = float(part.set_index("task").loc[shared, "value"].mean())
        row = _finding_row("accuracy", first.to_dict(), mean_a, mean_b)
        row.update(task=None, metric=MEAN_ACCURACY)
        margins = analysis(first["experiment"]).margins
        row.update(measures.pooled_accuracy_change(reference, part, scores, margins))
        rows.append(row)
    return rows


def _by_config(points: pd.DataFrame) -> list[tuple[tuple[Hashable, ...], pd.DataFrame]]:
    if points.empty:
        return []
    return [(key_of(part.iloc[0]), part) for _, part in points.groupby(CONFIG, dropna=False)]


def _finding_row(
    kind: str, point: Mapping[str, Any], baseline_value: object, value: object
) -> dict[str, object]:
    return {
        "kind": kind,
        **{name: point[name] for name in CONFIG},
        "ratio": point["ratio"],
        "parameters_removed": point["parameters_removed"],
        "method_family": point["method_family"],
        "phase": None,
        "batch_size": None,
        "task": None,
        "metric": None,
        "baseline_value": baseline_value,
        "value": value,
    }


def primary(row: Mapping[str, Any], largest_prefill: Mapping[Hashable, int]) -> bool:
    """Whether a finding belongs to the primary comparison of its experiment and model."""
    if row["kind"] == "accuracy":
        return not findings.missing(row["task"]) and not row["relative"]
    largest = largest_prefill.get((row["experiment"], row["model"]))
    return row["phase"] == findings.PROFILE_PHASE and row["batch_size"] == largest


def judge_findings(rows: list[dict[str, object]], analysis: Any) -> None:
    """Adjusts the verdicts of the findings within their families, in place."""
    largest: dict[Hashable, int] = {}
    for row in rows:
        if row["kind"] == "energy" and row["phase"] == findings.PROFILE_PHASE:
            key = (row["experiment"], row["model"])
            largest[key] = max(largest.get(key, 0), int(row["batch_size"]))  # type: ignore[arg-type]
    groups: dict[tuple[Hashable, ...], list[dict[str, object]]] = {}
    for row in rows:
        family = verdicts.PRIMARY if primary(row, largest) else verdicts.SECONDARY
        groups.setdefault((row["experiment"], row["model"], family), []).append(row)
    for (experiment, _model, family), members in groups.items():
        measures.judge(members, str(family), analysis(experiment).adjustment)


def judged_findings(inputs: Mapping[str, pd.DataFrame]) -> list[dict[str, object]]:
    """The rows of the ``findings`` view, judged (what every view against the baseline reads).

    Args:
        inputs: ``windows``, ``runs``, ``items`` and ``analysis`` (``views.py``).
    """
    analysis = measures.analysis_of(inputs)
    rows = energy_findings(inputs["windows"], analysis) if "windows" in inputs else []
    rows += _accuracy_findings(inputs["runs"], inputs["items"], analysis)
    judge_findings(rows, analysis)
    for row in rows:
        if row["kind"] == "energy":
            _explain_kernels(row)
    return rows


def findings_table(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The ``findings`` view: every difference against the baseline, judged in its family.

    Args:
        inputs: ``windows`` (``views._PROFILE_WINDOWS``), ``runs`` (``views._SCORED_RUNS``),
            ``items`` (``views._ITEM_SCORES``) and ``analysis`` (``views._ANALYSIS``).
    """
    return findings_frame(judged_findings(inputs))


def findings_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Rows of the ``findings`` view as its typed frame."""
    floats = (
        "baseline_value",
        "value",
        "ratio",
        "parameters_removed",
        "macs_skipped_share",
        "realization_ratio",
    )
    return change_frame(rows, FINDINGS_COLUMNS, floats)
