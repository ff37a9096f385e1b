"""The computed views that compare configurations.

They are ``findings``, ``task_breakdown``, ``method_comparison`` and ``comparisons``.

Each compares configurations of one model in one experiment, with the change functions of
``measures.py`` (the rules of ``greenprune.core.findings``): against the baseline that
``views.py`` marks (``findings``, ``task_breakdown``), methods of equal size against each other
(``method_comparison``), or every pair (``comparisons``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import pandas as pd

from greenprune.api.common.v1.energy_pb2 import Interval
from greenprune.core import findings, verdicts
from greenprune.core.findings import BASELINE_FAMILY, BASELINE_TEXT, CHANGE_FIELDS, finite
from results_service import measures
from results_service.findings_view import MEAN_ACCURACY, judged_findings
from results_service.measures import CONFIG, key_of, typed


def _finding_key(
    experiment: object, model: object, checkpoint: object, kind: str, task: object = None
) -> tuple[Hashable, ...]:
    return (experiment, model, checkpoint, kind, None if findings.missing(task) else task)


def _findings_by_key(
    rows: list[dict[str, object]],
) -> dict[tuple[Hashable, ...], dict[str, object]]:
    """The judged findings by (experiment, model, checkpoint, kind, task).

    Accuracy rows, and the primary energy row (the largest prefill batch) of each checkpoint.
    """
    found: dict[tuple[Hashable, ...], dict[str, object]] = {}
    for row in rows:
        if row["kind"] == "energy" and row["family"] != verdicts.PRIMARY:
            continue
        key = _finding_key(
            row["experiment"], row["model"], row["checkpoint_id"], str(row["kind"]), row["task"]
        )
        found[key] = row
    return found


def change_of(finding: Mapping[str, object]) -> dict[str, object]:
    """A finding's change fields (``findings.CHANGE_FIELDS``)."""
    return {name: finding.get(name) for name in CHANGE_FIELDS}


def flipped(change: Mapping[str, object]) -> dict[str, object]:
    """The change of ``a`` against ``b`` from that of ``b`` against ``a``.

    Exact for the tests of ``greenprune.core.verdicts`` (log ratios and Tango's statistic are
    antisymmetric): a relative change ``r`` becomes ``1 / (1 + r) - 1``, points change sign,
    the bounds swap and lower and higher trade places.
    """
    relative = bool(change.get("relative"))

    def turn(value: object) -> object:
        if not finite(value):
            return None
        number = float(value)  # type: ignore[arg-type]
        if relative:
            return 1.0 / (1.0 + number) - 1.0 if number > -1.0 else None
        return -number

    out = dict(change)
    out.update(estimate=turn(change.get("estimate")), low=turn(change.get("high")))
    out["high"] = turn(change.get("low"))
    swap = {verdicts.LOWER: verdicts.HIGHER, verdicts.HIGHER: verdicts.LOWER}
    word = change.get("verdict")
    out["verdict"] = swap.get(str(word), word) if word is not None else None
    interval = Interval(
        median=float(out["estimate"]) if finite(out["estimate"]) else math.nan,  # type: ignore[arg-type]
        low=float(out["low"]) if finite(out["low"]) else -math.inf,  # type: ignore[arg-type]
        high=float(out["high"]) if finite(out["high"]) else math.inf,  # type: ignore[arg-type]
        count=int(change.get("count") or 0),  # type: ignore[arg-type]
        method=str(change.get("method") or ""),
    )
    word = out["verdict"]
    if change.get("method") == findings.NOT_ABOVE_IDLE_METHOD:
        out["text"] = change.get("text")
    elif change.get("low") is None and change.get("method") not in findings.TOO_FEW:
        out["text"] = findings.describe_change(None, relative=relative, estimate=out["estimate"])
    else:
        out["text"] = findings.describe_change(
            interval, relative=relative, verdict=None if word is None else str(word)
        )
    return out


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


