"""Altair chart builders: pure functions from DataFrames to charts.

Each builder takes the frames ``frames.py`` makes and returns an Altair chart; none calls
Streamlit, so tests can build a chart and inspect its Vega-Lite spec (``chart.to_dict()``).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from results_app.frames import CURVE_MEASURES

RATIO_SCHEME = "viridis"
CHANGE_SCHEME = "redblue"


def _ratio_color(title: str = "pruning ratio") -> alt.Color:
    return alt.Color(
        "ratio:Q",
        title=title,
        scale=alt.Scale(scheme=RATIO_SCHEME, domain=[0, 1], reverse=True),
        legend=alt.Legend(format=".0%"),
    )


def tradeoff_chart(
    points: pd.DataFrame, *, log_scale: bool = False, energy_title: str = "net energy (J)"
) -> alt.LayerChart:
    """Accuracy against net energy: one point per configuration, the Pareto front, the baseline.

    Args:
        points: ``task_points`` or ``averaged_points`` rows with an ``on_front`` column.
        log_scale: Whether the energy axis is logarithmic.
        energy_title: The energy axis title.

    Returns:
        Layers: energy-interval rules, stderr rules, the front line, the points, baseline labels.
    """
    data = points[points["accuracy"].notna() & points["net_joules"].notna()].copy()
    data["accuracy_low"] = data["accuracy"] - data["accuracy_stderr"].fillna(0)
    data["accuracy_high"] = data["accuracy"] + data["accuracy_stderr"].fillna(0)
    data["kind"] = ["baseline" if ratio == 0 else "pruned" for ratio in data["ratio"]]
    data["checkpoint_id"] = data["checkpoint_id"].fillna("")
    if log_scale:
        # A log axis cannot show zero or negative energy: drop such points, clip such bounds.
        data = data[data["net_joules"] > 0]
        data["net_joules_low"] = data["net_joules_low"].where(
            data["net_joules_low"] > 0, data["net_joules"]
        )
    energy_scale = alt.Scale(type="log" if log_scale else "linear", zero=False, nice=True)
    accuracy_scale = alt.Scale(zero=False, nice=True)
    x = alt.X("net_joules:Q", title=energy_title, scale=energy_scale)
    y = alt.Y("accuracy:Q", title="accuracy", scale=accuracy_scale)
    tooltip = [
        alt.Tooltip("label:N", title="configuration"),
        alt.Tooltip("experiment:N"),
        alt.Tooltip("task:N"),
        alt.Tooltip("method_family:N", title="method"),
        alt.Tooltip("ratio:Q", format=".0%", title="target ratio"),
        alt.Tooltip("achieved_ratio:Q", format=".1%", title="parameters removed"),
        alt.Tooltip("accuracy:Q", format=".3f"),
        alt.Tooltip("accuracy_stderr:Q", format=".3f", title="stderr"),
        alt.Tooltip("net_joules:Q", format=".4g", title="net energy (J)"),
        alt.Tooltip("net_joules_low:Q", format=".4g", title="interval low (J)"),
        alt.Tooltip("net_joules_high:Q", format=".4g", title="interval high (J)"),
        alt.Tooltip("estimated:N", title="estimated energy"),
        alt.Tooltip("on_front:N", title="on the Pareto front"),
    ]
    base = alt.Chart(data)
    energy_bars = base.mark_rule(opacity=0.6).encode(
        x=alt.X("net_joules_low:Q", title=energy_title, scale=energy_scale),
        x2="net_joules_high:Q",
        y=y,
        color=_ratio_color(),
    )
    stderr_bars = base.mark_rule(opacity=0.6).encode(
        x=x,
        y=alt.Y("accuracy_low:Q", title="accuracy", scale=accuracy_scale),
        y2="accuracy_high:Q",
        color=_ratio_color(),
    )
    front = (
        alt.Chart(data[data["on_front"]].sort_values("net_joules"))
        .mark_line(strokeDash=[6, 3], color="#444", point=False)
        .encode(x=x, y=y, detail="experiment:N", order="net_joules:Q")
    )
    dots = base.mark_point(filled=True, size=110, opacity=0.95).encode(
        x=x,
        y=y,
        color=_ratio_color(),
        shape=alt.Shape("method_family:N", title="method"),
        stroke=alt.condition("datum.kind == 'baseline'", alt.value("black"), alt.value(None)),
        strokeWidth=alt.condition("datum.kind == 'baseline'", alt.value(2), alt.value(0)),
        tooltip=tooltip,
    )
    baseline_labels = (
        base.transform_filter("datum.kind == 'baseline'")
        .mark_text(align="left", dx=9, dy=-9, fontWeight="bold")
        .encode(x=x, y=y, text=alt.value("baseline"))
    )
    return alt.layer(energy_bars, stderr_bars, front, dots, baseline_labels).properties(height=420)


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
    heads = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=x, y=alt.Y("attention_heads:Q", title="query heads"), color=color, tooltip=tooltip
        )
        .properties(title="kept attention heads", width=260, height=220)
    )
    widths = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=x,
            y=alt.Y("intermediate_size:Q", title="MLP width"),
            color=color,
            tooltip=tooltip,
        )
        .properties(title="MLP width", width=260, height=220)
    )
    return alt.hconcat(heads, widths)


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
        comparison: ``compare_configs`` output.
        first: The first configuration's label (the legend entry of ``accuracy_a``).
        second: The second configuration's label.
    """
    data = comparison.melt(
        id_vars=["task"],
        value_vars=["accuracy_a", "accuracy_b"],
        var_name="which",
        value_name="accuracy",
    )
    data["configuration"] = data["which"].map({"accuracy_a": first, "accuracy_b": second})
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
