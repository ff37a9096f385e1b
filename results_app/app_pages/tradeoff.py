"""Trade-off: accuracy against net energy, the Pareto front and the unpruned baseline."""

from __future__ import annotations

import streamlit as st

from results_app import charts, data, frames, ui

AVERAGE = "Average over tasks"

st.title("Accuracy against net energy")
view_filter = ui.current_filter()
points = frames.task_points(data.query_view("runs", view_filter))
tasks = sorted(points["task"].dropna().unique())
left, right = st.columns([3, 1])
task = left.selectbox("Tasks", [AVERAGE, *tasks], key="tradeoff_task")
log_scale = right.toggle("Log energy axis", key="tradeoff_log")

if task == AVERAGE:
    shown = frames.averaged_points(points)
    groups: tuple[str, ...] = ("experiment", "task_set")
    energy_title = "net energy, summed over tasks (J)"
else:
    shown = points[points["task"] == task]
    groups = ("experiment", "task")
    energy_title = f"net energy on {task} (J)"
shown, profiled = frames.with_profile_energy(shown, data.query_view("profile", view_filter))
if profiled:
    energy_title = "net energy per token, profile at the largest batch (J/token)"
shown = shown.assign(on_front=frames.pareto_mask(shown, groups=groups))
shown = frames.with_payback(shown, data.query_view("payback", view_filter))
plottable = shown[shown["accuracy"].notna() & shown["net_joules"].notna()]

ui.estimate_warning(plottable["estimated"])
if plottable.empty:
    st.info("No configuration has both an accuracy and an energy measurement yet.")
else:
    ui.chart(charts.tradeoff_chart(plottable, log_scale=log_scale, energy_title=energy_title))
    st.caption(
        "Colour: pruning ratio. Ringed and labelled: the unpruned baseline. Dashed line: the "
        "Pareto front (no other point is both more accurate and cheaper). Vertical bars: "
        "± one standard error of accuracy; horizontal bars: the net-energy interval "
        "(the profile's J/token over rounds where a profile exists). Payback: inference "
        "tokens until the J/token saved repays the pruning and recovery energy (never when "
        "the saving is not measurably above zero)."
    )
    st.subheader("Pareto front")
    front = plottable[plottable["on_front"]].sort_values("net_joules")
    st.dataframe(
        front[["label", "experiment", "ratio", "accuracy", "net_joules", "payback", "estimated"]],
        hide_index=True,
        column_config={"ratio": st.column_config.NumberColumn(format="percent")},
    )
ui.downloads("pareto_front")
