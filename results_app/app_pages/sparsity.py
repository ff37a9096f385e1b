"""Sparsity curves: accuracy, energy, J/token, throughput and latency against the ratio."""

from __future__ import annotations

import streamlit as st

from results_app import charts, data, frames, ui

st.title("Sparsity curves")
view_filter = ui.current_filter()
accuracy = data.query_view("accuracy_vs_sparsity", view_filter)
energy = data.query_view("energy_vs_sparsity", view_filter)
curves = frames.sparsity_curves(accuracy, energy)

if curves.empty:
    st.info("No run of a known pruning ratio has been recorded yet.")
else:
    models = sorted(curves["model"].unique())
    left, right = st.columns([1, 2])
    with left:
        model = ui.pick("Model", models, key="sparsity_model", default=view_filter.model)
    model_curves = curves[curves["model"] == model]
    tasks = sorted(model_curves["task"].unique())
    with right:
        chosen = st.multiselect("Tasks", tasks, default=tasks, key=f"sparsity_tasks_{model}")
    model_curves = model_curves[model_curves["task"].isin(chosen)]
    ui.estimate_warning(energy.loc[energy["model"] == model, "estimated"])
    measures = list(frames.CURVE_MEASURES)
    for start in range(0, len(measures), 2):
        columns = st.columns(2)
        for column, measure in zip(columns, measures[start : start + 2], strict=False):
            with column:
                ui.chart(charts.sparsity_chart(model_curves, measure))
    st.caption(
        "Bars: ± one standard error for accuracy, the measured interval for the energy and "
        "speed figures (J/token scales the net-energy interval; latency is wall time per sample)."
    )
    with st.expander("The numbers"):
        st.dataframe(model_curves, hide_index=True)
ui.downloads("accuracy_vs_sparsity")
ui.downloads("energy_vs_sparsity")
