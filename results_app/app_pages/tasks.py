"""Tasks: the change in accuracy and energy per task against the unpruned baseline."""

from __future__ import annotations

import streamlit as st

from results_app import charts, data, frames, ui

st.title("Change per task")
view_filter = ui.current_filter()
changes = frames.task_changes(data.query_view("task_breakdown", view_filter))

if changes.empty:
    st.info("No compressed model has a baseline to compare with yet.")
else:
    kinds = sorted(changes["metric_kind"].dropna().unique())
    kind = kinds[0]
    if len(kinds) > 1:
        kind = st.radio(
            "Metrics",
            kinds,
            index=kinds.index("accuracy") if "accuracy" in kinds else 0,
            horizontal=True,
            key="tasks_kind",
        )
    ui.estimate_warning(data.query_view("energy_vs_sparsity", view_filter)["estimated"])
    shown = changes[changes["metric_kind"] == kind]
    left, right = st.columns(2)
    with left:
        ui.chart(
            charts.change_heatmap(
                shown,
                "relative_delta_value",
                f"change in {kind}",
                higher_is_better=kind != "perplexity",
            )
        )
    with right:
        ui.chart(
            charts.change_heatmap(
                shown, "relative_delta_net_joules", "change in net energy", higher_is_better=False
            )
        )
    st.caption(
        "Relative to the baseline (the uncompressed model) of the same experiment; the "
        "changes with their 95% intervals in the table (the headline accuracy paired by "
        "document where per-document scores exist, with the findings view's verdict; net "
        "energy of eval runs, not interleaved, without a verdict). "
        + frames.verdict_caption(shown, ("value_change",))
    )
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(
        shown[
            [
                "model",
                "task",
                "metric",
                "ratio",
                "baseline_value",
                "value",
                "delta_value",
                "relative_delta_value",
                "baseline_net_joules",
                "net_joules",
                "relative_delta_net_joules",
                "value_change_text",
                "value_change_family",
                "energy_change_text",
            ]
        ],
        hide_index=True,
        column_config={
            "ratio": percent,
            "relative_delta_value": st.column_config.NumberColumn("change", format="percent"),
            "relative_delta_net_joules": st.column_config.NumberColumn(
                "energy change", format="percent"
            ),
            "value_change_text": "Δ value: verdict [95%]",
            "value_change_family": "family",
            "energy_change_text": "Δ energy [95%], no verdict",
        },
    )
ui.downloads("task_breakdown")
