"""The analysis rules of greenprune, written once.

Used by the store's views, ``greenprune report`` (``greenprune/client/report.py``) and the app
(``results_app/frames.py``) alike.

* **Headline metric** of a task (:func:`headline_metric`): ``acc``, else ``acc_norm``, else a
  perplexity metric (``word_perplexity``, ``byte_perplexity``, ``bits_per_byte``, anything
  containing "perplexity"; lower is better), else the first metric reported.
* **Baseline** (:func:`is_baseline`): the ratio-0 configuration of the same model in the same
  experiment (the unpruned model, evaluated directly or as a ratio-0 checkpoint).
* **Change against the baseline**: energy as a relative change (``other / baseline - 1``),
  paired by profile round (:func:`energy_change_paired`) or, for per-task energy measured
  without pairing, the conservative interval of the two intervals' opposite ends
  (:func:`energy_change_unpaired`); accuracy as a difference in points, paired by document
  (:func:`accuracy_change`). Every change is an ``Interval`` and is described by
  :func:`describe_change`: a change whose interval contains 0 is "no measurable change".
* **Pareto front** (:func:`pareto_mask`): the points no other point of their group beats on
  both cost (lower) and quality (higher).
* **Net energy that cannot be told from idle** (:func:`above_idle`): an interval whose lower
  bound is not above 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
from scipy.stats import norm

from greenprune.api.common.v1.energy_pb2 import Interval
from greenprune.core import stats

ACCURACY_METRICS: tuple[str, ...] = ("acc", "acc_norm")
"""Metrics that are accuracies, in order of preference for a task's headline metric."""

PERPLEXITY_METRICS: tuple[str, ...] = ("word_perplexity", "byte_perplexity", "bits_per_byte")
"""Perplexity-like metrics (lower is better), in order of preference."""

PROFILE_PHASE = "prefill"
"""The profile phase that stands for a checkpoint's energy (lm-eval scores by prefill)."""

MINUS = "\u2212"
NO_CHANGE = "no measurable change"
NO_PAIRED_DATA = "no paired data"
NOT_ABOVE_IDLE = "not distinguishable from idle"


def is_accuracy(metric: str) -> bool:
    """Whether a metric is an accuracy (a fraction, higher is better)."""
    return metric in ACCURACY_METRICS


def is_perplexity(metric: str) -> bool:
    """Whether a metric is perplexity-like (lower is better)."""
    return metric in PERPLEXITY_METRICS or "perplexity" in metric


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of the metric is better."""
    return is_perplexity(metric)


def metric_kind(metric: str) -> str:
    """Returns "accuracy", "perplexity" or "other"."""
    if is_accuracy(metric):
        return "accuracy"
    return "perplexity" if is_perplexity(metric) else "other"


def _rank(metric: str) -> tuple[int, int]:
    if metric in ACCURACY_METRICS:
        return (0, ACCURACY_METRICS.index(metric))
    if metric in PERPLEXITY_METRICS:
        return (1, PERPLEXITY_METRICS.index(metric))
    if is_perplexity(metric):
        return (1, len(PERPLEXITY_METRICS))
    return (2, 0)


def headline_metric(metrics: Iterable[str]) -> str | None:
    """Returns the metric that stands for a task, None when it reports none.

    Args:
        metrics: The metric names the task reports, in the order reported.
    """
    names = list(dict.fromkeys(metrics))
    if not names:
        return None
    return min(names, key=lambda name: (_rank(name), names.index(name)))


def headline_accuracy(metrics: Iterable[str]) -> str | None:
    """Returns the task's accuracy metric (``acc``, else ``acc_norm``), None when it has none."""
    metric = headline_metric(metrics)
    return metric if metric is not None and is_accuracy(metric) else None


def is_baseline(ratio: float | None, method_family: object = None) -> bool:
    """Whether a configuration is the baseline: ratio 0 and, where known, not compressed.

    An int8 or int4 point of the unpruned model has ratio 0 too; its method family (from the
    prune run) tells it apart from the baseline.
    """
    compressed = method_family is not None and not _missing(method_family)
    if compressed and method_family not in ("", "baseline"):
        return False
    return ratio is not None and not _missing(ratio) and float(ratio) == 0.0


