"""What the computed views measure, per configuration: the frames every one of them starts from.

The inputs are rows of the ``views.py`` SQL (eval runs with their configuration and headline
metric, per-document scores, profile windows). A configuration is keyed by :data:`CONFIG`
(``checkpoint_id`` None for a base model measured directly). Runs of one configuration and task
are averaged here, once (:func:`task_points`); tasks are combined here, once
(:func:`combined_points`); and the change of one configuration against another is computed here,
once, with the rules of ``greenprune.core.findings`` (:func:`accuracy_change`,
:func:`task_energy_change`, :func:`combined_changes`, :func:`window_change`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from greenprune.core import findings, stats, verdicts
from greenprune.core.findings import CHANGE_FIELDS, NOT_ABOVE_IDLE, finite
from greenprune.core.limits import ADJUSTMENTS, ANALYSIS_SPEC

CONFIG = ["experiment", "model", "checkpoint_id"]
"""The columns that name a configuration."""

CONFIGURATION = [
    "ratio",
    "achieved_ratio",
    "parameters_before",
    "parameters_after",
    "parameters_removed",
    "macs_after",
    "bytes_in_memory",
    "method_family",
    "pruning_method",
    "recovered",
    "parent_checkpoint_id",
    "is_baseline",
    "pruning_seed",
    "draw_of",
    "draws",
]
"""The columns of a configuration that every computed view may carry (``views.py``):
``draw_of`` is the checkpoint of the first calibration draw of its point, ``draws`` how many
draws the point has (``pruning.seeds``)."""

ALL_TASKS = None
"""The ``task`` of a row that stands for every task of its configuration."""

Key = tuple[Hashable, ...]


@dataclass(frozen=True)
class Analysis:
    """How one experiment's comparisons are judged: its margins and family adjustment."""

    margins: verdicts.Margins = verdicts.DEFAULT_MARGINS
    adjustment: str = verdicts.DEFAULT_ADJUSTMENT
    seed: int = 0
    workload: Workload | None = None


@dataclass(frozen=True)
class Workload:
    """A declared request mix (``workload:`` in the experiment file, ``Analysis.workload``).

    Attributes:
        prompt_tokens: Prefill tokens per request.
        output_tokens: Decode tokens per request.
        batch_size: The profile batch size that prices it; 0: the largest in both phases.
    """

    prompt_tokens: int
    output_tokens: int = 0
    batch_size: int = 0


def analyses(frame: pd.DataFrame | None) -> dict[Hashable, Analysis]:
    """Each experiment's :class:`Analysis`, from the latest run recorded with one.

    ``frame`` is the ``views._ANALYSIS`` input (``experiment``, ``accuracy_points``,
    ``energy_relative``, ``adjustment``); an unset (zero, empty) field takes its default.
    """
    found: dict[Hashable, Analysis] = {}
    if frame is None or frame.empty:
        return found
    limits = ANALYSIS_SPEC
    for row in frame.to_dict("records"):
        points = row.get("accuracy_points")
        relative = row.get("energy_relative")
        adjustment = row.get("adjustment")
        found[row["experiment"]] = Analysis(
            verdicts.Margins(
                accuracy_points=float(points)
                if finite(points) and float(points) > 0
                else float(limits["analysis.accuracy_points"].default),  # type: ignore[arg-type]
                energy_relative=float(relative)
                if finite(relative) and float(relative) > 0
                else float(limits["analysis.energy_relative"].default),  # type: ignore[arg-type]
            ),
            str(adjustment) if adjustment in ADJUSTMENTS else verdicts.DEFAULT_ADJUSTMENT,
            seed=int(row["seed"]) if finite(row.get("seed")) else 0,
            workload=_workload(row),
        )
    return found


def _workload(row: Mapping[str, Any]) -> Workload | None:
    """The recorded request mix, None when unset (no prompt tokens)."""
    prompt = row.get("prompt_tokens")
    if not finite(prompt) or int(prompt) <= 0:  # type: ignore[arg-type]
        return None
    output, batch = row.get("output_tokens"), row.get("workload_batch_size")
    return Workload(
        int(prompt),  # type: ignore[arg-type]
        int(output) if finite(output) and int(output) > 0 else 0,  # type: ignore[arg-type]
        int(batch) if finite(batch) and int(batch) > 0 else 0,  # type: ignore[arg-type]
    )


