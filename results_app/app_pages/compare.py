"""Compare: two configurations side by side, task by task."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from results_app import charts, data, frames, ui


def _summary(row: pd.Series) -> None:
    st.markdown(f"**{row['label']}**")
    st.caption(f"experiment `{row['experiment']}` · {row['tasks']} tasks")
    tiles = st.columns(2)
    tiles[0].metric("Mean accuracy", f"{row['accuracy']:.3f}")
    energy = row["net_joules"]
    tiles[1].metric("Net energy (J)", "n/a" if pd.isna(energy) else f"{energy:.4g}")
    st.caption(frames.ratio_caption(row))


st.title("Compare two configurations")
view_filter = ui.current_filter()
points = frames.task_points(data.query_view("runs", view_filter))
summaries = frames.averaged_points(points).sort_values(["model", "ratio"], ignore_index=True)
labels = list(summaries["label"])
if len(labels) < 2:
    st.info("Comparing needs at least two configurations with accuracy results.")
else:
    left, right = st.columns(2)
    with left:
        first = ui.pick("First", labels, key="compare_first", default=labels[0])
        _summary(summaries[summaries["label"] == first].iloc[0])
    with right:
        second = ui.pick("Second", labels, key="compare_second", default=labels[-1])
        _summary(summaries[summaries["label"] == second].iloc[0])
    chosen = summaries[summaries["label"].isin([first, second])]
    ui.estimate_warning(chosen["estimated"])
    comparison = frames.compare_configs(points, first, second)
    if comparison.empty:
        st.info("The two configurations share no task.")
    else:
        ui.chart(charts.compare_chart(comparison, first, second))
        percent = st.column_config.NumberColumn(format="percent")
        st.dataframe(
            comparison[
                [
                    "task",
                    "accuracy_a",
                    "accuracy_b",
                    "accuracy_change_text",
                    "net_joules_a",
                    "net_joules_b",
                    "energy_change_text",
                    "accuracy_change",
                    "energy_change",
                ]
            ],
            hide_index=True,
            column_config={
                "accuracy_change": percent,
                "energy_change": percent,
                "accuracy_change_text": "Δ accuracy [95% interval]",
                "energy_change_text": "Δ net energy [95% interval]",
            },
        )
        st.caption(
            "Changes are of the second configuration against the first, with 95% intervals "
            "(accuracy from the standard errors, energy from the two intervals' opposite "
            'ends); "no measurable change" when the interval contains 0.'
        )
ui.downloads("runs")

methods = data.query_view("method_comparison", view_filter)
if not methods.empty:
    st.subheader("Compression methods of equal size")
    st.caption(
        "Each pair shares a model and a target ratio: b against a, energy (J/token of the "
        "steady-state profile) paired by round and accuracy paired by document; "
        '"no measurable change" when the 95% interval contains 0.'
    )
    st.dataframe(
        methods[
            [
                "model",
                "ratio",
                "method_a",
                "method_b",
                "kind",
                "phase",
                "batch_size",
                "task",
                "value_a",
                "value_b",
                "text",
            ]
        ],
        hide_index=True,
        column_config={"ratio": st.column_config.NumberColumn(format="percent")},
    )