def _families(frame: pd.DataFrame) -> list[object]:
    """Each row's method family, or None where the frame does not carry one."""
    if "method_family" in frame.columns:
        return list(frame["method_family"])
    return [None] * len(frame)


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


# Changes -----------------------------------------------------------------------------------


def energy_change_paired(baseline: Sequence[float], other: Sequence[float]) -> Interval | None:
    """The relative change of ``other`` against ``baseline``, values paired by round.

    Returns None when no round has a positive value for both (nothing to pair).
    """
    pairs = [
        (float(b), float(o))
        for b, o in zip(baseline, other, strict=True)
        if not _missing(b) and not _missing(o) and b > 0 and o > 0
    ]
    if not pairs:
        return None
    return stats.paired_ratio_change([b for b, _ in pairs], [o for _, o in pairs])


def energy_change_unpaired(
    baseline: tuple[float | None, float | None, float | None],
    other: tuple[float | None, float | None, float | None],
) -> Interval | None:
    """The relative change of two energies measured apart, each as (median, low, high).

    The interval is conservative: the other's ends over the baseline's opposite ends (method
    ``interval-ends``). None when a figure is missing or the baseline is not positive.
    """
    (b_mid, b_low, b_high), (o_mid, o_low, o_high) = baseline, other
    figures = (b_mid, b_low, b_high, o_mid, o_low, o_high)
    if any(_missing(value) for value in figures):
        return None
    b_mid, b_low, b_high, o_mid, o_low, o_high = (float(v) for v in figures)  # type: ignore[arg-type]
    if b_mid <= 0 or b_low <= 0 or b_high <= 0:
        return None
    return Interval(
        median=o_mid / b_mid - 1.0,
        low=min(o_low / b_high - 1.0, o_mid / b_mid - 1.0),
        high=max(o_high / b_low - 1.0, o_mid / b_mid - 1.0),
        count=0,
        method="interval-ends",
    )


def accuracy_change(
    baseline_items: Mapping[int, float], other_items: Mapping[int, float], seed: int = 0
) -> Interval | None:
    """The difference ``other - baseline`` of per-document scores, paired by document id.

    Returns None when the two share no document (no paired data).
    """
    shared = sorted(set(baseline_items) & set(other_items))
    if not shared:
        return None
    return stats.paired_difference(
        [baseline_items[doc] for doc in shared], [other_items[doc] for doc in shared], seed=seed
    )


def accuracy_change_unpaired(
    baseline: float | None,
    baseline_stderr: float | None,
    other: float | None,
    other_stderr: float | None,
) -> Interval | None:
    """The difference of two accuracies scored apart, from their standard errors.

    The normal interval ``d ± z sqrt(se_a² + se_b²)`` (method ``unpaired-stderr``): wider than
    the paired one, used only where per-document scores are missing. None when a figure is.
    """
    figures = (baseline, baseline_stderr, other, other_stderr)
    if not all(finite(value) for value in figures):
        return None
    difference = float(other) - float(baseline)  # type: ignore[arg-type]
    z = float(norm.ppf(0.5 + stats.CONFIDENCE / 2.0))
    half = z * math.hypot(float(baseline_stderr), float(other_stderr))  # type: ignore[arg-type]
    return Interval(
        median=difference,
        low=difference - half,
        high=difference + half,
        count=2,
        method="unpaired-stderr",
    )


def measurable(change: Interval | None) -> bool:
    """Whether a change's interval excludes 0; a missing interval is never measurable."""
    return change is not None and change.count != 0 and stats.measurable(change)


def _signed(value: float, scale: float, digits: int = 1) -> str:
    return f"{value * scale:+.{digits}f}".replace("-", MINUS)


