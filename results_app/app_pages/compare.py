"""Compare: two configurations of one model side by side, task by task."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from greenprune.core.energy.readings import describe_method
from results_app import charts, data, frames, ui


def _summary(label: str, value: float, energy: float, source: str, row: pd.Series) -> None:
    st.markdown(f"**{label}**")
    st.caption(f"experiment `{row['experiment']}` · {int(row['tasks'])} tasks")
    tiles = st.columns(2)
    tiles[0].metric("Mean accuracy", "n/a" if pd.isna(value) else f"{value:.3f}")
    tiles[1].metric(source, "n/a" if pd.isna(energy) else f"{energy:.4g}")


st.title("Compare two configurations")
view_filter = ui.current_filter()
comparisons = data.query_view("comparisons", view_filter)
pairs = frames.with_labels(comparisons, "_a").rename(columns={"label": "label_a"})
pairs = frames.with_labels(pairs, "_b").rename(columns={"label": "label_b"})
firsts = pairs.sort_values(["model", "ratio_a"], kind="stable")["label_a"].drop_duplicates()
if pairs.empty:
    st.info("Comparing needs at least two configurations of one model with accuracy results.")
else:
    left, right = st.columns(2)
    with left:
        first = ui.pick("First", list(firsts), key="compare_first", default=firsts.iloc[0])
    options = pairs[pairs["label_a"] == first].sort_values("ratio_b", kind="stable")
    seconds = list(options["label_b"].drop_duplicates())
    with right:
        second = ui.pick("Second", seconds, key="compare_second", default=seconds[-1])
    chosen = options[options["label_b"] == second]
    overall = chosen[chosen["task"].isna()]
    per_task = chosen[chosen["task"].notna()].sort_values("task")
    if not overall.empty:
        row = overall.iloc[0]
        with left:
            _summary(first, row["value_a"], row["energy_a"], row["energy_source"], row)
        with right:
            _summary(second, row["value_b"], row["energy_b"], row["energy_source"], row)
    ui.estimate_warning(chosen["estimated"])
    if per_task.empty:
        st.info("The two configurations share no task.")
    else:
        ui.chart(charts.compare_chart(per_task, first, second))
        percent = st.column_config.NumberColumn(format="percent")
        st.dataframe(
            per_task[
                [
                    "task",
                    "metric",
                    "value_a",
                    "value_b",
                    "accuracy_change_text",
                    "accuracy_change_family",
                    "energy_a",
                    "energy_b",
                    "energy_change_text",
                    "accuracy_change",
                    "energy_change",
                ]
            ],
            hide_index=True,
            column_config={
                "value_a": "first",
                "value_b": "second",
                "energy_a": "net energy, first (J)",
                "energy_b": "net energy, second (J)",
                "accuracy_change": percent,
                "energy_change": percent,
                "accuracy_change_text": "Δ accuracy: verdict [95% interval]",
                "accuracy_change_family": "family",
                "energy_change_text": "Δ net energy [95% interval]",
            },
        )
        st.caption(
            "Changes are of the second configuration against the first, with 95% intervals: "
            "accuracy paired by document (the findings view's rule); net energy of eval runs "
            "from the two intervals' opposite ends, without a verdict (the runs are not "
            "interleaved). " + frames.verdict_caption(chosen, ("accuracy_change", "energy_change"))
        )
ui.downloads("comparisons")

methods = data.query_view("method_comparison", view_filter)
if not methods.empty:
    st.subheader("Compression methods of equal size")
    st.caption(
        "Each pair shares a model and a target ratio: b against a, energy (J/token of the "
        "steady-state profile) paired by round and accuracy paired by document, each with its "
        "95% interval. Realization: the measured J/token saving of each method against the "
        "baseline over the share of MACs its kernels skip (energy rows). "
        + frames.verdict_caption(methods)
        + " "
        + describe_method(list(methods.get("energy_method", [])))
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
                "family",
                "kernel_path_a",
                "realization_a",
                "kernel_path_b",
                "realization_b",
            ]
        ],
        hide_index=True,
        column_config={
            "ratio": st.column_config.NumberColumn(format="percent"),
            "kernel_path_a": "kernel path, a",
            "kernel_path_b": "kernel path, b",
            "realization_a": st.column_config.NumberColumn(
                "realization, a (saving / MACs skipped)", format="percent"
            ),
            "realization_b": st.column_config.NumberColumn(
                "realization, b (saving / MACs skipped)", format="percent"
            ),
        },
    )