def task_breakdown_table(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The ``task_breakdown`` view: every metric of every configuration against the baseline.

    The headline accuracy's change is the ``findings`` view's (paired by document, judged in
    its family); other metrics have a relative change without an interval; net energy of eval
    runs (not interleaved) has an interval and no verdict.

    Args:
        inputs: ``metrics`` (``views._METRIC_ROWS``) and the ``findings`` view's inputs.
    """
    points = _metric_points(inputs["metrics"])
    if points.empty:
        return pd.DataFrame(columns=list(TASK_BREAKDOWN_COLUMNS))
    judged = _findings_by_key(judged_findings(inputs))
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
                found = judged.get(
                    _finding_key(
                        point["experiment"],
                        point["model"],
                        measures.point_checkpoint(point),
                        "accuracy",
                        point["task"],
                    )
                )
                if point["is_headline"] and found is not None:
                    value = change_of(found)
                else:
                    relative = point["metric_kind"] != "accuracy"
                    estimate = (
                        findings.relative_change(point["value"], base["value"])
                        if relative
                        else row["delta_value"]
                    )
                    value = findings.interval_fields(None, relative=relative, estimate=estimate)
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
        and not c.endswith(STRING_SUFFIXES)
    ]
    floats += ["ratio", "achieved_ratio", "stderr", "joules_per_token", "parameters_removed"]
    ints = ("parameters_after", "parameters_before", "runs")
    ints += ("value_change_family_size", "energy_change_family_size")
    typed(frame, floats=floats, ints=ints)
    return typed(frame, bools=("recovered", "is_baseline", "is_headline", "estimated")).reset_index(
        drop=True
    )


STRING_SUFFIXES = ("_method", "_text", "_verdict", "_family", "_adjustment", "_family_size")
"""The change columns that are not floats (words, and the family's size)."""


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
    *CHANGE_FIELDS,
    *measures.ENERGY_MEASURE_FIELDS,
    "kernel_path_a",
    "kernel_path_b",
    "realization_a",
    "realization_b",
)
"""The columns of the ``method_comparison`` view: ``b`` against ``a``, of equal size. Energy rows
carry each side's kernel path and realization ratio (measured saving against the baseline /
MACs its kernels skip) from the ``findings`` view, so a verdict between two methods reads next
to what each one's kernels made of its removal."""


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


def method_comparison_table(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The ``method_comparison`` view: compression methods of equal size against each other.

    Energy is paired by profile round (every variant of a model is profiled in the same
    rounds), accuracy by document, with the same rules as the ``findings`` view; the verdicts
    of an experiment and model are one ``pairwise`` family.

    Args:
        inputs: ``windows``, ``runs``, ``items`` and ``analysis`` as for ``findings``.
    """
    analysis = measures.analysis_of(inputs)
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
                    margins = analysis(a["experiment"]).margins
                    row.update(measures.window_change(x, y, margins))
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
                margins = analysis(a["experiment"]).margins
                row.update(measures.value_change(a, b, metric, kind, scores, margins))
                rows.append(row)
    _judge_pairwise(rows, analysis)
    _add_realization(rows, inputs)
    return measures.change_frame(
        rows,
        METHOD_COMPARISON_COLUMNS,
        ("value_a", "value_b", "ratio", "realization_a", "realization_b"),
    )


def _add_realization(rows: list[dict[str, object]], inputs: Mapping[str, pd.DataFrame]) -> None:
    """Gives energy rows each side's kernel path and realization ratio, from the findings."""
    if not any(row["kind"] == "energy" for row in rows):
        return
    where = ("experiment", "model", "checkpoint_id", "phase", "batch_size")
    found = {
        tuple(row[name] for name in where): row
        for row in judged_findings(inputs)
        if row["kind"] == "energy"
    }
    for row in rows:
        if row["kind"] != "energy":
            continue
        for side in ("a", "b"):
            key = (row["experiment"], row["model"], row[f"checkpoint_{side}"])
            finding = found.get((*key, row["phase"], row["batch_size"]), {})
            row[f"kernel_path_{side}"] = finding.get("kernel_path")
            row[f"realization_{side}"] = finding.get("realization_ratio")


def _judge_pairwise(
    rows: list[dict[str, object]], analysis: Any, prefix: str | None = None
) -> None:
    """Judges rows as one ``pairwise`` family per experiment and model."""
    groups: dict[tuple[Hashable, ...], list[dict[str, object]]] = {}
    for row in rows:
        groups.setdefault((row["experiment"], row["model"]), []).append(row)
    for (experiment, _model), members in groups.items():
        adjustment = analysis(experiment).adjustment
        if prefix is None:
            measures.judge(members, verdicts.PAIRWISE, adjustment)
        else:
            relative = prefix == "energy_change"
            measures.judge(members, verdicts.PAIRWISE, adjustment, prefix, relative)


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

    A pair with the baseline reads the ``findings`` view's change (turned round when the
    baseline is ``b``); other pairs are tested alike and judged as one ``pairwise`` family
    per experiment and model (each unordered pair once). Per-task net energy of eval runs is
    shown with its interval and no verdict.

    Args:
        inputs: ``runs``, ``items``, ``windows`` and ``analysis`` (``views.py``).
    """
    analysis = measures.analysis_of(inputs)
    points = measures.task_points(inputs["runs"])
    scored = measures.accuracy_points(points)
    scores = measures.item_scores(inputs["items"])
    judged = _findings_by_key(judged_findings(inputs))
    profiled = measures.profiled_changes(inputs["windows"], analysis)
    scored_by = {key: part for key, part in _by_config(scored)}
    rows: list[dict[str, object]] = []
    own: dict[tuple[Hashable, ...], dict[str, object]] = {}

    def pair_change(
        a: Mapping[str, Any], b: Mapping[str, Any], kind: str, task: object, compute: Any
    ) -> dict[str, object] | None:
        if a["is_baseline"] or b["is_baseline"]:
            other = b if a["is_baseline"] else a
            checkpoint = (
                measures.point_checkpoint(other) if kind == "accuracy" else other["checkpoint_id"]
            )
            found = judged.get(
                _finding_key(other["experiment"], other["model"], checkpoint, kind, task)
            )
            if found is not None:
                return change_of(found) if a["is_baseline"] else flipped(change_of(found))
        key = (key_of(a), key_of(b), kind, task)
        if str(key[0]) > str(key[1]):
            return None  # the mirror of a canonical pair, filled once that one is judged
        own[key] = compute()
        return own[key]

    pending: list[tuple[dict[str, object], str, tuple[Hashable, ...]]] = []
    for _, group in points.groupby(["experiment", "model"], sort=True):
        by_config = dict(_by_config(group))
        for a_key, a_part in by_config.items():
            for b_key, b_part in by_config.items():
                if a_key == b_key:
                    continue
                a_head = a_part.iloc[0].to_dict()
                b_head = b_part.iloc[0].to_dict()
                margins = analysis(a_head["experiment"]).margins
                b_tasks = b_part.set_index("task")
                for a in a_part.to_dict("records"):
                    if a["task"] not in b_tasks.index:
                        continue
                    b = {**b_tasks.loc[a["task"]].to_dict(), "task": a["task"]}
                    row = _comparison(a, b)
                    row.update(task=a["task"], tasks=1, metric=a["headline_metric"])
                    row.update(value_a=a["value"], value_b=b["value"])
                    kind = a["headline_kind"]

                    def accuracy(a=a, b=b, kind=kind, margins=margins) -> dict[str, object]:
                        metric = a["headline_metric"]
                        return measures.value_change(a, b, metric, kind, scores, margins)

                    change = pair_change(a, b, "accuracy", a["task"], accuracy)
                    _place(
                        row,
                        "accuracy_change",
                        change,
                        pending,
                        (b_key, a_key, "accuracy", a["task"]),
                    )
                    row.update(
                        energy_source=PER_TASK_ENERGY,
                        energy_a=a["net_joules"],
                        energy_b=b["net_joules"],
                    )
                    row.update(
                        measures.prefixed("energy_change", measures.task_energy_change(a, b))
                    )
                    row["estimated"] = bool(a["estimated"] or b["estimated"])
                    rows.append(row)
                if a_key not in scored_by or b_key not in scored_by:
                    continue
                combined = measures.combined_changes(
                    scored_by[a_key], scored_by[b_key], scores, margins
                )
                if combined is None:
                    continue
                row = _comparison(a_head, b_head)
                row.update(task=measures.ALL_TASKS, metric=MEAN_ACCURACY)
                row.update(energy_source=PER_TASK_ENERGY)
                row.update(combined)

                def pooled(a_key=a_key, b_key=b_key, margins=margins) -> dict[str, object]:
                    return measures.pooled_accuracy_change(
                        scored_by[a_key], scored_by[b_key], scores, margins
                    )

                change = pair_change(a_head, b_head, "accuracy", None, pooled)
                _place(row, "accuracy_change", change, pending, (b_key, a_key, "accuracy", None))
                found = profiled.get((a_key, b_key))
                if found is not None:
                    row.update({k: found[k] for k in ("energy_source", "energy_a", "energy_b")})
                    change = pair_change(
                        a_head, b_head, "energy", None, lambda f=found: f["change"]
                    )
                    _place(row, "energy_change", change, pending, (b_key, a_key, "energy", None))
                row["estimated"] = bool(a_part["estimated"].any() or b_part["estimated"].any())
                rows.append(row)
    by_experiment: dict[tuple[Hashable, ...], list[dict[str, object]]] = {}
    for key, change in own.items():
        by_experiment.setdefault(key[0][:2], []).append(change)
    for (experiment, _model), members in by_experiment.items():
        measures.judge(members, verdicts.PAIRWISE, analysis(experiment).adjustment)
    for row in rows:
        for prefix, change in row.pop("_changes", []):  # type: ignore[union-attr]
            row.update(measures.prefixed(prefix, change))
    for row, prefix, mirror in pending:
        row.update(measures.prefixed(prefix, flipped(own[mirror])))
    frame = pd.DataFrame(rows, columns=list(COMPARISONS_COLUMNS))
    floats = [
        c for c in COMPARISONS_COLUMNS if c.startswith(("ratio_", "value_", "energy_a", "energy_b"))
    ]
    floats += [
        c
        for c in COMPARISONS_COLUMNS
        if c.startswith(("accuracy_change", "energy_change")) and not c.endswith(STRING_SUFFIXES)
    ]
    floats.append("parameters_removed_b")
    ints = ("tasks", "accuracy_change_family_size", "energy_change_family_size")
    bools = ("is_baseline_a", "is_baseline_b", "estimated")
    return typed(frame, floats=floats, ints=ints, bools=bools)


def _place(
    row: dict[str, object],
    prefix: str,
    change: dict[str, object] | None,
    pending: list[tuple[dict[str, object], str, tuple[Hashable, ...]]],
    mirror: tuple[Hashable, ...],
) -> None:
    """Puts a change into a row, or notes that it is the mirror of ``mirror`` (judged later).

    Changes are dicts the family judging updates in place, so a row takes them after judging
    through :func:`measures.prefixed` at the end; until then the row holds the dict itself.
    """
    if change is None:
        pending.append((row, prefix, mirror))
        return
    row.setdefault("_changes", []).append((prefix, change))  # type: ignore[union-attr]


__all__ = [
    "COMPARISONS_COLUMNS",
    "METHOD_COMPARISON_COLUMNS",
    "TASK_BREAKDOWN_COLUMNS",
    "comparisons_table",
    "method_comparison_table",
    "task_breakdown_table",
]