def format_change(change: Interval, *, relative: bool) -> str:
    """Writes a change with its interval: "−23.4% [−25.1, −21.0]" or "−3.2 pt [−5.0, −1.1]"."""
    unit = "%" if relative else " pt"
    return (
        f"{_signed(change.median, 100)}{unit} "
        f"[{_signed(change.low, 100)}, {_signed(change.high, 100)}]"
    )


def describe_change(
    change: Interval | None, *, relative: bool, estimate: float | None = None
) -> str:
    """The text every reader shows for a change against the baseline.

    Args:
        change: The change with its interval; None when there is no interval.
        relative: True for relative changes (energy, perplexity), False for accuracy points.
        estimate: The bare point estimate to mention when there is no interval.

    Returns:
        "−23.4% [−25.1, −21.0]" when the interval excludes 0, "no measurable change (−1.2%
        [−5.0, +3.0])" when it contains 0, and "no paired data (−3.7 pt)" (or "no paired data")
        without an interval.
    """
    unit = "%" if relative else " pt"
    if change is None or (change.count == 0 and change.method != "interval-ends"):
        if estimate is None or _missing(estimate):
            return NO_PAIRED_DATA
        return f"{NO_PAIRED_DATA} ({_signed(float(estimate), 100)}{unit})"
    text = format_change(change, relative=relative)
    return text if stats.measurable(change) else f"{NO_CHANGE} ({text})"


def above_idle(low: float | None) -> bool | None:
    """Whether a net energy's interval lies above 0 (told apart from idle); None when unknown."""
    if low is None or _missing(low):
        return None
    return float(low) > 0.0


def describe_energy(median: float | None, low: float | None, high: float | None) -> str:
    """Writes a net energy with its interval, or says that it cannot be told from idle."""
    if median is None or _missing(median):
        return "-"
    if low is None or high is None or _missing(low) or _missing(high):
        return f"{median:.3g} J"
    if not above_idle(low):
        return f"{NOT_ABOVE_IDLE} ({median:.3g} J [{low:.3g}, {high:.3g}])"
    return f"{median:.3g} J [{low:.3g}, {high:.3g}]"


def interval_fields(change: Interval | None, *, relative: bool, estimate: float | None = None):
    """The columns a change contributes to a table row (estimate, low, high, ..., text)."""
    present = change is not None and not (change.count == 0 and change.method != "interval-ends")
    return {
        "estimate": change.median if present else estimate,
        "low": change.low if present else None,
        "high": change.high if present else None,
        "count": change.count if present else None,
        "method": change.method if present else NO_PAIRED_DATA,
        "measurable": bool(present and stats.measurable(change)),
        "text": describe_change(change, relative=relative, estimate=estimate),
    }


# Pareto front ------------------------------------------------------------------------------


def pareto_mask(
    points: pd.DataFrame,
    x: str = "net_joules",
    y: str = "accuracy",
    groups: Sequence[str] = ("experiment", "task"),
) -> pd.Series:
    """Marks the points no other point of their group beats on both ``x`` (lower) and ``y``.

    Points with a missing ``x`` or ``y`` are never on the front.

    Args:
        points: One row per point.
        x: The cost column; lower is better.
        y: The quality column; higher is better.
        groups: Columns that split the points into separate fronts (absent ones are ignored).
    """
    mask = pd.Series(False, index=points.index)
    valid = points[points[x].notna() & points[y].notna()]
    keys = [column for column in groups if column in valid.columns]
    parts = valid.groupby(keys, dropna=False) if keys else [((), valid)]
    for _, part in parts:
        xs = part[x].to_numpy(dtype="float64")
        ys = part[y].to_numpy(dtype="float64")
        for index, px, py in zip(part.index, xs, ys, strict=True):
            beaten = (xs <= px) & (ys >= py) & ((xs < px) | (ys > py))
            mask.loc[index] = not beaten.any()
    return mask


def share_removed(before: float | None, after: float | None) -> float | None:
    """The share of parameters removed, ``1 - after / before``; None when unknown."""
    if before is None or after is None or _missing(before) or _missing(after) or before <= 0:
        return None
    return 1.0 - float(after) / float(before)