def analysis_of(inputs: Mapping[str, pd.DataFrame]) -> Any:
    """A function from an experiment's name to its :class:`Analysis` (defaults when none)."""
    found = analyses(inputs.get("analysis"))
    return lambda experiment: found.get(experiment, Analysis())


def key_of(row: Mapping[str, Any]) -> Key:
    """A configuration's key: (experiment, model, checkpoint_id or None)."""
    checkpoint = row.get("checkpoint_id")
    return (
        row.get("experiment"),
        row.get("model"),
        None if findings.missing(checkpoint) else checkpoint,
    )


def point_checkpoint(row: Mapping[str, Any]) -> Hashable:
    """The checkpoint whose findings row holds a configuration's change against the baseline.

    The first draw's checkpoint (``draw_of``) for a draw of a point pruned with several
    calibration draws (the findings view joins them), else the configuration's own.
    """
    draws, point = row.get("draws"), row.get("draw_of")
    if finite(draws) and int(draws) > 1 and not findings.missing(point):  # type: ignore[arg-type]
        return point
    checkpoint = row.get("checkpoint_id")
    return None if findings.missing(checkpoint) else checkpoint


def normalized(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with missing checkpoint ids as None and ``is_baseline`` a plain bool."""
    frame = frame.copy()
    if "checkpoint_id" in frame.columns:
        frame["checkpoint_id"] = [
            None if findings.missing(c) else c for c in frame["checkpoint_id"]
        ]
    for column in ("is_baseline", "recovered", "estimated"):
        if column in frame.columns:
            frame[column] = [bool(v) if not findings.missing(v) else False for v in frame[column]]
    return frame


def _first(series: pd.Series) -> Any:
    present = series.dropna()
    return present.iloc[0] if len(present) else None


def task_points(
    runs: pd.DataFrame, value: str = "headline_value", stderr: str = "headline_stderr"
) -> pd.DataFrame:
    """One row per configuration and task: its runs' headline value and energy, averaged.

    The value is the mean over runs and its standard error ``stderr_of_mean``; energy figures
    (median and bounds) are means over runs; ``run_id`` is the latest run (by ``seq``), whose
    per-document scores pair with another configuration's.

    Args:
        runs: Eval runs with their configuration and headline (``views._SCORED_RUNS``).
        value: The column of each run's value (the headline's, or a metric's).
        stderr: The column of its standard error.
    """
    columns = [*CONFIG, "task", *CONFIGURATION, "headline_metric", "headline_kind", "value"]
    columns += ["stderr", "net_joules", "net_joules_low", "net_joules_high", "joules_per_token"]
    columns += ["estimated", "runs", "run_id"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    frame = normalized(runs).sort_values("seq", kind="stable")
    for _, group in frame.groupby([*CONFIG, "task"], dropna=False, sort=True):
        last = group.iloc[-1]
        row: dict[str, Any] = {name: last[name] for name in (*CONFIG, "task", *CONFIGURATION)}
        row.update(
            headline_metric=_first(group["headline_metric"]),
            headline_kind=_first(group["headline_kind"]),
            value=group[value].astype("float64").mean(),
            stderr=findings.stderr_of_mean(group[stderr]),
            net_joules=group["net_joules"].astype("float64").mean(),
            net_joules_low=group["net_joules_low"].astype("float64").mean(),
            net_joules_high=group["net_joules_high"].astype("float64").mean(),
            joules_per_token=group["joules_per_token"].astype("float64").mean(),
            estimated=bool(group["estimated"].any()),
            runs=len(group),
            run_id=last["run_id"],
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def accuracy_points(points: pd.DataFrame) -> pd.DataFrame:
    """The task points whose headline is an accuracy and that have one and an energy."""
    if points.empty:
        return points
    keep = (points["headline_kind"] == "accuracy") & points["value"].notna()
    return points[keep & points["net_joules"].notna()]


def combined_points(points: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration over its tasks (:func:`accuracy_points`).

    Accuracy is the mean with ``stderr_of_mean``; net energy and its bounds are sums.

    Returns:
        The configuration columns, ``task`` None, ``task_set`` (the tasks, comma separated),
        ``tasks``, ``value``, ``stderr``, ``net_joules`` (and bounds), ``estimated``.
    """
    columns = [*CONFIG, "task", *CONFIGURATION, "task_set", "tasks", "value", "stderr"]
    columns += ["net_joules", "net_joules_low", "net_joules_high", "estimated"]
    scored = accuracy_points(points)
    if scored.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for _, group in scored.groupby(CONFIG, dropna=False, sort=True):
        first = group.iloc[0]
        row: dict[str, Any] = {name: first[name] for name in (*CONFIG, *CONFIGURATION)}
        row.update(
            task=ALL_TASKS,
            task_set=",".join(sorted(group["task"])),
            tasks=len(group),
            value=float(group["value"].mean()),
            stderr=findings.stderr_of_mean(group["stderr"]),
            net_joules=float(group["net_joules"].sum()),
            net_joules_low=float(group["net_joules_low"].sum(min_count=len(group))),
            net_joules_high=float(group["net_joules_high"].sum(min_count=len(group))),
            estimated=bool(group["estimated"].any()),
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def item_scores(items: pd.DataFrame) -> dict[tuple[str, str], dict[int, float]]:
    """Each run's per-document scores by metric: ``{(run_id, metric): {doc_id: value}}``.

    A score or document id read as missing (out of range, ``views.in_range``) is left out.
    """
    items = items.dropna(subset=["doc_id", "value"])
    if items.empty:
        return {}
    return {
        (run_id, metric): dict(
            zip(group["doc_id"].astype(int), group["value"].astype(float), strict=True)
        )
        for (run_id, metric), group in items.groupby(["run_id", "metric"])
    }


# Changes of b against a ----------------------------------------------------------------------


def accuracy_change(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    metric: str,
    scores: Mapping[tuple[str, str], Mapping[Hashable, float]],
    margins: verdicts.Margins,
) -> dict[str, object]:
    """The change of ``b``'s accuracy (a task point) against ``a``'s, in points.

    Paired by document (``findings.accuracy_change``), the one accuracy rule of every view;
    "no paired data" when either run has no per-document scores on ``metric``.
    """
    estimate = b["value"] - a["value"] if finite(a["value"]) and finite(b["value"]) else None
    test = findings.accuracy_change(
        scores.get((a["run_id"], metric), {}),
        scores.get((b["run_id"], metric), {}),
        margins.of(relative=False),
    )
    return findings.change_fields(test, relative=False, estimate=estimate)


def pooled_accuracy_change(
    a: pd.DataFrame,
    b: pd.DataFrame,
    scores: Mapping[tuple[str, str], Mapping[Hashable, float]],
    margins: verdicts.Margins,
) -> dict[str, object]:
    """``b`` against ``a`` over the tasks both scored, paired by (task, document).

    The documents of every shared task are pooled into one paired sample; with one task this
    is that task's change.

    Args:
        a: Task points of the first configuration (:func:`accuracy_points`).
        b: Task points of the second.
        scores: Per-document scores (:func:`item_scores`).
        margins: The experiment's margins.
    """
    shared = sorted(set(a["task"]) & set(b["task"]))
    left = a.set_index("task")
    right = b.set_index("task")
    pooled: list[dict[Hashable, float]] = [{}, {}]
    for task in shared:
        for side, frame in enumerate((left, right)):
            row = frame.loc[task]
            items = scores.get((row["run_id"], row["headline_metric"]), {})
            pooled[side].update({(task, doc): value for doc, value in items.items()})
    estimate = float(right.loc[shared, "value"].mean() - left.loc[shared, "value"].mean())
    test = findings.accuracy_change(pooled[0], pooled[1], margins.of(relative=False))
    return findings.change_fields(test, relative=False, estimate=estimate)


def draws_accuracy_change(
    a: pd.DataFrame,
    draws: Sequence[pd.DataFrame],
    scores: Mapping[tuple[str, str], Mapping[Hashable, float]],
    margins: verdicts.Margins,
    seed: int,
) -> dict[str, object]:
    """The pruning draws of one point against ``a``, over the tasks and documents all share.

    Paired by (task, document); the interval covers the documents and the draws
    (``verdicts.draws_test``, seeded with the experiment's seed). With one draw this is
    :func:`pooled_accuracy_change`.

    Args:
        a: Task points of the baseline (one task, or every task for the mean over tasks).
        draws: Task points of each draw of the point.
        scores: Per-document scores (:func:`item_scores`).
        margins: The experiment's margins.
        seed: The experiment's seed.
    """
    if len(draws) == 1:
        return pooled_accuracy_change(a, draws[0], scores, margins)
    shared = sorted(set(a["task"]).intersection(*(set(d["task"]) for d in draws)))
    pooled: list[dict[Hashable, float]] = []
    for frame in (a, *draws):
        indexed = frame.set_index("task")
        items: dict[Hashable, float] = {}
        for task in shared:
            row = indexed.loc[task]
            found = scores.get((row["run_id"], row["headline_metric"]), {})
            items.update({(task, doc): value for doc, value in found.items()})
        pooled.append(items)
    documents = sorted(set(pooled[0]).intersection(*pooled[1:]), key=str)
    base = a.set_index("task").loc[shared, "value"].mean()
    estimate = float(np.mean([d.set_index("task").loc[shared, "value"].mean() for d in draws]))
    if not documents:
        return findings.change_fields(None, relative=False, estimate=estimate - base)
    test = verdicts.draws_test(
        [pooled[0][doc] for doc in documents],
        [[items[doc] for doc in documents] for items in pooled[1:]],
        margins.of(relative=False),
        seed=seed,
    )
    return findings.change_fields(test, relative=False, estimate=estimate - base)


def value_change(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    metric: str,
    kind: str,
    scores: Mapping[tuple[str, str], Mapping[Hashable, float]],
    margins: verdicts.Margins,
) -> dict[str, object]:
    """The change of ``b``'s value of a metric against ``a``'s.

    Accuracies in points (:func:`accuracy_change`), other metrics relative (no interval).
    """
    if kind == "accuracy":
        return accuracy_change(a, b, metric, scores, margins)
    estimate = findings.relative_change(b["value"], a["value"])
    return findings.interval_fields(None, relative=True, estimate=estimate)


def task_energy_change(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, object]:
    """The relative change of ``b``'s net energy against ``a``'s, measured apart.

    The interval is that of the two intervals' opposite ends.
    """
    figures = ("net_joules", "net_joules_low", "net_joules_high")
    change = findings.energy_change_unpaired(
        tuple(a[name] for name in figures),  # type: ignore[arg-type]
        tuple(b[name] for name in figures),  # type: ignore[arg-type]
    )
    estimate = findings.relative_change(b["net_joules"], a["net_joules"])
    return findings.interval_fields(change, relative=True, estimate=estimate)


def combined_changes(
    a: pd.DataFrame,
    b: pd.DataFrame,
    scores: Mapping[tuple[str, str], Mapping[Hashable, float]],
    margins: verdicts.Margins,
) -> dict[str, object] | None:
    """``b`` against ``a`` over the tasks both scored.

    Mean accuracy in points, paired by document over the shared tasks
    (:func:`pooled_accuracy_change`), and summed net energy (intervals' opposite ends, no
    verdict: eval runs are not interleaved).

    Args:
        a: Task points of the first configuration (:func:`accuracy_points`).
        b: Task points of the second.
        scores: Per-document scores (:func:`item_scores`).
        margins: The experiment's margins.

    Returns:
        ``tasks``, ``value_a``, ``value_b``, ``energy_a``, ``energy_b`` and the two changes'
        fields as ``accuracy_change...`` and ``energy_change...`` (:func:`prefixed`); None when
        they share no task.
    """
    shared = sorted(set(a["task"]) & set(b["task"]))
    if not shared:
        return None
    left = a.set_index("task").loc[shared]
    right = b.set_index("task").loc[shared]
    sums = {}
    for side, frame in (("a", left), ("b", right)):
        sums[side] = {
            "value": float(frame["value"].mean()),
            **{
                name: float(frame[name].sum(min_count=len(frame)))
                for name in ("net_joules", "net_joules_low", "net_joules_high")
            },
        }
    fields: dict[str, object] = {
        "tasks": len(shared),
        "value_a": sums["a"]["value"],
        "value_b": sums["b"]["value"],
        "energy_a": sums["a"]["net_joules"],
        "energy_b": sums["b"]["net_joules"],
    }
    fields.update(prefixed("accuracy_change", pooled_accuracy_change(a, b, scores, margins)))
    fields.update(prefixed("energy_change", task_energy_change(sums["a"], sums["b"])))
    return fields


# Profile windows ----------------------------------------------------------------------------


def with_window_measures(windows: pd.DataFrame) -> pd.DataFrame:
    """Profile windows with J/token, tokens/s and latency per batch."""
    frame = normalized(windows)
    tokens = frame["tokens"].astype("float64")
    frame["joules_per_token"] = frame["net_joules"].astype("float64") / tokens.where(tokens > 0)
    wall = frame["wall_seconds"].astype("float64")
    frame["tokens_per_second"] = tokens / wall.where(wall > 0)
    iterations = frame["iterations"].astype("float64")
    frame["latency_seconds"] = wall / iterations.where(iterations > 0)
    cpu = frame["cpu_seconds"] if "cpu_seconds" in frame.columns else pd.Series(index=frame.index)
    frame["cpu_seconds_per_token"] = cpu.astype("float64") / tokens.where(tokens > 0)
    return frame


ENERGY_MEASURE_FIELDS: tuple[str, ...] = ("energy_method", "estimated")
"""How a row's energy was measured: its headline method and whether it is an estimate."""


def energy_measure(windows: pd.DataFrame) -> dict[str, object]:
    """How profile windows were measured (:data:`ENERGY_MEASURE_FIELDS`), None when unrecorded."""
    methods = windows["energy_method"].dropna() if "energy_method" in windows else []
    flags = windows["estimated"].dropna() if "estimated" in windows else []
    return {
        "energy_method": methods.iloc[0] if len(methods) else None,
        "estimated": bool(flags.astype(bool).any()) if len(flags) else None,
    }


def window_change(
    first: pd.Series, second: pd.Series, margins: verdicts.Margins
) -> dict[str, object]:
    """The change of ``second``'s J/token against ``first``'s, values paired by round.

    A window whose net energy is not above idle makes the change inconclusive, said so.
    """
    if (first <= 0).any() or (second <= 0).any():
        fields = findings.interval_fields(None, relative=True)
        fields.update(
            count=len(first),
            method=findings.NOT_ABOVE_IDLE_METHOD,
            verdict=verdicts.INCONCLUSIVE,
            margin=margins.of(relative=True),
            p_difference=1.0,
            p_equivalence=1.0,
            text=f"{verdicts.INCONCLUSIVE}: net energy {NOT_ABOVE_IDLE}",
        )
        return fields
    test = findings.energy_change_paired(list(first), list(second), margins.of(relative=True))
    return findings.change_fields(test, relative=True)


def paired_rounds(
    window: pd.DataFrame, first: Key, second: Key, measure: str = "joules_per_token"
) -> tuple[pd.Series, pd.Series]:
    """A measure of two configurations in the rounds of one profile window both measured.

    Args:
        window: Windows of one profile run (one experiment and model), phase and batch size
            (:func:`with_window_measures`).
        first: The first configuration's key.
        second: The second's.
        measure: The per-window column (J/token by default; ``cpu_seconds_per_token``).
    """
    checkpoints = window["checkpoint_id"].fillna("")
    mine = window[checkpoints == (first[2] or "")].set_index("round")
    theirs = window[checkpoints == (second[2] or "")].set_index("round")
    rounds = sorted(set(mine.index) & set(theirs.index))
    return (
        mine.loc[rounds, measure].astype("float64"),
        theirs.loc[rounds, measure].astype("float64"),
    )


def summary(values: pd.Series) -> tuple[float | None, float | None, float | None]:
    """Median and interval of repeated values (``stats.interval``); Nones when none is finite."""
    present = [float(v) for v in values if finite(v)]
    if not present:
        return None, None, None
    interval = stats.interval(present)
    return interval.median, interval.low, interval.high


def largest_windows(windows: pd.DataFrame) -> pd.DataFrame:
    """Each profile run's windows at its largest batch size.

    In ``findings.PROFILE_PHASE`` where it was profiled, else its other phase.
    """
    if windows.empty:
        return windows
    chosen = []
    for _, run in windows.groupby("run_id", sort=True):
        ranked = run.assign(_rank=(run["phase"] != findings.PROFILE_PHASE).astype(int))
        best = ranked.sort_values(["batch_size", "_rank"], ascending=[False, True]).iloc[0]
        chosen.append(
            run[(run["batch_size"] == best["batch_size"]) & (run["phase"] == best["phase"])]
        )
    return pd.concat(chosen, ignore_index=True)


def change_frame(
    rows: Sequence[Mapping[str, object]], columns: Sequence[str], floats: Sequence[str]
) -> pd.DataFrame:
    """Rows of changes (:data:`CHANGE_FIELDS`) as a typed frame.

    The change's figures and ``floats`` are float64, ``count`` and ``batch_size`` Int64, and
    the flags bool.
    """
    frame = pd.DataFrame(list(rows), columns=list(columns))
    floats = ("estimate", "low", "high", "margin", "p_difference", "p_equivalence", *floats)
    bools = ("relative",)
    ints = ("count", "batch_size", "family_size")
    flags = ["estimated"] if "estimated" in frame.columns else []
    return typed(frame, floats=floats, ints=ints, bools=bools, flags=flags)


def typed(
    frame: pd.DataFrame,
    floats: Sequence[str] = (),
    ints: Sequence[str] = (),
    bools: Sequence[str] = (),
    flags: Sequence[str] = (),
) -> pd.DataFrame:
    """The frame with its columns typed for stable exports.

    ``floats`` become float64, ``ints`` nullable Int64, ``bools`` bool (missing is False) and
    ``flags`` nullable boolean (missing stays unknown).
    """
    for column in floats:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in ints:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    for column in bools:
        frame[column] = frame[column].fillna(False).astype("bool")
    for column in flags:
        frame[column] = frame[column].astype("boolean")
    return frame


def profiled_changes(
    windows: pd.DataFrame, analysis: Any
) -> dict[tuple[Key, Key], dict[str, object]]:
    """The J/token change of every pair of configurations profiled together, by their keys.

    Paired by round at the run's largest batch size (:func:`largest_windows`).

    Each value holds ``energy_source``, ``energy_a``, ``energy_b`` and the change's fields
    (unjudged) as ``change``.
    """
    changes: dict[tuple[Key, Key], dict[str, object]] = {}
    if windows.empty:
        return changes
    largest = largest_windows(with_window_measures(windows))
    for _, window in largest.groupby("run_id", sort=True):
        keys = sorted({key_of(row) for row in window[CONFIG].to_dict("records")}, key=str)
        first = window.iloc[0]
        source = f"profile J/token, {first['phase']} at batch {int(first['batch_size'])}"
        for a in keys:
            for b in keys:
                if a == b:
                    continue
                x, y = paired_rounds(window, a, b)
                fields = window_change(x, y, analysis(first["experiment"]).margins)
                changes[(a, b)] = {
                    "energy_source": source,
                    "energy_a": summary(x)[0],
                    "energy_b": summary(y)[0],
                    "change": fields,
                }
    return changes


def change_columns(name: str) -> tuple[str, ...]:
    """The columns of a change as :func:`prefixed` names them, its count left out."""
    skipped = ("count", "relative")
    return tuple(prefixed(name, {f: None for f in CHANGE_FIELDS if f not in skipped}))


def prefixed(name: str, fields: Mapping[str, object]) -> dict[str, object]:
    """A change's fields as columns of ``name``.

    The estimate is ``name`` itself, the others ``name_low``, ``name_high``, ... .
    """
    return {name if key == "estimate" else f"{name}_{key}": value for key, value in fields.items()}


def judge(
    rows: Sequence[dict[str, object]],
    family: str,
    adjustment: str,
    prefix: str | None = None,
    relative: bool = False,
) -> None:
    """Adjusts the verdicts of one family of rows in place (``findings.judge_family``).

    Args:
        rows: Rows holding a change's fields, bare or as columns of ``prefix``.
        family: The family's name (``verdicts.PRIMARY``...).
        adjustment: The experiment's adjustment.
        prefix: The change's column name when the fields are :func:`prefixed`.
        relative: Whether a prefixed change is relative (bare fields carry ``relative``).
    """
    if prefix is None:
        findings.judge_family(list(rows), family, adjustment)
        return
    names = {f: prefix if f == "estimate" else f"{prefix}_{f}" for f in CHANGE_FIELDS}
    bare = [{f: row.get(name) for f, name in names.items()} for row in rows]
    for change in bare:
        change["relative"] = relative
    findings.judge_family(bare, family, adjustment)
    for row, change in zip(rows, bare, strict=True):
        row.update({name: change[f] for f, name in names.items() if f != "relative"})
