"""Labels and reshaping of the ResultsService's views for the pages: no comparison, no rule.

Every figure, interval, baseline and front the pages show comes from a view (the rules are the
ResultsService's); the functions here only name configurations, pick rows and turn tables into
the long frames the charts draw, so each can be tested on hand-made frames. Column names are
those of the views (``results_service/views.py``).
"""

from __future__ import annotations

import pandas as pd

from greenprune.core import findings

BASELINE_LABEL = "unpruned"

CURVE_MEASURES: dict[str, str] = {
    "accuracy": "accuracy (± stderr)",
    "net_joules": "net energy (J)",
    "joules_per_token": "net energy per token (J)",
    "tokens_per_second": "tokens per second",
    "latency_ms": "latency per sample (ms)",
}
"""The measures of the sparsity curves and their axis titles."""

_CURVE_COLUMNS: dict[str, tuple[str, str, str]] = {
    "net_joules": ("net_joules", "net_joules_low", "net_joules_high"),
    "joules_per_token": ("joules_per_token", "joules_per_token_low", "joules_per_token_high"),
    "tokens_per_second": (
        "tokens_per_second",
        "tokens_per_second_low",
        "tokens_per_second_high",
    ),
    "latency_ms": ("latency_ms", "latency_ms_low", "latency_ms_high"),
}
"""The ``energy_vs_sparsity`` columns of each energy curve: value, low, high."""


def _family_suffix(method_family: object) -> str:
    """`` depth``, `` int8``, ...: the family where it is not plain width pruning."""
    if findings.missing(method_family):
        return ""
    family = str(method_family)
    return "" if family in ("width", findings.BASELINE_FAMILY) else f" {family}"


def _ratio_label(ratio: object, method_family: object) -> str:
    text = "?" if findings.missing(ratio) else f"{float(ratio):.0%}"  # type: ignore[arg-type]
    return text + _family_suffix(method_family)


def config_label(
    model: str, ratio: object, checkpoint_id: object, method_family: object = None
) -> str:
    """A short name for a configuration, for selectors and legends.

    Args:
        model: The base model.
        ratio: The target pruning ratio, None when unknown.
        checkpoint_id: The checkpoint, None for the base model.
        method_family: The compression family; named unless it is plain width pruning.
    """
    if findings.missing(checkpoint_id):
        return f"{model} ({BASELINE_LABEL})"
    ratio_text = "?" if findings.missing(ratio) else f"{float(ratio):.0%}"  # type: ignore[arg-type]
    return f"{model} @ {ratio_text} [{str(checkpoint_id)[:12]}]{_family_suffix(method_family)}"


def with_labels(frame: pd.DataFrame, prefix: str = "") -> pd.DataFrame:
    """Adds a ``label`` column naming each row's configuration.

    The label names the experiment too when the frame holds several.

    Args:
        frame: Rows with ``model``, ``ratio``, ``checkpoint_id`` and ``method_family`` (named
            ``{name}{prefix}`` when ``prefix`` is given, e.g. ``checkpoint_a``).
        prefix: The suffix of the configuration columns (``_a``, ``_b``), empty for none.
    """
    if frame.empty:
        return frame.assign(label=pd.Series(dtype="object"))
    labels = [
        config_label(model, ratio, checkpoint, family)
        for model, ratio, checkpoint, family in zip(
            frame["model"],
            frame[f"ratio{prefix}"],
            frame[f"checkpoint{prefix}" if prefix else "checkpoint_id"],
            frame[f"method{prefix}" if prefix else "method_family"],
            strict=True,
        )
    ]
    if frame["experiment"].nunique() > 1:
        labels = [f"{e}: {label}" for e, label in zip(frame["experiment"], labels, strict=True)]
    return frame.assign(label=labels)


def ratio_caption(row: pd.Series) -> str:
    """Both ratios of a configuration: "20% of prunable parameters = 8.3% of all parameters"."""
    return findings.ratio_text(row.get("ratio"), row.get("parameters_removed"))


def nearest_ratio(rows: pd.DataFrame, target: float = 0.2, ratio: str = "ratio_b") -> pd.DataFrame:
    """Picks, per experiment and model, the row whose ratio is nearest ``target``."""
    if rows.empty:
        return rows
    distance = (rows[ratio] - target).abs()
    order = rows.assign(_distance=distance).sort_values(["_distance", ratio], kind="stable")
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
    return f"{value * 100:+.{digits}f}%".replace("-", findings.MINUS)