def ratio_text(ratio: float | None, removed_share: float | None) -> str:
    """Both ratios: "20% of prunable parameters = 8.3% of all parameters"."""
    if ratio is None or _missing(ratio):
        return "ratio unknown"
    text = f"{float(ratio):.0%} of prunable parameters"
    if removed_share is not None and not _missing(removed_share):
        text += f" = {float(removed_share):.1%} of all parameters"
    return text


def finite(value: float | None) -> bool:
    """Whether a value is present and finite."""
    return value is not None and not _missing(value) and math.isfinite(float(value))


# The profile and findings views -------------------------------------------------------------

_CONFIG = ["experiment", "model", "checkpoint_id"]
_WINDOW = [*_CONFIG, "phase", "batch_size"]

PROFILE_COLUMNS: tuple[str, ...] = (
    *_WINDOW,
    "ratio",
    "achieved_ratio",
    "parameters_removed",
    "rounds",
    "joules_per_token",
    "joules_per_token_low",
    "joules_per_token_high",
    "tokens_per_second",
    "tokens_per_second_low",
    "tokens_per_second_high",
    "latency_seconds",
    "latency_seconds_low",
    "latency_seconds_high",
    "net_joules",
    "net_joules_low",
    "net_joules_high",
    "above_idle",
    "estimated",
    "energy_method",
)
"""The columns of the ``profile`` view."""

FINDINGS_COLUMNS: tuple[str, ...] = (
    "kind",
    *_CONFIG,
    "ratio",
    "parameters_removed",
    "phase",
    "batch_size",
    "task",
    "metric",
    "baseline_value",
    "value",
    "relative",
    "estimate",
    "low",
    "high",
    "count",
    "method",
    "measurable",
    "text",
)
"""The columns of the ``findings`` view."""


def _with_measures(points: pd.DataFrame) -> pd.DataFrame:
    frame = points.copy()
    tokens = frame["tokens"].astype("float64")
    frame["joules_per_token"] = frame["net_joules"].astype("float64") / tokens.where(tokens > 0)
    wall = frame["wall_seconds"].astype("float64")
    frame["tokens_per_second"] = tokens / wall.where(wall > 0)
    iterations = frame["iterations"].astype("float64")
    frame["latency_seconds"] = wall / iterations.where(iterations > 0)
    frame["parameters_removed"] = [
        share_removed(b, a)
        for b, a in zip(frame["parameters_before"], frame["parameters_after"], strict=True)
    ]
    return frame


def _summary(values: pd.Series) -> tuple[float | None, float | None, float | None]:
    present = [float(v) for v in values if finite(v)]
    if not present:
        return None, None, None
    summary = stats.interval(present)
    return summary.median, summary.low, summary.high


def profile_table(points: pd.DataFrame) -> pd.DataFrame:
    """The ``profile`` view: per checkpoint, phase and batch size, medians over rounds.

    Args:
        points: One row per measured window (``views._PROFILE_POINTS``).
    """
    if points.empty:
        return pd.DataFrame(columns=list(PROFILE_COLUMNS))
    frame = _with_measures(points)
    rows = []
    for key, group in frame.groupby(_WINDOW, sort=True, dropna=False):
        row: dict[str, object] = dict(zip(_WINDOW, key, strict=True))
        row.update(
            ratio=group["ratio"].iloc[0],
            achieved_ratio=group["achieved_ratio"].iloc[0],
            parameters_removed=group["parameters_removed"].iloc[0],
            rounds=len(group),
            estimated=bool(group["estimated"].fillna(False).any()),
            energy_method=group["energy_method"].iloc[0],
        )
        for measure in ("joules_per_token", "tokens_per_second", "latency_seconds", "net_joules"):
            mid, low, high = _summary(group[measure])
            row.update({measure: mid, f"{measure}_low": low, f"{measure}_high": high})
        row["above_idle"] = above_idle(row["net_joules_low"])  # type: ignore[arg-type]
        rows.append(row)
    return pd.DataFrame(rows, columns=list(PROFILE_COLUMNS))


