"""Pure reshaping of the ResultsService's views into what the pages plot and print.

Every function takes and returns DataFrames (no Streamlit, no gRPC), so each can be tested on
hand-made frames. Column names are those of the views in ``results_service/views.py``.

Conventions: a *configuration* is one checkpoint of one model in one experiment (the unpruned
base model is the configuration with ratio 0 and no checkpoint). Runs of the same
configuration and task are averaged first. Across tasks, accuracy is the mean and net energy
the sum, as in the server's ``pareto_front`` view.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from greenprune.core import findings

CONFIG_KEYS = ["experiment", "model", "checkpoint_id", "ratio"]
"""The columns that name a configuration."""

BASELINE_LABEL = "unpruned"


def config_label(model: str, ratio: float | None, checkpoint_id: str | None) -> str:
    """Returns a short name for a configuration, for selectors and legends.

    Args:
        model: The base model.
        ratio: The target pruning ratio, None when unknown.
        checkpoint_id: The checkpoint, None for the base model.
    """
    if checkpoint_id is None or (isinstance(checkpoint_id, float) and math.isnan(checkpoint_id)):
        return f"{model} ({BASELINE_LABEL})"
    ratio_text = "?" if ratio is None or pd.isna(ratio) else f"{ratio:.0%}"
    return f"{model} @ {ratio_text} [{checkpoint_id[:12]}]"


def _first(series: pd.Series) -> object:
    present = series.dropna()
    return present.iloc[0] if len(present) else None


def task_points(runs: pd.DataFrame) -> pd.DataFrame:
    """Averages the ``runs`` view to one row per configuration and task.

    Args:
        runs: The ``runs`` view.

    Returns:
        Columns ``experiment, model, checkpoint_id, ratio, task, achieved_ratio,
        parameters_after, accuracy, accuracy_stderr, metric, net_joules, net_joules_low,
        net_joules_high, estimated, measurement_method, runs, label``; rows whose runs report
        no accuracy keep NaN accuracy. Labels name the experiment too when there are several.
    """
    columns = [
        *CONFIG_KEYS,
        "task",
        "achieved_ratio",
        "parameters_after",
        "parameters_before",
        "accuracy",
        "accuracy_stderr",
        "metric",
        "net_joules",
        "net_joules_low",
        "net_joules_high",
        "estimated",
        "measurement_method",
        "method_family",
        "runs",
        "label",
    ]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    frame = runs.copy()
    if "parameters_before" not in frame.columns:
        frame["parameters_before"] = np.nan
    if "method_family" not in frame.columns:
        frame["method_family"] = "width"
    frame["stderr_squared"] = frame["accuracy_stderr"].astype("float64") ** 2
    grouped = frame.groupby([*CONFIG_KEYS, "task"], dropna=False, sort=True)
    points = grouped.agg(
        achieved_ratio=("achieved_ratio", "mean"),
        parameters_after=("parameters_after", "max"),
        parameters_before=("parameters_before", "max"),
        accuracy=("accuracy", "mean"),
        stderr_squared=("stderr_squared", "mean"),
        metric=("metric", _first),
        net_joules=("net_joules", "mean"),
        net_joules_low=("net_joules_low", "mean"),
        net_joules_high=("net_joules_high", "mean"),
        estimated=("estimated", lambda s: bool(s.fillna(False).any())),
        measurement_method=("measurement_method", _first),
        method_family=("method_family", _first),
        runs=("run_id", "count"),
    ).reset_index()
    # The stderr of a mean of n runs with (about) equal stderr s is s / sqrt(n).
    points["accuracy_stderr"] = np.sqrt(points["stderr_squared"] / points["runs"])
    points["label"] = [
        config_label(m, r, c)
        for m, r, c in zip(points["model"], points["ratio"], points["checkpoint_id"], strict=True)
    ]
    # Compression variants of one model differ by method: name it where it is not plain width.
    other = points["method_family"].notna() & ~points["method_family"].isin(["width", "baseline"])
    points.loc[other, "label"] = (
        points.loc[other, "label"] + " " + points.loc[other, "method_family"]
    )
    if points["experiment"].nunique() > 1:
        points["label"] = points["experiment"].fillna("") + ": " + points["label"]
    return points[columns]


def averaged_points(points: pd.DataFrame) -> pd.DataFrame:
    """Combines ``task_points`` over tasks: mean accuracy, summed net energy.

    Only tasks with an accuracy count. The stderr of the mean is ``sqrt(sum se^2) / n``; the
    energy bounds are the sums of the per-task bounds.

    Returns:
        One row per configuration with ``task`` set to "all tasks" and a ``task_set`` column.
    """
    columns = [
        *CONFIG_KEYS,
        "task",
        "task_set",
        "tasks",
        "achieved_ratio",
        "parameters_after",
        "parameters_before",
        "accuracy",
        "accuracy_stderr",
        "net_joules",
        "net_joules_low",
        "net_joules_high",
        "estimated",
        "method_family",
        "label",
    ]
    scored = points[points["accuracy"].notna()].copy()
    if scored.empty:
        return pd.DataFrame(columns=columns)
    scored["stderr_squared"] = scored["accuracy_stderr"].astype("float64") ** 2
    grouped = scored.groupby(CONFIG_KEYS, dropna=False, sort=True)
    combined = grouped.agg(
        task_set=("task", lambda s: ",".join(sorted(s))),
        tasks=("task", "count"),
        achieved_ratio=("achieved_ratio", "mean"),
        parameters_after=("parameters_after", "max"),
        parameters_before=("parameters_before", "max"),
        accuracy=("accuracy", "mean"),
        stderr_sum=("stderr_squared", lambda s: s.sum(min_count=1)),
        net_joules=("net_joules", lambda s: s.sum(min_count=len(s))),
        net_joules_low=("net_joules_low", lambda s: s.sum(min_count=len(s))),
        net_joules_high=("net_joules_high", lambda s: s.sum(min_count=len(s))),
        estimated=("estimated", "any"),
        method_family=("method_family", "first"),
        label=("label", "first"),
    ).reset_index()
    combined["accuracy_stderr"] = np.sqrt(combined["stderr_sum"]) / combined["tasks"]
    combined["task"] = "all tasks"
    return combined[columns]


def ratio_caption(row: pd.Series) -> str:
    """Both ratios of a configuration: "20% of prunable parameters = 8.3% of all parameters"."""
    before = row.get("parameters_before")
    after = row.get("parameters_after")
    return findings.ratio_text(row.get("ratio"), findings.share_removed(before, after))


def with_profile_energy(shown: pd.DataFrame, profile: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """Puts the profile's J/token at the largest batch on the energy axis, where profiled.

    The ``net_joules`` columns of ``shown`` are replaced by the profile's J/token (median and
    interval over rounds) at its largest batch (``findings.PROFILE_PHASE`` preferred) for the
    configurations the profile measured; the others are dropped, so the axis holds one unit.

    Returns:
        The frame and whether the profile was used (False: ``shown`` unchanged).
    """
    if profile.empty or shown.empty:
        return shown, False
    ranked = profile.assign(_rank=(profile["phase"] != findings.PROFILE_PHASE).astype(int))
    ranked = ranked.sort_values(["batch_size", "_rank"], ascending=[False, True])
    best = ranked.groupby(["experiment", "model", "checkpoint_id"], sort=True).head(1)
    largest = best[["experiment", "model", "checkpoint_id", "joules_per_token"]].rename(
        columns={"joules_per_token": "_jpt"}
    )
    largest["_jpt_low"] = best["joules_per_token_low"].to_numpy()
    largest["_jpt_high"] = best["joules_per_token_high"].to_numpy()
    keyed = shown.assign(_checkpoint=shown["checkpoint_id"].fillna(""))
    merged = keyed.merge(
        largest.rename(columns={"checkpoint_id": "_checkpoint"}),
        on=["experiment", "model", "_checkpoint"],
        how="inner",
    )
    if merged.empty:
        return shown, False
    merged["net_joules"] = merged["_jpt"].astype("float64")
    merged["net_joules_low"] = merged["_jpt_low"].astype("float64")
    merged["net_joules_high"] = merged["_jpt_high"].astype("float64")
    return merged.drop(columns=["_checkpoint", "_jpt", "_jpt_low", "_jpt_high"]), True


pareto_mask = findings.pareto_mask
"""The Pareto front rule, ``findings.pareto_mask`` (the server's view uses it too)."""


def headlines(points: pd.DataFrame) -> pd.DataFrame:
    """Compares every pruned configuration with its model's unpruned baseline.

    Only the tasks both configurations report are compared. Accuracy is the mean over those
    tasks; net energy their sum. The energy change's bounds are conservative: the pruned
    interval's ends over the baseline interval's opposite ends.

    Args:
        points: ``task_points`` output.

    Returns:
        One row per pruned configuration: ``experiment, model, checkpoint_id, ratio,
        achieved_ratio, tasks, baseline_accuracy, accuracy, accuracy_change,
        accuracy_points, baseline_net_joules, net_joules, energy_change, energy_change_low,
        energy_change_high, estimated, label``. Changes are fractions (-0.1 is 10% less).
    """
    columns = [
        *CONFIG_KEYS,
        "achieved_ratio",
        "tasks",
        "baseline_accuracy",
        "accuracy",
        "accuracy_change",
        "accuracy_points",
        "baseline_net_joules",
        "net_joules",
        "energy_change",
        "energy_change_low",
        "energy_change_high",
        "estimated",
        "label",
        "removed_share",
        "accuracy_points_low",
        "accuracy_points_high",
        "accuracy_text",
        "energy_measurable",
        "energy_text",
        "energy_source",
    ]
    rows: list[dict[str, object]] = []
    valid = points[points["ratio"].notna()]
    for (experiment, model), group in valid.groupby(["experiment", "model"], sort=True):
        base = group[group["ratio"] == 0]
        if base.empty:
            continue
        base_by_task = base.groupby("task").mean(numeric_only=True)
        pruned = group[group["ratio"] > 0]
        for (checkpoint, ratio), config in pruned.groupby(["checkpoint_id", "ratio"], sort=True):
            config_by_task = config.set_index("task")
            tasks = sorted(set(config_by_task.index) & set(base_by_task.index))
            if not tasks:
                continue
            b = base_by_task.loc[tasks]
            c = config_by_task.loc[tasks]
            row: dict[str, object] = {
                "experiment": experiment,
                "model": model,
                "checkpoint_id": checkpoint,
                "ratio": ratio,
                "achieved_ratio": float(c["achieved_ratio"].mean()),
                "tasks": len(tasks),
                "estimated": bool(config["estimated"].any() or base["estimated"].any()),
                "label": config_label(model, ratio, checkpoint),
                "removed_share": findings.share_removed(
                    config["parameters_before"].max(), config["parameters_after"].max()
                ),
            }
            row.update(_accuracy_change(b, c))
            row.update(_energy_change(b, c))
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def _accuracy_change(base: pd.DataFrame, pruned: pd.DataFrame) -> dict[str, object]:
    scored = base["accuracy"].notna() & pruned["accuracy"].notna()
    if not scored.any():
        nan = float("nan")
        return {
            "baseline_accuracy": nan,
            "accuracy": nan,
            "accuracy_change": nan,
            "accuracy_points": nan,
            "accuracy_points_low": nan,
            "accuracy_points_high": nan,
            "accuracy_text": "n/a",
        }
    base_mean = float(base["accuracy"][scored].mean())
    pruned_mean = float(pruned["accuracy"][scored].mean())
    count = int(scored.sum())
    change = findings.accuracy_change_unpaired(
        base_mean,
        _mean_stderr(base["accuracy_stderr"][scored], count),
        pruned_mean,
        _mean_stderr(pruned["accuracy_stderr"][scored], count),
    )
    fields = findings.interval_fields(change, relative=False, estimate=pruned_mean - base_mean)
    return {
        "baseline_accuracy": base_mean,
        "accuracy": pruned_mean,
        "accuracy_change": _relative(pruned_mean, base_mean),
        "accuracy_points": pruned_mean - base_mean,
        "accuracy_points_low": fields["low"],
        "accuracy_points_high": fields["high"],
        "accuracy_text": fields["text"],
    }


def _mean_stderr(stderr: pd.Series, count: int) -> float | None:
    values = stderr.astype("float64")
    if values.isna().any() or not count:
        return None
    return float(np.sqrt((values**2).sum()) / count)


def _energy_change(base: pd.DataFrame, pruned: pd.DataFrame) -> dict[str, object]:
    def total(frame: pd.DataFrame, column: str) -> float:
        return float(frame[column].sum(min_count=len(frame)))

    base_figures = tuple(
        total(base, c) for c in ("net_joules", "net_joules_low", "net_joules_high")
    )
    figures = tuple(total(pruned, c) for c in ("net_joules", "net_joules_low", "net_joules_high"))
    change = findings.energy_change_unpaired(base_figures, figures)  # type: ignore[arg-type]
    fields = findings.interval_fields(change, relative=True)
    nan = float("nan")
    return {
        "baseline_net_joules": base_figures[0],
        "net_joules": figures[0],
        "energy_change": nan if change is None else change.median,
        "energy_change_low": nan if change is None else change.low,
        "energy_change_high": nan if change is None else change.high,
        "energy_measurable": fields["measurable"],
        "energy_text": fields["text"] if change is not None else "n/a",
        "energy_source": "per-task net energy",
    }


def _relative(value: float, reference: float) -> float:
    if math.isnan(value) or math.isnan(reference) or reference <= 0:
        return float("nan")
    return value / reference - 1.0


def profile_energy(findings_view: pd.DataFrame) -> pd.DataFrame:
    """The energy findings at the largest profile batch, one per checkpoint.

    ``findings.PROFILE_PHASE`` is preferred when a checkpoint was profiled in several phases.

    Returns:
        The ``findings`` view's energy rows, one per experiment, model and checkpoint.
    """
    if findings_view.empty:
        return findings_view
    energy = findings_view[findings_view["kind"] == "energy"].copy()
    if energy.empty:
        return energy
    energy["_phase_rank"] = (energy["phase"] != findings.PROFILE_PHASE).astype(int)
    energy = energy.sort_values(["batch_size", "_phase_rank"], ascending=[False, True])
    return energy.groupby(["experiment", "model", "checkpoint_id"], sort=True).head(1)


def with_profile(headline_rows: pd.DataFrame, findings_view: pd.DataFrame) -> pd.DataFrame:
    """Replaces the headline energy change by the profile's J/token change where one exists.

    Args:
        headline_rows: ``headlines`` output.
        findings_view: The ``findings`` view.
    """
    profiled = profile_energy(findings_view)
    if headline_rows.empty or profiled.empty:
        return headline_rows
    result = headline_rows.copy()
    by_key = {
        (row["experiment"], row["model"], row["checkpoint_id"]): row
        for _, row in profiled.iterrows()
    }
    for index, row in result.iterrows():
        found = by_key.get((row["experiment"], row["model"], row["checkpoint_id"]))
        if found is None:
            continue
        result.at[index, "energy_change"] = found["estimate"]
        result.at[index, "energy_change_low"] = found["low"]
        result.at[index, "energy_change_high"] = found["high"]
        result.at[index, "energy_measurable"] = bool(found["measurable"])
        result.at[index, "energy_text"] = found["text"]
        result.at[index, "energy_source"] = (
            f"profile J/token, {found['phase']} at batch {int(found['batch_size'])}"
        )
    return result


def nearest_ratio(headline_rows: pd.DataFrame, target: float = 0.2) -> pd.DataFrame:
    """Picks, per experiment and model, the headline row whose ratio is nearest ``target``."""
    if headline_rows.empty:
        return headline_rows
    distance = (headline_rows["ratio"] - target).abs()
    order = headline_rows.assign(_distance=distance).sort_values(["_distance", "ratio"])
    return (
        order.groupby(["experiment", "model"], sort=True)
        .head(1)
        .drop(columns="_distance")
        .sort_values(["experiment", "model"])
    )


def percent(value: float, digits: int = 1) -> str:
    """Formats a fraction as a signed percentage, "n/a" when missing."""
    if value is None or pd.isna(value):
        return "n/a"
    return f"{value * 100:+.{digits}f}%".replace("-", "\u2212")


def headline_text(row: pd.Series) -> str:
    """Writes one headline with both ratios and every change with its interval.

    For example "at 20% of prunable parameters = 8.3% of all parameters: accuracy −6.0 pt
    [−9.1, −2.9] (0.800 → 0.740), J/token (profile, prefill at batch 32) −23.4% [−25.1,
    −21.0] over 3 tasks"; a change whose interval contains 0 reads "no measurable change".

    Args:
        row: A row of ``headlines`` (``with_profile`` applied or not).
    """
    accuracy = (
        f"accuracy {row['accuracy_text']} "
        f"({row['baseline_accuracy']:.3f} \u2192 {row['accuracy']:.3f})"
        if pd.notna(row["accuracy_points"])
        else "accuracy n/a"
    )
    source = row.get("energy_source") or "per-task net energy"
    energy = f"{source}: {row['energy_text']}"
    tasks = f" over {row['tasks']} task{'s' if row['tasks'] != 1 else ''}"
    both = findings.ratio_text(row["ratio"], row.get("removed_share"))
    return f"at {both}: {accuracy}; {energy}{tasks}"


CURVE_MEASURES: dict[str, str] = {
    "accuracy": "accuracy (± stderr)",
    "net_joules": "net energy (J)",
    "joules_per_token": "net energy per token (J)",
    "tokens_per_second": "tokens per second",
    "latency_ms": "latency per sample (ms)",
}
"""The measures of the sparsity curves and their axis titles."""


def sparsity_curves(accuracy: pd.DataFrame, energy: pd.DataFrame) -> pd.DataFrame:
    """Builds the long frame the sparsity curves plot.

    Accuracy comes from ``accuracy_vs_sparsity`` (the first accuracy metric of each task,
    ``acc`` before ``acc_norm``) with ± stderr; energy from ``energy_vs_sparsity``: net joules,
    tokens/s and wall time with their intervals, J/token with the net-energy interval scaled
    to it, and latency as wall time per sample. Runs of one model, task and ratio are averaged.

    Returns:
        Columns ``model, task, ratio, measure, value, low, high``.
    """
    parts: list[pd.DataFrame] = []
    if not accuracy.empty:
        first_metric = (
            accuracy.assign(_rank=accuracy["metric"].map({"acc": 0, "acc_norm": 1}).fillna(2))
            .sort_values("_rank")
            .groupby(["model", "task"])["metric"]
            .first()
        )
        chosen = accuracy.merge(first_metric.rename("chosen").reset_index(), on=["model", "task"])
        chosen = chosen[chosen["metric"] == chosen["chosen"]]
        acc = _mean_by_ratio(chosen, {"value": "accuracy", "se": "accuracy_stderr"})
        acc["low"] = acc["value"] - acc["se"].fillna(0)
        acc["high"] = acc["value"] + acc["se"].fillna(0)
        parts.append(acc.assign(measure="accuracy"))
    if not energy.empty:
        frame = energy.copy()
        scale = frame["joules_per_token"] / frame["net_joules"].where(frame["net_joules"] != 0)
        frame["jpt_low"] = frame["net_joules_low"] * scale
        frame["jpt_high"] = frame["net_joules_high"] * scale
        per_sample = 1000.0 / frame["samples"].astype("float64").where(frame["samples"] > 0)
        frame["latency"] = frame["wall_seconds"] * per_sample
        frame["latency_low"] = frame["wall_seconds_low"] * per_sample
        frame["latency_high"] = frame["wall_seconds_high"] * per_sample
        for measure, (value, low, high) in {
            "net_joules": ("net_joules", "net_joules_low", "net_joules_high"),
            "joules_per_token": ("joules_per_token", "jpt_low", "jpt_high"),
            "tokens_per_second": (
                "tokens_per_second",
                "tokens_per_second_low",
                "tokens_per_second_high",
            ),
            "latency_ms": ("latency", "latency_low", "latency_high"),
        }.items():
            part = _mean_by_ratio(frame, {"value": value, "low": low, "high": high})
            parts.append(part.assign(measure=measure))
    columns = ["model", "task", "ratio", "measure", "value", "low", "high"]
    if not parts:
        return pd.DataFrame(columns=columns)
    curves = pd.concat(parts, ignore_index=True)
    return curves[columns].sort_values(["measure", "model", "task", "ratio"], ignore_index=True)


def _mean_by_ratio(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    present = frame[frame["ratio"].notna()]
    selected = present[["model", "task", "ratio", *columns.values()]].rename(
        columns={source: name for name, source in columns.items()}
    )
    for name in columns:
        selected[name] = selected[name].astype("float64")
    return selected.groupby(["model", "task", "ratio"], as_index=False).mean()


def task_changes(breakdown: pd.DataFrame) -> pd.DataFrame:
    """Keeps the pruned rows of the ``task_breakdown`` view, ready for the table and heatmap.

    Returns:
        The view's rows with ratio > 0, sorted, plus ``ratio_label`` (e.g. "20%") and
        ``row_label`` (the task, with the model and metric only where they tell rows apart).
    """
    pruned = breakdown[breakdown["ratio"].notna() & (breakdown["ratio"] > 0)].copy()
    pruned["ratio_label"] = [f"{ratio:.0%}" for ratio in pruned["ratio"]]
    several_models = pruned["model"].nunique() > 1
    several_metrics = (pruned.groupby("task")["metric"].nunique() > 1).to_dict()
    pruned["row_label"] = [
        (f"{model} · " if several_models else "")
        + task
        + (f" · {metric}" if several_metrics.get(task) else "")
        for model, task, metric in zip(
            pruned["model"], pruned["task"], pruned["metric"], strict=True
        )
    ]
    return pruned.sort_values(
        ["model", "metric_kind", "task", "metric", "ratio"], ignore_index=True
    )


def compare_configs(points: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """Puts two configurations side by side, one row per task both report.

    Args:
        points: ``task_points`` output.
        first: The ``label`` of the first configuration.
        second: The ``label`` of the second.

    Returns:
        Columns ``task, accuracy_a, accuracy_b, accuracy_change, accuracy_change_text,
        net_joules_a, net_joules_b, energy_change, energy_change_text`` (changes of b against
        a, as fractions; the texts carry the interval and say "no measurable change" when it
        contains 0).
    """
    measures = [
        "accuracy",
        "accuracy_stderr",
        "net_joules",
        "net_joules_low",
        "net_joules_high",
    ]
    a = points[points["label"] == first].groupby("task")[measures].mean()
    b = points[points["label"] == second].groupby("task")[measures].mean()
    tasks = sorted(set(a.index) & set(b.index))
    rows = []
    for task in tasks:
        acc_a, acc_b = float(a.at[task, "accuracy"]), float(b.at[task, "accuracy"])
        e_a, e_b = float(a.at[task, "net_joules"]), float(b.at[task, "net_joules"])
        accuracy = findings.accuracy_change_unpaired(
            acc_a, a.at[task, "accuracy_stderr"], acc_b, b.at[task, "accuracy_stderr"]
        )
        energy = findings.energy_change_unpaired(
            (e_a, a.at[task, "net_joules_low"], a.at[task, "net_joules_high"]),
            (e_b, b.at[task, "net_joules_low"], b.at[task, "net_joules_high"]),
        )
        rows.append(
            {
                "task": task,
                "accuracy_a": acc_a,
                "accuracy_b": acc_b,
                "accuracy_change": _relative(acc_b, acc_a),
                "accuracy_change_text": findings.describe_change(
                    accuracy, relative=False, estimate=acc_b - acc_a
                ),
                "net_joules_a": e_a,
                "net_joules_b": e_b,
                "energy_change": _relative(e_b, e_a),
                "energy_change_text": findings.describe_change(
                    energy, relative=True, estimate=_relative(e_b, e_a)
                ),
            }
        )
    columns = [
        "task",
        "accuracy_a",
        "accuracy_b",
        "accuracy_change",
        "accuracy_change_text",
        "net_joules_a",
        "net_joules_b",
        "energy_change",
        "energy_change_text",
    ]
    return pd.DataFrame(rows, columns=columns)


def with_payback(shown: pd.DataFrame, payback_view: pd.DataFrame) -> pd.DataFrame:
    """Adds the ``payback`` view's text (tokens until repaid, or never) to configurations.

    Args:
        shown: Rows with ``experiment``, ``model`` and ``checkpoint_id``.
        payback_view: The ``payback`` view.

    Returns:
        ``shown`` with a ``payback`` column: "-" for the baseline and unprofiled checkpoints.
    """
    if shown.empty:
        return shown.assign(payback=pd.Series(dtype="object"))
    if payback_view.empty:
        return shown.assign(payback="-")
    texts = {
        (row["experiment"], row["model"], row["checkpoint_id"]): row["text"]
        for _, row in payback_view.iterrows()
    }
    return shown.assign(
        payback=[
            texts.get((e, m, c), "-")
            for e, m, c in zip(
                shown["experiment"], shown["model"], shown["checkpoint_id"], strict=True
            )
        ]
    )