def verdict_caption(frame: pd.DataFrame, prefixes: tuple[str, ...] = ("",)) -> str:
    """How a table's verdicts were reached: the rule, the families and the margins.

    Args:
        frame: Rows of a view with change columns.
        prefixes: The changes' column names (``accuracy_change``...); ``""`` for bare ones
            (``verdict``, ``family``... as in ``findings``).
    """
    families: list[tuple[object, object, object]] = []
    margins: list[str] = []
    for prefix in prefixes:
        name = f"{prefix}_" if prefix else ""
        if f"{name}family" not in frame.columns:
            continue
        families += list(
            zip(
                frame[f"{name}family"],
                frame[f"{name}family_size"],
                frame[f"{name}adjustment"],
                strict=True,
            )
        )
        relative = prefix == "energy_change" if prefix else bool(frame["relative"].any())
        margins.append(findings.margin_text(list(frame[f"{name}margin"]), relative=relative))
    return (
        f"Verdicts: {findings.VERDICT_NOTE} Families: {findings.families_text(families)}"
        + "".join(margins)
        + "."
    )


def headline_text(row: pd.Series) -> str:
    """Writes one row of the ``comparisons`` view (b against the baseline, over all tasks).

    For example "at 20% of prunable parameters = 8.3% of all parameters: accuracy lower:
    −6.0 pt [−9.1, −2.9] (0.800 → 0.740); profile J/token, prefill at batch 32: lower: −23.4%
    [−25.1, −21.0] over 3 tasks"; every change leads with its verdict.
    """
    accuracy = (
        f"accuracy {row['accuracy_change_text']} ({row['value_a']:.3f} \u2192 {row['value_b']:.3f})"
        if pd.notna(row["accuracy_change"])
        else "accuracy n/a"
    )
    energy = f"{row['energy_source']}: {row['energy_change_text']}"
    tasks = int(row["tasks"])
    both = findings.ratio_text(row["ratio_b"], row.get("parameters_removed_b"))
    return f"at {both}: {accuracy}; {energy} over {tasks} task{'s' if tasks != 1 else ''}"


TRADEOFF_CAPTION = (
    "Colour: pruning ratio; shape: compression method. Ringed in black and labelled: the "
    "baseline. Grey line: the Pareto front (no other point is both more accurate and "
    "cheaper), dashed where a point's accuracy or energy change from its cheaper "
    "neighbour on the front is equivalent or inconclusive, and that point ringed in red. "
    "Vertical bars: \u00b1 one standard error of accuracy; horizontal bars: the energy interval "
    "(the profile's J/token over rounds where a profile exists). Payback: inference tokens "
    "until the J/token saved repays the pruning and recovery energy (\u2265 N when the "
    "saving's interval reaches 0, never only when it is measurably not above 0). "
)
"""What the trade-off chart shows, as the app and the HTML report caption it."""


def tradeoff_points(points: pd.DataFrame, task: str | None = None) -> tuple[pd.DataFrame, str]:
    """The rows of the ``tradeoff`` view the trade-off chart draws, and its energy axis title.

    Args:
        points: The ``tradeoff`` view.
        task: One task's rows; None for each configuration over all its tasks.

    Returns:
        ``(plottable, energy_title)``: the labelled rows with both an accuracy and an energy.
    """
    shown = points[points["task"].isna()] if task is None else points[points["task"] == task]
    shown = with_labels(shown)
    if (shown["energy_measure"] == "joules_per_token").any():
        energy_title = "net energy per token, profile at the largest batch (J/token)"
    elif task is None:
        energy_title = "net energy, summed over tasks (J)"
    else:
        energy_title = f"net energy on {task} (J)"
    plottable = shown[shown["accuracy"].notna() & shown["energy"].notna()]
    return plottable, energy_title


def tradeoff_caption(plottable: pd.DataFrame) -> str:
    """The trade-off chart's caption: what it shows, then how its steps were judged."""
    return TRADEOFF_CAPTION + verdict_caption(
        plottable.rename(
            columns={
                "step_family": "family",
                "step_family_size": "family_size",
                "step_adjustment": "adjustment",
            }
        ).assign(margin=None, relative=False)
    )