def _baseline_checkpoint(group: pd.DataFrame) -> str | None:
    base = group[[is_baseline(r, f) for r, f in zip(group["ratio"], _families(group), strict=True)]]
    if base.empty:
        return None
    return str(sorted(base["checkpoint_id"].unique())[0])


def _paired_energy_fields(first: pd.Series, second: pd.Series) -> dict[str, object]:
    """The interval fields of ``second`` against ``first``, J/token values paired by round.

    A window whose net energy is not above idle makes the change unmeasurable, said so.
    """
    if (first <= 0).any() or (second <= 0).any():
        return {
            "estimate": None,
            "low": None,
            "high": None,
            "count": len(first),
            "method": "not-above-idle",
            "measurable": False,
            "text": f"{NO_CHANGE}: net energy {NOT_ABOVE_IDLE}",
        }
    return interval_fields(energy_change_paired(list(first), list(second)), relative=True)


def _item_scores(items: pd.DataFrame) -> dict[tuple[str, str], dict[int, float]]:
    """Each run's per-document scores by metric: ``{(run_id, metric): {doc_id: value}}``."""
    return {
        (run_id, metric): dict(
            zip(group["doc_id"].astype(int), group["value"].astype(float), strict=True)
        )
        for (run_id, metric), group in items.groupby(["run_id", "metric"])
    }


def _energy_findings(points: pd.DataFrame) -> list[dict[str, object]]:
    if points.empty:
        return []
    frame = _with_measures(points)
    rows: list[dict[str, object]] = []
    for (experiment, model, _run_id), run in frame.groupby(
        ["experiment", "model", "run_id"], sort=True
    ):
        baseline = _baseline_checkpoint(run)
        if baseline is None:
            continue
        for (phase, batch), window in run.groupby(["phase", "batch_size"], sort=True):
            base = window[window["checkpoint_id"] == baseline].set_index("round")
            for checkpoint, other in window.groupby("checkpoint_id", sort=True):
                if checkpoint == baseline:
                    continue
                other = other.set_index("round")
                rounds = sorted(set(base.index) & set(other.index))
                b = base.loc[rounds, "joules_per_token"].astype("float64")
                o = other.loc[rounds, "joules_per_token"].astype("float64")
                row: dict[str, object] = {
                    "kind": "energy",
                    "experiment": experiment,
                    "model": model,
                    "checkpoint_id": checkpoint,
                    "ratio": other["ratio"].iloc[0],
                    "parameters_removed": other["parameters_removed"].iloc[0],
                    "phase": phase,
                    "batch_size": batch,
                    "task": None,
                    "metric": "joules_per_token",
                    "baseline_value": _summary(b)[0],
                    "value": _summary(o)[0],
                    "relative": True,
                }
                row.update(_paired_energy_fields(b, o))
                rows.append(row)
    return rows


def _accuracy_findings(
    metrics: pd.DataFrame, items: pd.DataFrame, seed: int = 0
) -> list[dict[str, object]]:
    if metrics.empty:
        return []
    own = metrics[metrics["metric_task"].isna() | (metrics["metric_task"] == metrics["task"])]
    headline = {run_id: headline_metric(group["metric"]) for run_id, group in own.groupby("run_id")}
    runs = own.drop_duplicates("run_id").set_index("run_id")
    scores = _item_scores(items)
    rows: list[dict[str, object]] = []
    latest = (
        runs.reset_index()
        .sort_values("seq")
        .groupby(["experiment", "model", "task", "checkpoint_id"], dropna=False)
        .tail(1)
    )
    for (experiment, model, task), group in latest.groupby(
        ["experiment", "model", "task"], sort=True
    ):
        base_rows = group[
            [is_baseline(r, f) for r, f in zip(group["ratio"], _families(group), strict=True)]
        ]
        if base_rows.empty:
            continue
        base = base_rows.sort_values("seq").iloc[-1]
        metric = headline.get(base["run_id"])
        if metric is None:
            continue
        base_value = _metric_value(own, base["run_id"], metric)
        for _, run in group.iterrows():
            if run["run_id"] == base["run_id"] or is_baseline(
                run["ratio"], run.get("method_family")
            ):
                continue
            value = _metric_value(own, run["run_id"], metric)
            accuracy = is_accuracy(metric)
            row: dict[str, object] = {
                "kind": "accuracy",
                "experiment": experiment,
                "model": model,
                "checkpoint_id": run["checkpoint_id"],
                "ratio": run["ratio"],
                "parameters_removed": share_removed(
                    run["parameters_before"], run["parameters_after"]
                ),
                "phase": None,
                "batch_size": None,
                "task": task,
                "metric": metric,
                "baseline_value": base_value,
                "value": value,
                "relative": not accuracy,
            }
            point = None
            if finite(value) and finite(base_value):
                point = value - base_value if accuracy else _relative(value, base_value)  # type: ignore[operator]
            change = None
            if accuracy:
                change = accuracy_change(
                    scores.get((base["run_id"], metric), {}),
                    scores.get((run["run_id"], metric), {}),
                    seed=seed,
                )
            row.update(interval_fields(change, relative=not accuracy, estimate=point))
            rows.append(row)
    return rows


