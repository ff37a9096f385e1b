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

import math
from collections.abc import Hashable, Mapping
from typing import Any

import pandas as pd

from greenprune.core import findings, verdicts
from greenprune.core.findings import CHANGE_FIELDS, finite
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
    "draws",
    "draw_low",
    "draw_high",
)
"""The columns of the ``findings`` view (``energy_method``/``estimated``, the kernel path, its
MACs skipped, the realization ratio and the kernel note: energy rows only; ``draws`` and the
range of the draws' values ``draw_low``/``draw_high``: accuracy rows only)."""


def energy_findings(windows: pd.DataFrame, analysis: Any) -> list[dict[str, object]]:
    """Every profiled configuration's J/token against its profile run's baseline.

    Paired by round, per phase and batch size: the ``energy`` rows of ``findings``, with their
    unadjusted verdicts (``analysis``: experiment name to ``measures.Analysis``).
    """
    if windows.empty:
        return []
    frame = with_window_measures(windows)
    rows: list[dict[str, object]] = []
    for (experiment, _model, _run), run in frame.groupby(
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
                margins = analysis(other["experiment"]).margins
                rows.append(
                    _energy_row(other, phase, batch, "joules_per_token", (b, o), window, margins)
                )
        workload = analysis(experiment).workload
        if workload is not None:
            rows += _request_findings(run, base, others, workload, analysis)
    return rows


REQUEST_PHASE = "request"
"""The ``phase`` of an energy finding of the declared request mix (``workload:``)."""

BASELINE_ROUNDS = "_baseline_rounds"
"""The key of an energy finding's baseline values by round (for the payback; not a column)."""

CPU_SECONDS = "_cpu_seconds"
"""The key of a request finding's median CPU seconds per request (baseline, other)."""


def request_batch(run: pd.DataFrame, workload: measures.Workload) -> int | None:
    """The batch size that prices a request: the declared one, else the largest in both phases.

    Only the prefill phase is needed when the mix decodes nothing; None when no batch size
    was profiled in every phase the mix needs.
    """
    needed = [findings.PROFILE_PHASE] + (["decode"] if workload.output_tokens else [])
    sizes = set.intersection(*(set(run.loc[run["phase"] == p, "batch_size"]) for p in needed))
    if workload.batch_size:
        return workload.batch_size if workload.batch_size in sizes else None
    return int(max(sizes)) if sizes else None


def _request_findings(
    run: pd.DataFrame,
    base: tuple[Hashable, ...],
    others: pd.DataFrame,
    workload: measures.Workload,
    analysis: Any,
) -> list[dict[str, object]]:
    """The energy per request of the declared mix, each configuration against the baseline.

    Per round: prefill J/token x prompt tokens + decode J/token x output tokens, at the batch
    size of :func:`request_batch`, paired by round as every energy change.
    """
    batch = request_batch(run, workload)
    if batch is None:
        return []
    phases = {findings.PROFILE_PHASE: workload.prompt_tokens, "decode": workload.output_tokens}
    rows: list[dict[str, object]] = []
    for other in others.sort_values("checkpoint_id").to_dict("records"):
        key = key_of(other)
        parts: list[tuple[pd.Series, pd.Series, pd.Series, pd.Series]] = []
        for phase, tokens in phases.items():
            if not tokens:
                continue
            window = run[(run["phase"] == phase) & (run["batch_size"] == batch)]
            b, o = paired_rounds(window, base, key)
            cpu_b, cpu_o = paired_rounds(window, base, key, "cpu_seconds_per_token")
            parts.append((b * tokens, o * tokens, cpu_b * tokens, cpu_o * tokens))
        rounds = sorted(set.intersection(*(set(p[0].index) for p in parts)))
        b, o, cpu_b, cpu_o = (
            sum(p[i].reindex(rounds) for p in parts)
            for i in range(4)  # type: ignore[misc]
        )
        window = run[run["batch_size"] == batch]
        margins = analysis(other["experiment"]).margins
        row = _energy_row(
            other, REQUEST_PHASE, batch, "joules_per_request", (b, o), window, margins
        )
        row[CPU_SECONDS] = (summary(cpu_b)[0], summary(cpu_o)[0])
        rows.append(row)
    return rows


def _energy_row(
    other: Mapping[str, Any],
    phase: object,
    batch: object,
    metric: str,
    paired: tuple[pd.Series, pd.Series],
    window: pd.DataFrame,
    margins: Any,
) -> dict[str, object]:
    """One energy finding: ``other`` against the baseline, paired by round (``paired``)."""
    b, o = paired
    row: dict[str, object] = {
        "kind": "energy",
        **{name: other[name] for name in CONFIG},
        "ratio": other["ratio"],
        "parameters_removed": other["parameters_removed"],
        "method_family": other["method_family"],
        "phase": phase,
        "batch_size": batch,
        "task": None,
        "metric": metric,
        "baseline_value": summary(b)[0],
        "value": summary(o)[0],
        "relative": True,
    }
    row.update(window_change(b, o, margins))
    row.update(energy_measure(window))
    row.update(_kernel_path(window, other))
    row[BASELINE_ROUNDS] = [float(v) for v in b]
    return row


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

    Paired by document; "no paired data" without per-document scores. The pruning draws of one
    point (``pruning.seeds``) are one row, on the checkpoint of the first draw: their mean
    against the baseline, the interval over documents and draws (``draws``, and the spread of
    the draws' values ``draw_low``/``draw_high``).
    """
    points = measures.task_points(runs)
    if points.empty:
        return []
    scores = measures.item_scores(items)
    base = points[points["is_baseline"]]
    baselines = {(r["experiment"], r["model"], r["task"]): r for r in base.to_dict("records")}
    rows: list[dict[str, object]] = []
    others = points[~points["is_baseline"]]
    for members in _draw_groups(others, ["experiment", "model", "task"]):
        point = members[0].iloc[0].to_dict()
        reference = baselines.get((point["experiment"], point["model"], point["task"]))
        metric = None if reference is None else reference["headline_metric"]
        if reference is None or findings.missing(metric):
            continue
        kind = reference["headline_kind"]
        values = [float(m.iloc[0]["value"]) for m in members]
        row = _finding_row("accuracy", point, reference["value"], _mean(values))
        row.update(task=point["task"], metric=metric)
        the = analysis(point["experiment"])
        if len(members) > 1 and kind == "accuracy":
            frame = pd.DataFrame([reference])
            row.update(
                measures.draws_accuracy_change(frame, members, scores, the.margins, the.seed)
            )
        else:
            row.update(measures.value_change(reference, point, metric, kind, scores, the.margins))
        row.update(_spread(values))
        rows.append(row)
    scored = measures.accuracy_points(points)
    by_config = {key: part for key, part in _by_config(scored)}
    configs = [part for part in by_config.values() if not part.iloc[0]["is_baseline"]]
    for members in _draw_groups(pd.concat(configs) if configs else scored.iloc[:0], []):
        first = members[0].iloc[0]
        key = key_of(first)
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
        shared = sorted(set(reference["task"]).intersection(*(set(m["task"]) for m in members)))
        if not shared:
            continue
        mean_a = float(reference.set_index("task").loc[shared, "value"].mean())
        values = [float(m.set_index("task").loc[shared, "value"].mean()) for m in members]
        row = _finding_row("accuracy", first.to_dict(), mean_a, _mean(values))
        row.update(task=None, metric=MEAN_ACCURACY)
        the = analysis(first["experiment"])
        if len(members) > 1:
            row.update(
                measures.draws_accuracy_change(reference, members, scores, the.margins, the.seed)
            )
        else:
            row.update(measures.pooled_accuracy_change(reference, members[0], scores, the.margins))
        row.update(_spread(values))
        rows.append(row)
    return rows


def _over_draws(count: int) -> str:
    return f"mean of {count} pruning draws"


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _spread(values: list[float]) -> dict[str, object]:
    """How many pruning draws a row covers and the range of their values."""
    return {"draws": len(values), "draw_low": min(values), "draw_high": max(values)}


def _draw_groups(points: pd.DataFrame, by: list[str]) -> list[list[pd.DataFrame]]:
    """Task points grouped by ``by`` and configuration, the draws of one point together.

    Each group lists one frame per configuration, the first draw's first: a point's draws are
    the configurations whose ``draw_of`` names the same checkpoint (``draws`` above 1); every
    other configuration is a group of its own.
    """
    if points.empty:
        return []
    groups: dict[tuple[Hashable, ...], list[pd.DataFrame]] = {}
    for key, part in points.groupby([*by, *CONFIG], dropna=False, sort=True):
        first = part.iloc[0]
        draws = first.get("draws")
        point = first.get("draw_of")
        joined = finite(draws) and int(draws) > 1 and not findings.missing(point)
        name = point if joined else first["checkpoint_id"]
        groups.setdefault((*key[: len(by)], *key[len(by) : len(by) + 2], name), []).append(part)
    ordered = []
    for (*_, name), members in groups.items():
        members.sort(key=lambda m: (m.iloc[0]["checkpoint_id"] != name, _seed(m.iloc[0])))
        ordered.append(members)
    return ordered


def _seed(row: Mapping[str, Any]) -> float:
    seed = row.get("pruning_seed")
    return float(seed) if finite(seed) else math.inf


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
        elif finite(row.get("draws")) and int(row["draws"]) > 1:  # type: ignore[arg-type]
            row["text"] = f"{row['text']} ({_over_draws(int(row['draws']))})"  # type: ignore[arg-type]
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
        "draw_low",
        "draw_high",
    )
    frame = change_frame(rows, FINDINGS_COLUMNS, floats)
    frame["draws"] = frame["draws"].astype("Int64")
    return frame