def sparsity_curves(accuracy: pd.DataFrame, energy: pd.DataFrame) -> pd.DataFrame:
    """The long frame the sparsity curves plot, one row per model, task, ratio and measure.

    Accuracy is each task's headline metric (``is_headline`` of ``accuracy_vs_sparsity``) with
    ± one standard error; the energy measures are the ``energy_vs_sparsity`` columns with their
    intervals. Runs of one model, task and ratio are averaged.

    Returns:
        Columns ``model, task, ratio, measure, value, low, high``.
    """
    parts: list[pd.DataFrame] = []
    if not accuracy.empty:
        chosen = accuracy[accuracy["is_headline"].fillna(False).astype(bool)]
        acc = _mean_by_ratio(chosen, {"value": "accuracy", "se": "accuracy_stderr"})
        acc["low"] = acc["value"] - acc["se"].fillna(0)
        acc["high"] = acc["value"] + acc["se"].fillna(0)
        parts.append(acc.assign(measure="accuracy"))
    if not energy.empty:
        for measure, (value, low, high) in _CURVE_COLUMNS.items():
            part = _mean_by_ratio(energy, {"value": value, "low": low, "high": high})
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
    """The rows of the ``task_breakdown`` view that are not the baseline, for table and heatmap.

    Returns:
        Those rows, sorted, plus ``ratio_label`` (e.g. "20%", with the method family where it
        is not plain width) and ``row_label`` (the task, with the model and metric only where
        they tell rows apart).
    """
    changed = breakdown[~breakdown["is_baseline"].fillna(False).astype(bool)].copy()
    changed = changed[changed["baseline_value"].notna()]
    changed["ratio_label"] = [
        _ratio_label(ratio, family)
        for ratio, family in zip(changed["ratio"], changed["method_family"], strict=True)
    ]
    several_models = changed["model"].nunique() > 1
    several_metrics = (changed.groupby("task")["metric"].nunique() > 1).to_dict()
    changed["row_label"] = [
        (f"{model} · " if several_models else "")
        + task
        + (f" · {metric}" if several_metrics.get(task) else "")
        for model, task, metric in zip(
            changed["model"], changed["task"], changed["metric"], strict=True
        )
    ]
    return changed.sort_values(
        ["model", "metric_kind", "task", "metric", "ratio"], ignore_index=True
    )


def kernel_rows(found: pd.DataFrame) -> pd.DataFrame:
    """What each profiled configuration's kernels could save, and what was measured.

    One row per configuration: its energy finding in the profile's headline phase at the
    largest batch size (as the payback), with kernel path, MACs skipped, realization ratio
    and the note, labelled.
    """
    energy = found[(found["kind"] == "energy") & (found["phase"] == findings.PROFILE_PHASE)]
    energy = energy[energy["kernel_note"].fillna("").astype(str) != ""]
    if energy.empty:
        return energy.assign(label=pd.Series(dtype="object"))
    largest = energy.groupby(["experiment", "model"])["batch_size"].transform("max")
    chosen = energy[energy["batch_size"] == largest]
    return with_labels(chosen.sort_values(["model", "ratio", "checkpoint_id"], kind="stable"))


def dense_zeroed(rows: pd.DataFrame) -> list[str]:
    """The labels of configurations whose zeroed weights ran on dense kernels (no saving)."""
    notes = rows.get("kernel_note", pd.Series(dtype="object")).fillna("").astype(str)
    return [
        label
        for label, note in zip(rows["label"], notes, strict=True)
        if findings.NO_SAVING in note
    ]


DRAW_COLUMNS = ("model", "ratio", "method_family", "task", "draw", "pruning_seed", "accuracy")
"""The columns of :func:`pruning_draws`."""


def pruning_draws(points: pd.DataFrame, configurations: pd.DataFrame) -> pd.DataFrame:
    """Each pruning draw's accuracy, for the points pruned with several draws (``seeds``).

    Args:
        points: The ``tradeoff`` view (one row per configuration and task, task NULL: the
            mean over tasks).
        configurations: The ``configurations`` view (``draw_of``, ``draws``,
            ``pruning_seed``).

    Returns:
        One row per draw and task (``task`` None: over tasks), ``draw`` the checkpoint of the
        point's first draw (:data:`DRAW_COLUMNS`); empty when no point has several draws.
    """
    if points.empty or configurations.empty or "draws" not in configurations.columns:
        return pd.DataFrame(columns=list(DRAW_COLUMNS))
    drawn = configurations[configurations["draws"].fillna(1) > 1]
    drawn = drawn.drop_duplicates(["experiment", "checkpoint_id"])
    if drawn.empty:
        return pd.DataFrame(columns=list(DRAW_COLUMNS))
    merged = points.merge(
        drawn[["experiment", "checkpoint_id", "draw_of", "pruning_seed"]],
        on=["experiment", "checkpoint_id"],
    ).rename(columns={"draw_of": "draw"})
    merged = merged[merged["accuracy"].notna()]
    return merged.sort_values(["model", "ratio", "draw", "task", "pruning_seed"])[
        list(DRAW_COLUMNS)
    ].reset_index(drop=True)