def _metric_value(metrics: pd.DataFrame, run_id: str, metric: str) -> float | None:
    found = metrics[(metrics["run_id"] == run_id) & (metrics["metric"] == metric)]["value"]
    return float(found.iloc[0]) if len(found) else None


def _relative(value: float, reference: float) -> float | None:
    return value / reference - 1.0 if reference else None


def findings_table(
    points: pd.DataFrame, metrics: pd.DataFrame, items: pd.DataFrame
) -> pd.DataFrame:
    """The ``findings`` view: every difference against the baseline with its interval.

    Args:
        points: Profile windows (``views._PROFILE_POINTS``).
        metrics: Metric rows of eval runs with their configuration (``views._EVAL_METRICS``).
        items: Per-document scores (``views._ITEM_SCORES``).
    """
    rows = _energy_findings(points) + _accuracy_findings(metrics, items)
    frame = pd.DataFrame(rows, columns=list(FINDINGS_COLUMNS))
    frame["measurable"] = frame["measurable"].astype("bool")
    frame["relative"] = frame["relative"].astype("bool")
    for column in ("count", "batch_size"):
        frame[column] = frame[column].astype("Int64")
    for column in ("estimate", "low", "high", "baseline_value", "value", "ratio"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["parameters_removed"] = pd.to_numeric(
        frame["parameters_removed"], errors="coerce"
    ).astype("float64")
    return frame


# The payback view ---------------------------------------------------------------------------

PAYBACK_COLUMNS: tuple[str, ...] = (
    *_CONFIG,
    "ratio",
    "recovered",
    "phase",
    "batch_size",
    "pruning_joules",
    "recovery_joules",
    "cost_joules",
    "baseline_joules_per_token",
    "change",
    "change_low",
    "change_high",
    "saving_joules_per_token",
    "saving_joules_per_token_low",
    "saving_joules_per_token_high",
    "payback_tokens",
    "payback_tokens_low",
    "payback_tokens_high",
    "never",
    "text",
)
"""The columns of the ``payback`` view."""


def payback_table(points: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """The ``payback`` view: per compressed checkpoint, the inference tokens that repay its cost.

    The saving per token is the paired J/token change against the baseline in the profile's
    :data:`PROFILE_PHASE` at the largest batch size profiled (the steady state of serving); the
    cost is the pruning's net energy plus the recovery's (``greenprune.core.payback``).

    Args:
        points: Profile windows (``views._PROFILE_POINTS``).
        costs: One row per checkpoint: ``checkpoint_id``, ``pruning_joules``,
            ``recovery_joules`` (NULL without recovery), ``recovered``.
    """
    from greenprune.core.payback import payback

    energy = pd.DataFrame(_energy_findings(points), columns=list(FINDINGS_COLUMNS))
    energy = energy[energy["phase"] == PROFILE_PHASE]
    if energy.empty or costs.empty:
        return pd.DataFrame(columns=list(PAYBACK_COLUMNS))
    cost_of = costs.drop_duplicates("checkpoint_id", keep="last").set_index("checkpoint_id")
    rows = []
    for _, group in energy.groupby(["experiment", "model"], sort=True):
        largest = group["batch_size"].max()
        for _, finding in group[group["batch_size"] == largest].iterrows():
            checkpoint = finding["checkpoint_id"]
            if checkpoint not in cost_of.index:
                continue
            cost = cost_of.loc[checkpoint]
            pruning = float(cost["pruning_joules"]) if finite(cost["pruning_joules"]) else 0.0
            recovery = float(cost["recovery_joules"]) if finite(cost["recovery_joules"]) else 0.0
            row: dict[str, object] = {
                **{key: finding[key] for key in (*_CONFIG, "ratio", "phase", "batch_size")},
                "recovered": bool(cost["recovered"]) if not _missing(cost["recovered"]) else False,
                "pruning_joules": pruning,
                "recovery_joules": recovery,
                "cost_joules": max(pruning + recovery, 0.0),
                "baseline_joules_per_token": finding["baseline_value"],
                "change": finding["estimate"],
                "change_low": finding["low"],
                "change_high": finding["high"],
            }
            base = finding["baseline_value"]
            if finite(finding["estimate"]) and finite(base) and float(base) > 0:
                change = Interval(
                    median=float(finding["estimate"]),
                    low=float(finding["low"]),
                    high=float(finding["high"]),
                )
                result = payback(float(row["cost_joules"]), float(base), change)  # type: ignore[arg-type]
                saving, text = result.saving, result.describe()
                tokens = (result.tokens, result.tokens_low, result.tokens_high)
            else:
                saving, tokens = (None, None, None), (None, None, None)
                text = f"never: {finding['text']}"
            row.update(
                saving_joules_per_token=saving[0],
                saving_joules_per_token_low=saving[1],
                saving_joules_per_token_high=saving[2],
                payback_tokens=tokens[0],
                payback_tokens_low=tokens[1],
                payback_tokens_high=tokens[2],
                never=tokens[0] is None,
                text=text,
            )
            rows.append(row)
    frame = pd.DataFrame(rows, columns=list(PAYBACK_COLUMNS))
    frame["batch_size"] = frame["batch_size"].astype("Int64")
    for column in ("ratio", *PAYBACK_COLUMNS[PAYBACK_COLUMNS.index("pruning_joules") : -2]):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["never"] = frame["never"].astype("bool")
    frame["recovered"] = frame["recovered"].astype("bool")
    return frame


# The method comparison view -----------------------------------------------------------------

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
    "estimate",
    "low",
    "high",
    "count",
    "method",
    "measurable",
    "text",
)
"""The columns of the ``method_comparison`` view: ``b`` against ``a``, of equal size."""


def _equal_size_pairs(configs: pd.DataFrame) -> list[tuple[dict[str, object], dict[str, object]]]:
    """Pairs of compressed checkpoints with the same target ratio (the same size to remove).

    ``configs`` has one row per checkpoint with ``ratio`` and ``method_family``; baselines and
    checkpoints without a family are left out. Within a ratio the methods pair in name order.
    """
    pairs = []
    usable = configs[
        [
            not is_baseline(r, f) and not _missing(f)
            for r, f in zip(configs["ratio"], configs["method_family"], strict=True)
        ]
    ]
    for _ratio, group in usable.groupby("ratio", sort=True):
        rows = group.sort_values(["method_family", "checkpoint_id"]).to_dict("records")
        for index, first in enumerate(rows):
            for second in rows[index + 1 :]:
                if first["method_family"] != second["method_family"]:
                    pairs.append((first, second))
    return pairs


def _comparison(
    kind: str, key: dict[str, object], a: dict[str, object], b: dict[str, object]
) -> dict[str, object]:
    return {
        "kind": kind,
        **key,
        "ratio": a["ratio"],
        "checkpoint_a": a["checkpoint_id"],
        "method_a": a["method_family"],
        "checkpoint_b": b["checkpoint_id"],
        "method_b": b["method_family"],
    }


def method_comparison_table(
    points: pd.DataFrame, metrics: pd.DataFrame, items: pd.DataFrame, seed: int = 0
) -> pd.DataFrame:
    """The ``method_comparison`` view: compression methods of equal size against each other.

    Energy is paired by profile round (every variant of a model is profiled in the same
    rounds), accuracy by document, with the same rules as the ``findings`` view.

    Args:
        points: Profile windows (``views._PROFILE_POINTS``), with ``method_family``.
        metrics: Metric rows of eval runs (``views._EVAL_METRICS``), with ``method_family``.
        items: Per-document scores (``views._ITEM_SCORES``).
        seed: Seed of the accuracy bootstrap.
    """
    rows: list[dict[str, object]] = []
    if not points.empty and "method_family" in points.columns:
        frame = _with_measures(points)
        for (experiment, model, _run), run in frame.groupby(
            ["experiment", "model", "run_id"], sort=True
        ):
            configs = run.drop_duplicates("checkpoint_id")
            for a, b in _equal_size_pairs(configs):
                for (phase, batch), window in run.groupby(["phase", "batch_size"], sort=True):
                    first = window[window["checkpoint_id"] == a["checkpoint_id"]]
                    second = window[window["checkpoint_id"] == b["checkpoint_id"]]
                    first, second = first.set_index("round"), second.set_index("round")
                    rounds = sorted(set(first.index) & set(second.index))
                    x = first.loc[rounds, "joules_per_token"].astype("float64")
                    y = second.loc[rounds, "joules_per_token"].astype("float64")
                    row = _comparison("energy", {"experiment": experiment, "model": model}, a, b)
                    row.update(
                        phase=phase,
                        batch_size=batch,
                        task=None,
                        metric="joules_per_token",
                        value_a=_summary(x)[0],
                        value_b=_summary(y)[0],
                        relative=True,
                    )
                    row.update(_paired_energy_fields(x, y))
                    rows.append(row)
    if not metrics.empty and "method_family" in metrics.columns:
        own = metrics[metrics["metric_task"].isna() | (metrics["metric_task"] == metrics["task"])]
        scores = _item_scores(items)
        latest = (
            own.drop_duplicates("run_id")
            .sort_values("seq")
            .groupby(["experiment", "model", "task", "checkpoint_id"], dropna=False)
            .tail(1)
        )
        for (experiment, model, task), group in latest.groupby(
            ["experiment", "model", "task"], sort=True
        ):
            for a, b in _equal_size_pairs(group):
                metric = headline_metric(own[own["run_id"] == a["run_id"]]["metric"])
                if metric is None:
                    continue
                value_a = _metric_value(own, str(a["run_id"]), metric)
                value_b = _metric_value(own, str(b["run_id"]), metric)
                accuracy = is_accuracy(metric)
                key = {"experiment": experiment, "model": model}
                row = _comparison("accuracy", key, a, b)
                row.update(
                    phase=None,
                    batch_size=None,
                    task=task,
                    metric=metric,
                    value_a=value_a,
                    value_b=value_b,
                    relative=not accuracy,
                )
                point = None
                if finite(value_a) and finite(value_b):
                    point = (
                        value_b - value_a  # type: ignore[operator]
                        if accuracy
                        else _relative(value_b, value_a)  # type: ignore[arg-type]
                    )
                change = None
                if accuracy:
                    change = accuracy_change(
                        scores.get((str(a["run_id"]), metric), {}),
                        scores.get((str(b["run_id"]), metric), {}),
                        seed=seed,
                    )
                row.update(interval_fields(change, relative=not accuracy, estimate=point))
                rows.append(row)
    frame = pd.DataFrame(rows, columns=list(METHOD_COMPARISON_COLUMNS))
    frame["measurable"] = frame["measurable"].astype("bool")
    frame["relative"] = frame["relative"].astype("bool")
    for column in ("count", "batch_size"):
        frame[column] = frame[column].astype("Int64")
    for column in ("estimate", "low", "high", "value_a", "value_b", "ratio"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame
