"""Altair chart builders: pure functions from DataFrames to charts.

Each builder takes the frames ``frames.py`` makes and returns an Altair chart; none calls
Streamlit, so tests can build a chart and inspect its Vega-Lite spec (``chart.to_dict()``).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from greenprune.core import findings
from results_app.frames import CURVE_MEASURES

RATIO_SCHEME = "viridis"
CHANGE_SCHEME = "redblue"


def _ratio_color(ratios: pd.Series, title: str = "pruning ratio") -> alt.Color:
    """Colour by ratio, the legend listing only the ratios shown."""
    shown = sorted(float(r) for r in ratios.dropna().unique())
    return alt.Color(
        "ratio:O",
        title=title,
        scale=alt.Scale(scheme=RATIO_SCHEME, domain=shown, reverse=True),
        legend=alt.Legend(format=".0%"),
    )


def _front_steps(points: pd.DataFrame) -> pd.DataFrame:
    """One segment per step of the front: from a point's cheaper neighbour to the point.

    A front point has a neighbour when its step has a text or ``step_distinct`` is set (the
    cheapest has neither);
    the neighbour is the front point of its experiment with ``neighbour_checkpoint_id`` (empty
    for a base model measured directly).
    """
    columns = ["energy", "accuracy", "energy_to", "accuracy_to", "step", "experiment"]
    front = points[points["on_front"].fillna(False).astype(bool)]
    checkpoints = front["checkpoint_id"].fillna("")
    steps = []
    for row in front.to_dict("records"):
        if findings.missing(row.get("step_distinct")) and findings.missing(
            row.get("accuracy_change_from_neighbour_text")
        ):
            continue
        neighbour = row.get("neighbour_checkpoint_id")
        neighbour = "" if findings.missing(neighbour) else neighbour
        same = front[(checkpoints == neighbour) & (front["experiment"] == row["experiment"])]
        if same.empty:
            continue
        start = same.iloc[0]
        steps.append(
            {
                "energy": start["energy"],
                "accuracy": start["accuracy"],
                "energy_to": row["energy"],
                "accuracy_to": row["accuracy"],
                "step": STEP_NOT_DISTINCT if row.get("step_distinct") is False else STEP_DISTINCT,
                "experiment": row["experiment"],
            }
        )
    return pd.DataFrame(steps, columns=columns)


STEP_NOT_DISTINCT = "not distinct"
"""How the chart names a step of the front whose accuracy or energy change is equivalent or
inconclusive (``step_distinct`` False)."""

STEP_DISTINCT = "distinct"
"""How the chart names every other step (both changes lower or higher, or energy without a
verdict)."""


def tradeoff_chart(
    points: pd.DataFrame, *, log_scale: bool = False, energy_title: str = "net energy (J)"
) -> alt.LayerChart:
    """Accuracy against energy: one point per configuration, the Pareto front, the baseline.

    Args:
        points: Rows of the ``tradeoff`` view (of one task, or over all tasks), with labels.
        log_scale: Whether the energy axis is logarithmic.
        energy_title: The energy axis title.

    Returns:
        Layers: energy-interval rules, stderr rules, the front's steps (dashed grey where the
        step from the cheaper neighbour is not distinct), the points (ringed in red where
        their step is not distinct), baseline labels.
    """
    data = points[points["accuracy"].notna() & points["energy"].notna()].copy()
    data["accuracy_low"] = data["accuracy"] - data["accuracy_stderr"].fillna(0)
    data["accuracy_high"] = data["accuracy"] + data["accuracy_stderr"].fillna(0)
    data["kind"] = ["baseline" if base else "compressed" for base in data["is_baseline"]]
    data["checkpoint_id"] = data["checkpoint_id"].fillna("")
    data["step"] = [
        STEP_NOT_DISTINCT if front and step is False else STEP_DISTINCT
        for front, step in zip(data["on_front"], data["step_distinct"], strict=True)
    ]
    if log_scale:
        # A log axis cannot show zero or negative energy: drop such points, clip such bounds.
        data = data[data["energy"] > 0]
        data["energy_low"] = data["energy_low"].where(data["energy_low"] > 0, data["energy"])
    energy_scale = alt.Scale(type="log" if log_scale else "linear", zero=False, nice=True)
    accuracy_scale = alt.Scale(zero=False, nice=True)
    x = alt.X("energy:Q", title=energy_title, scale=energy_scale)
    y = alt.Y("accuracy:Q", title="accuracy", scale=accuracy_scale)
    color = _ratio_color(data["ratio"])
    tooltip = [
        alt.Tooltip("label:N", title="configuration"),
        alt.Tooltip("experiment:N"),
        alt.Tooltip("task_set:N", title="tasks"),
        alt.Tooltip("method_family:N", title="method"),
        alt.Tooltip("ratio:Q", format=".0%", title="target ratio"),
        alt.Tooltip("achieved_ratio:Q", format=".1%", title="parameters removed"),
        alt.Tooltip("accuracy:Q", format=".3f"),
        alt.Tooltip("accuracy_stderr:Q", format=".3f", title="stderr"),
        alt.Tooltip("energy:Q", format=".4g", title=energy_title),
        alt.Tooltip("energy_low:Q", format=".4g", title="interval low"),
        alt.Tooltip("energy_high:Q", format=".4g", title="interval high"),
        alt.Tooltip("estimated:N", title="estimated energy"),
        alt.Tooltip("on_front:N", title="on the Pareto front"),
        alt.Tooltip("accuracy_change_from_neighbour_text:N", title="accuracy vs cheaper neighbour"),
        alt.Tooltip("energy_change_from_neighbour_text:N", title="energy vs cheaper neighbour"),
    ]
    base = alt.Chart(data)
    energy_bars = base.mark_rule(opacity=0.6).encode(
        x=alt.X("energy_low:Q", title=energy_title, scale=energy_scale),
        x2="energy_high:Q",
        y=y,
        color=color,
    )
    stderr_bars = base.mark_rule(opacity=0.6).encode(
        x=x,
        y=alt.Y("accuracy_low:Q", title="accuracy", scale=accuracy_scale),
        y2="accuracy_high:Q",
        color=color,
    )
    steps = (
        alt.Chart(_front_steps(data))
        .mark_rule(strokeWidth=2)
        .encode(
            x=x,
            y=y,
            x2="energy_to:Q",
            y2="accuracy_to:Q",
            color=alt.value("#444"),
            strokeDash=alt.StrokeDash(
                "step:N",
                title="step along the front",
                scale=alt.Scale(domain=[STEP_DISTINCT, STEP_NOT_DISTINCT], range=[[1, 0], [4, 4]]),
            ),
            opacity=alt.condition(
                f"datum.step == '{STEP_NOT_DISTINCT}'", alt.value(0.5), alt.value(0.9)
            ),
        )
    )
    dots = base.mark_point(filled=True, size=110, opacity=0.95).encode(
        x=x,
        y=y,
        color=color,
        shape=alt.Shape("method_family:N", title="method"),
        stroke=alt.condition("datum.kind == 'baseline'", alt.value("black"), alt.value(None)),
        strokeWidth=alt.condition("datum.kind == 'baseline'", alt.value(2), alt.value(0)),
        tooltip=tooltip,
    )
    indistinct = (
        base.transform_filter(f"datum.step == '{STEP_NOT_DISTINCT}'")
        .mark_point(filled=False, size=320, color="#d62728", strokeWidth=1.5)
        .encode(x=x, y=y, tooltip=tooltip)
    )
    baseline_labels = (
        base.transform_filter("datum.kind == 'baseline'")
        .mark_text(align="left", dx=9, dy=-9, fontWeight="bold")
        .encode(x=x, y=y, text=alt.value("baseline"))
    )
    return alt.layer(energy_bars, stderr_bars, steps, dots, indistinct, baseline_labels).properties(
        height=420
    )


def sparsity_chart(curves: pd.DataFrame, measure: str) -> alt.LayerChart:
    """One measure against the pruning ratio: a line per task with interval bars.

    Args:
        curves: ``sparsity_curves`` rows of one model.
        measure: A key of ``CURVE_MEASURES``.
    """
    data = curves[(curves["measure"] == measure) & curves["value"].notna()]
    title = CURVE_MEASURES[measure]
    x = alt.X("ratio:Q", title="pruning ratio", axis=alt.Axis(format=".0%"))
    y = alt.Y("value:Q", title=title, scale=alt.Scale(zero=False))
    color = alt.Color("task:N", title="task")
    base = alt.Chart(data)
    line = base.mark_line(point=True).encode(
        x=x,
        y=y,
        color=color,
        tooltip=[
            alt.Tooltip("task:N"),
            alt.Tooltip("ratio:Q", format=".0%"),
            alt.Tooltip("value:Q", format=".4g", title=title),
            alt.Tooltip("low:Q", format=".4g"),
            alt.Tooltip("high:Q", format=".4g"),
        ],
    )
    bars = base.mark_errorbar(ticks=True).encode(
        x=x, y=alt.Y("low:Q", title=title), y2="high:Q", color=color
    )
    return alt.layer(bars, line).properties(title=title, height=300)


def change_heatmap(
    changes: pd.DataFrame, value: str, title: str, *, higher_is_better: bool = True
) -> alt.LayerChart:
    """A task-by-ratio heatmap of a relative change, with the percentage written in each cell.

    Args:
        changes: ``task_changes`` rows.
        value: The column to colour by (a fraction, e.g. ``relative_delta_value``).
        title: The chart title.
        higher_is_better: Whether a rise is good (blue) rather than bad (red).
    """
    data = changes[changes[value].notna()].copy()
    limit = max(float(data[value].abs().max()) if len(data) else 0.0, 0.01)
    data["strong"] = data[value].abs() > limit * 0.6
    base = alt.Chart(data).encode(
        x=alt.X("ratio_label:O", title="pruning ratio", sort=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("row_label:N", title=None, axis=alt.Axis(labelLimit=320)),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            f"{value}:Q",
            title="change",
            scale=alt.Scale(
                scheme=CHANGE_SCHEME, domain=[-limit, limit], reverse=not higher_is_better
            ),
            legend=alt.Legend(format="+.0%"),
        ),
        tooltip=[
            alt.Tooltip("model:N"),
            alt.Tooltip("task:N"),
            alt.Tooltip("metric:N"),
            alt.Tooltip("ratio_label:O", title="ratio"),
            alt.Tooltip(f"{value}:Q", format="+.1%", title="change"),
        ],
    )
    text = base.mark_text(fontSize=12).encode(
        text=alt.Text(f"{value}:Q", format="+.1%"),
        color=alt.condition("datum.strong", alt.value("white"), alt.value("black")),
    )
    return alt.layer(cells, text).properties(title=title, height=alt.Step(32))


def layers_chart(layers: pd.DataFrame) -> alt.HConcatChart:
    """Query heads and MLP width per decoder layer, kept layers coloured apart.

    Args:
        layers: ``layers`` view rows of one prune run.
    """
    data = layers.copy()
    data["status"] = ["kept (not pruned)" if kept else "pruned" for kept in data["kept"]]
    color = alt.Color(
        "status:N",
        title="layer",
        scale=alt.Scale(domain=["kept (not pruned)", "pruned"], range=["#4c78a8", "#f58518"]),
    )
    x = alt.X("layer:O", title="decoder layer", axis=alt.Axis(labelAngle=0))
    tooltip = [
        alt.Tooltip("layer:O"),
        alt.Tooltip("attention_heads:Q", title="query heads"),
        alt.Tooltip("key_value_heads:Q", title="key/value heads"),
        alt.Tooltip("intermediate_size:Q", title="MLP width"),
        alt.Tooltip("status:N"),
    ]
    panels = [
        alt.Chart(data)
        .mark_bar()
        .encode(x=x, y=alt.Y(f"{field}:Q", title=axis), color=color, tooltip=tooltip)
        .properties(title=title, width=260, height=220)
        for field, axis, title in (
            ("attention_heads", "query heads", "kept attention heads"),
            ("intermediate_size", "MLP width", "MLP width"),
        )
    ]
    return alt.hconcat(*panels)


def components_chart(components: pd.DataFrame) -> alt.LayerChart:
    """Net energy per hardware component with its interval.

    Args:
        components: ``energy_components`` view rows of one run.
    """
    data = components.copy()
    x = alt.X("component:N", title="component", axis=alt.Axis(labelAngle=0))
    tooltip = [
        alt.Tooltip("component:N"),
        alt.Tooltip("measurement_method:N", title="method"),
        alt.Tooltip("estimated:N"),
        alt.Tooltip("net_joules:Q", format=".4g", title="net energy (J)"),
        alt.Tooltip("net_joules_low:Q", format=".4g", title="low (J)"),
        alt.Tooltip("net_joules_high:Q", format=".4g", title="high (J)"),
        alt.Tooltip("gross_joules:Q", format=".4g", title="gross energy (J)"),
        alt.Tooltip("idle_watts:Q", format=".3g", title="idle power (W)"),
    ]
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=x,
            y=alt.Y("net_joules:Q", title="net energy (J)"),
            color=alt.Color("measurement_method:N", title="method"),
            tooltip=tooltip,
        )
    )
    interval = (
        alt.Chart(data)
        .mark_errorbar(ticks=alt.MarkConfig(size=18), color="black")
        .encode(x=x, y=alt.Y("net_joules_low:Q", title="net energy (J)"), y2="net_joules_high:Q")
    )
    return alt.layer(bars, interval).properties(title="net energy by component", height=240)


def compare_chart(comparison: pd.DataFrame, first: str, second: str) -> alt.Chart:
    """Accuracy per task of two configurations as grouped bars.

    Args:
        comparison: Rows of the ``comparisons`` view of one pair, one per task (``value_a``,
            ``value_b``).
        first: The first configuration's label (the legend entry of ``accuracy_a``).
        second: The second configuration's label.
    """
    data = comparison.melt(
        id_vars=["task"], value_vars=["value_a", "value_b"], var_name="which", value_name="accuracy"
    )
    data["configuration"] = data["which"].map({"value_a": first, "value_b": second})
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("task:N", title="task", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("configuration:N", sort=[first, second]),
            y=alt.Y("accuracy:Q", title="accuracy"),
            color=alt.Color(
                "configuration:N",
                sort=[first, second],
                title=None,
                legend=alt.Legend(orient="bottom", labelLimit=400),
            ),
            tooltip=[
                alt.Tooltip("configuration:N"),
                alt.Tooltip("task:N"),
                alt.Tooltip("accuracy:Q", format=".3f"),
            ],
        )
        .properties(title="accuracy per task", height=380)
    )


def draws_chart(draws: pd.DataFrame) -> alt.Chart:
    """The accuracy of every pruning draw, one dot per draw, by point and task.

    Args:
        draws: ``frames.pruning_draws`` rows.
    """
    frame = draws.assign(
        task=draws["task"].fillna("all"),
        point=[
            f"{model} @ {ratio:.2f} ({family})"
            for model, ratio, family in zip(
                draws["model"], draws["ratio"], draws["method_family"], strict=True
            )
        ],
    )
    return (
        alt.Chart(frame)
        .mark_circle(size=70, opacity=0.8)
        .encode(
            x=alt.X("accuracy:Q", title="accuracy of each draw", scale=alt.Scale(zero=False)),
            y=alt.Y("point:N", title=None),
            color=alt.Color("task:N"),
            tooltip=["point", "task", "pruning_seed", alt.Tooltip("accuracy:Q", format=".3f")],
        )
    )
