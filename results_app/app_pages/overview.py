"""Overview: the store at a glance and, per model, what compressing it buys."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from greenprune.core import findings
from greenprune.core.energy.readings import describe_method
from results_app import data, frames, ui

st.title("Overview")
view_filter = ui.current_filter()
experiments = data.query_view("experiments", view_filter)

models = sorted(
    {name for text in experiments["model_names"].dropna() for name in str(text).split(", ")}
)
prune_count = int(experiments["prune_runs"].sum())
eval_count = int(experiments["eval_runs"].sum())
last_update = experiments["last_updated"].max()
tiles = st.columns(4)
tiles[0].metric("Experiments", len(experiments))
tiles[1].metric("Models", len(models))
tiles[2].metric(
    "Runs", prune_count + eval_count, help=f"{prune_count} prune runs, {eval_count} eval runs"
)
tiles[3].metric(
    "Last update",
    "n/a" if pd.isna(last_update) else last_update.strftime("%d %b %H:%M"),
    help=None if pd.isna(last_update) else last_update.strftime("%Y-%m-%d %H:%M:%S UTC"),
)

st.subheader("What pruning buys")
comparisons = data.query_view("comparisons", view_filter)
# Each compressed configuration against its baseline, over the tasks both report (an
# uncompressed copy, such as the base model evaluated directly, is no compression).
against_baseline = comparisons[
    comparisons["is_baseline_a"].fillna(False).astype(bool)
    & comparisons["task"].isna()
    & (comparisons["method_b"] != findings.BASELINE_FAMILY)
]
if against_baseline.empty:
    st.info("No compressed model has a baseline measured on the same tasks yet.")
else:
    for _, row in frames.nearest_ratio(against_baseline).iterrows():
        experiment = f" ({row['experiment']})" if row["experiment"] else ""
        st.markdown(f"**{row['model']}**{experiment}: {frames.headline_text(row)}")
    st.caption(
        "Ratios: the target share of prunable parameters = the share of all parameters "
        "removed. Accuracy: mean over the tasks both runs report, in points against the "
        "baseline (the uncompressed model), paired by document (the findings view's rule), "
        "with a 95% interval. Energy: the profile's J/token at its largest batch, paired by "
        "round, where both were profiled; else the per-task net energy summed over those tasks "
        "(eval runs are not interleaved: an interval without a verdict). "
        + frames.verdict_caption(against_baseline, ("accuracy_change", "energy_change"))
    )
    ui.estimate_warning(against_baseline["estimated"])
    with st.expander("Every compressed configuration"):
        shown = frames.with_labels(against_baseline, "_b")
        st.dataframe(
            shown[
                [
                    "label",
                    "experiment",
                    "ratio_b",
                    "method_b",
                    "parameters_removed_b",
                    "tasks",
                    "value_a",
                    "value_b",
                    "accuracy_change_text",
                    "accuracy_change_family",
                    "energy_source",
                    "energy_change_text",
                    "energy_change_family",
                ]
            ],
            hide_index=True,
            column_config={
                "label": "configuration",
                "ratio_b": st.column_config.NumberColumn("ratio", format="percent"),
                "method_b": "method",
                "parameters_removed_b": st.column_config.NumberColumn(
                    "of all parameters", format="percent"
                ),
                "value_a": "baseline accuracy",
                "value_b": "accuracy",
                "accuracy_change_text": "Δ accuracy: verdict [95%]",
                "accuracy_change_family": "family (accuracy)",
                "energy_change_text": "Δ energy: verdict [95%]",
                "energy_change_family": "family (energy)",
            },
        )
    profile = data.query_view("profile", view_filter)
    if not profile.empty and not profile["above_idle"].fillna(False).all():
        st.warning(
            "Some profile windows' net energy is not distinguishable from idle (its interval "
            "reaches 0): lengthen the windows or use a machine with power counters."
        )

st.subheader("What the kernels make of it")
kernel_rows = frames.kernel_rows(data.query_view("findings", view_filter))
if kernel_rows.empty:
    st.info("No profile has recorded the kernel path its checkpoints ran on yet.")
else:
    dense = frames.dense_zeroed(kernel_rows)
    if dense:
        st.warning(
            f"On this machine the zeroed weights of {', '.join(dense)} run on dense kernels, "
            f"which multiply zeros as any other weight ({findings.NO_SAVING}): that sparsity "
            "cannot turn into saved work here."
        )
    st.dataframe(
        kernel_rows[
            [
                "label",
                "kernel_path",
                "macs_skipped_share",
                "text",
                "realization_ratio",
                "kernel_note",
            ]
        ],
        hide_index=True,
        column_config={
            "label": "configuration",
            "kernel_path": "kernel path",
            "macs_skipped_share": st.column_config.NumberColumn(
                "baseline MACs skipped", format="percent"
            ),
            "text": "Δ J/token [95%]",
            "realization_ratio": st.column_config.NumberColumn(
                "realization (saving / MACs skipped)", format="percent"
            ),
            "kernel_note": "expected, then measured",
        },
    )
    st.caption(
        "Kernel path: what each checkpoint's inference ran on in the profile. Width and depth "
        "pruning run dense matmuls over smaller shapes; zeroed weights run as dense matmuls "
        "unless a semi-structured 2:4 kernel (CUDA) runs them. Realization ratio: the measured "
        f"saving of J/token ({findings.PROFILE_PHASE}, largest batch) over the MACs skipped."
    )

st.subheader("When the saving repays pruning and recovery")
payback = data.query_view("payback", view_filter)
if payback.empty:
    st.info("No pruned checkpoint has both a recorded prune energy and an energy profile yet.")
else:
    for _, row in payback.sort_values(["model", "ratio", "recovered"]).iterrows():
        recovered = " + LoRA recovery" if row["recovered"] else ""
        outcome = f"repaid after {row['text']}"
        if row["never"] is True or not row.get("comparable", True) or pd.isna(row["never"]):
            outcome = "never repaid" if row["never"] is True else str(row["text"])
        request = ""
        if pd.notna(row.get("joules_per_request")):
            request = (
                f"; per request {row['joules_per_request']:.3g} J, {row['request_text']}, "
                f"repaid after {row['payback_requests_text']}"
            )
        draws = int(row["cost_draws"]) if pd.notna(row.get("cost_draws")) else 1
        spent = f"{row['cost_joules']:.3g} J spent" + (
            f" (mean of {draws} pruning draws)" if draws > 1 else ""
        )
        st.markdown(
            f"**{row['model']}** at ratio {row['ratio']:.2f}{recovered}: {spent}, {outcome}"
            + f" (batch {int(row['batch_size'])}, {row['phase']}){request}"
        )
    mixes = payback.dropna(subset=["workload_prompt_tokens"]) if len(payback) else payback
    mix = ""
    if len(mixes):
        first = mixes.iloc[0]
        mix = (
            f"Request mix: {int(first['workload_prompt_tokens'])} prompt + "
            f"{int(first['workload_output_tokens'])} output tokens, priced with the prefill and "
            f"decode J/token at batch {int(first['request_batch_size'])}. "
        )
    st.caption(
        "Payback: (pruning + recovery net joules) / J/token saved against the baseline "
        "(the profile's paired change at its largest batch); the interval propagates the "
        "change's, the baseline J/token's and the cost's (the pruning draws' spread) by Monte "
        "Carlo with the experiment's seed; \u2265 N tokens (possibly never) when the saving's "
        "interval reaches 0, never only when the saving is measurably not above 0. "
        + mix
        + "Energy verdict: "
        + findings.families_text(
            zip(payback["family"], payback["family_size"], payback["adjustment"], strict=True)
        )
        + ". "
        + describe_method(list(payback.get("energy_method", [])))
    )

    windows = data.query_view("payback_windows", view_filter)
    if not windows.empty:
        with st.expander("Payback in every phase and batch size"):
            st.dataframe(
                windows[
                    ["model", "ratio", "recovered", "phase", "batch_size", "text", "verdict"]
                ].sort_values(["model", "ratio", "recovered", "phase", "batch_size"]),
                hide_index=True,
                column_config={"text": "payback [95%]"},
            )

st.subheader("Experiments")
st.dataframe(experiments, hide_index=True)
ui.downloads("experiments")
ui.downloads("runs", label="all runs")
