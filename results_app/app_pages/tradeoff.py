"""Trade-off: accuracy against energy, the Pareto front and the baseline."""

from __future__ import annotations

import streamlit as st

from results_app import charts, data, frames, ui

AVERAGE = "Average over tasks"

st.title("Accuracy against net energy")
view_filter = ui.current_filter()
points = data.query_view("tradeoff", view_filter)
tasks = sorted(points["task"].dropna().unique())
left, right = st.columns([3, 1])
task = left.selectbox("Tasks", [AVERAGE, *tasks], key="tradeoff_task")
log_scale = right.toggle("Log energy axis", key="tradeoff_log")

plottable, energy_title = frames.tradeoff_points(points, None if task == AVERAGE else task)

ui.estimate_warning(plottable["estimated"])
if plottable.empty:
    st.info("No configuration has both an accuracy and an energy measurement yet.")
else:
    ui.chart(charts.tradeoff_chart(plottable, log_scale=log_scale, energy_title=energy_title))
    st.caption(frames.tradeoff_caption(plottable))
    st.subheader("Pareto front")
    front = plottable[plottable["on_front"]].sort_values("energy")
    st.dataframe(
        front[
            [
                "label",
                "experiment",
                "ratio",
                "accuracy",
                "energy",
                "accuracy_change_from_neighbour_text",
                "energy_change_from_neighbour_text",
                "step_family",
                "payback",
                "estimated",
            ]
        ],
        hide_index=True,
        column_config={
            "ratio": st.column_config.NumberColumn(format="percent"),
            "energy": st.column_config.NumberColumn(energy_title, format="%.4g"),
            "accuracy_change_from_neighbour_text": "Δ accuracy from the cheaper neighbour",
            "energy_change_from_neighbour_text": "Δ energy from the cheaper neighbour",
            "step_family": "family",
        },
    )
    indistinct = front[front["step_distinct"].eq(False).fillna(False)]
    if not indistinct.empty:
        st.warning(
            f"{len(indistinct)} step(s) along the front are not distinct: the accuracy or "
            "energy change from the cheaper neighbour is equivalent or inconclusive, so those "
            "points may not really trade accuracy for energy.",
        )
draws = frames.pruning_draws(points, data.query_view("configurations", view_filter))
if not draws.empty:
    st.subheader("Pruning draws")
    found = data.query_view("findings", view_filter)
    combined = found[(found["kind"] == "accuracy") & (found["draws"].fillna(1) > 1)]
    st.dataframe(
        combined[["model", "ratio", "task", "metric", "draws", "draw_low", "draw_high", "text"]],
        hide_index=True,
        column_config={
            "ratio": st.column_config.NumberColumn(format="percent"),
            "draw_low": st.column_config.NumberColumn("lowest draw", format="%.3f"),
            "draw_high": st.column_config.NumberColumn("highest draw", format="%.3f"),
            "text": "Δ accuracy against the baseline, over documents and draws",
        },
    )
    ui.chart(charts.draws_chart(draws))
    st.caption(
        "Each point pruned with several calibration draws (pruning.seeds): one dot per draw "
        "and task, the accuracy its checkpoint scored (task 'all': the mean over tasks). The "
        "change against the baseline is the draws' mean, its interval covering the documents "
        "and the draws (a two-stage bootstrap seeded with the experiment's seed); the energy "
        "profile measures the first draw."
    )
ui.downloads("tradeoff")
ui.downloads("pareto_front")
