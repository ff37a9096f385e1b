"""Run detail: one eval or prune run: spec, versions, how energy was measured, layer shapes."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from results_app import charts, data, frames, ui

EVAL = "Eval run"
PRUNE = "Prune run"


FIGURES = {
    "net_joules": "net energy (J)",
    "gross_joules": "gross energy (J)",
    "wall_seconds": "wall time (s)",
    "tokens_per_second": "tokens per second",
}


def _figures(energy: dict) -> pd.DataFrame:
    rows = []
    for key, name in FIGURES.items():
        interval = energy.get(key) or {}
        if interval.get("count"):
            rows.append(
                {
                    "figure": name,
                    "median": interval["median"],
                    "low": interval["low"],
                    "high": interval["high"],
                    "repeats": interval["count"],
                    "interval": interval.get("method", ""),
                }
            )
    return pd.DataFrame(rows)


def _energy_section(energy: dict, components: pd.DataFrame) -> None:
    st.subheader("Energy")
    if not energy or not energy.get("components"):
        st.info("This run carries no energy measurement.")
        return
    headline = energy.get("headline_component") or "?"
    methods = {c["component"]: c["method"] for c in energy["components"]}
    others = ", ".join(f"{name}: {method}" for name, method in sorted(methods.items()))
    st.markdown(
        f"Headline component **{headline}**, measured with **{methods.get(headline, '?')}** "
        f"on {energy.get('hardware') or 'unknown hardware'} (device "
        f"`{energy.get('device_name') or '?'}`), {energy.get('repeats', 0)} repeats. "
        f"Components: {others}."
    )
    ui.estimate_warning(bool(energy.get("estimated")))
    if energy.get("gpu_shared"):
        st.warning("Another process used the GPU during a measured window.")
    st.dataframe(_figures(energy), hide_index=True)
    joules_per_token = energy.get("joules_per_token") or 0.0
    st.caption(
        f"{joules_per_token:.4g} J per token, {energy.get('joules_per_sample') or 0.0:.4g} J per "
        f"sample, {int(energy.get('tokens') or 0):,} tokens per window."
    )
    if not components.empty:
        ui.chart(charts.components_chart(components))
        st.dataframe(
            components[
                [
                    "component",
                    "measurement_method",
                    "estimated",
                    "headline",
                    "net_joules",
                    "net_joules_low",
                    "net_joules_high",
                    "gross_joules",
                    "idle_watts",
                ]
            ],
            hide_index=True,
        )


def _layers_section(prune_run_id: str | None, view_filter: data.Filter) -> None:
    st.subheader("Layer shapes")
    if prune_run_id is None:
        st.info("An unpruned model: every layer keeps its original shape.")
        return
    layers = data.query_view("layers", view_filter)
    layers = layers[layers["run_id"] == prune_run_id]
    if layers.empty:
        st.info("The prune run recorded no layer shapes.")
        return
    ui.chart(charts.layers_chart(layers))


def _versions(versions: dict) -> None:
    st.subheader("Versions")
    if versions:
        st.dataframe(
            pd.DataFrame(sorted(versions.items()), columns=["package", "version"]),
            hide_index=True,
        )
    else:
        st.caption("No versions recorded.")


def _show_eval(run_id: str, runs: pd.DataFrame, prune_runs: pd.DataFrame) -> None:
    run = data.get_eval_run(run_id)
    row = runs[runs["run_id"] == run_id].iloc[0]
    result = run.get("result", {})
    st.subheader(
        frames.config_label(row["model"], row["ratio"], row["checkpoint_id"], row["method_family"])
    )
    st.caption(f"Task `{row['task']}` · run `{run_id}` · experiment `{run['experiment']}`")
    metrics = pd.DataFrame(result.get("metrics", []))
    if not metrics.empty:
        st.dataframe(metrics, hide_index=True)
    components = data.query_view("energy_components", ui.current_filter())
    _energy_section(
        result.get("energy", {}),
        components[(components["run_kind"] == "eval") & (components["run_id"] == run_id)],
    )
    checkpoint = run.get("checkpoint_id") or None
    prune_run_id = None
    if checkpoint:
        owners = prune_runs[prune_runs["checkpoint_id"] == checkpoint]
        prune_run_id = owners["run_id"].iloc[-1] if len(owners) else None
    _layers_section(prune_run_id, ui.current_filter())
    st.subheader("Spec")
    st.json(run.get("spec", {}), expanded=False)
    _versions(run.get("versions", {}))


def _show_prune(run_id: str) -> None:
    run = data.get_prune_run(run_id)
    spec, result = run.get("spec", {}), run.get("result", {})
    st.subheader(f"{spec.get('model', '?')} @ {float(spec.get('ratio', 0)):.0%}")
    st.caption(f"Checkpoint `{result.get('checkpoint_id', '')}` · run `{run_id}`")
    tiles = st.columns(3)
    before, after = int(result.get("parameters_before", 0)), int(result.get("parameters_after", 0))
    tiles[0].metric("Parameters", f"{after:,}", delta=f"{after - before:,}")
    tiles[1].metric("Parameters removed", f"{float(result.get('achieved_ratio', 0)):.1%}")
    macs_before, macs_after = int(result.get("macs_before", 0)), int(result.get("macs_after", 0))
    tiles[2].metric("MACs", f"{macs_after:,}", delta=f"{macs_after - macs_before:,}")
    _layers_section(run_id, ui.current_filter())
    components = data.query_view("energy_components", ui.current_filter())
    _energy_section(
        result.get("energy", {}),
        components[(components["run_kind"] == "prune") & (components["run_id"] == run_id)],
    )
    st.subheader("Spec")
    st.json(spec, expanded=False)
    _versions(result.get("versions", {}))


st.title("Run detail")
view_filter = ui.current_filter()
runs = data.query_view("runs", view_filter)
prune_runs = data.query_view("prune_runs", view_filter)
wanted = st.query_params.get("run", "")
kind = st.radio(
    "Kind",
    [EVAL, PRUNE],
    index=1 if wanted in set(prune_runs["run_id"]) else 0,
    horizontal=True,
    key="detail_kind",
)
if kind == EVAL:
    labels = {
        row.run_id: frames.config_label(row.model, row.ratio, row.checkpoint_id, row.method_family)
        + f" · {row.task}"
        for row in runs.itertuples()
    }
else:
    labels = {
        row.run_id: frames.config_label(row.model, row.ratio, row.checkpoint_id, row.method_family)
        for row in prune_runs.itertuples()
    }
if not labels:
    st.info(f"No {kind.lower()} recorded yet.")
else:
    options = list(labels)
    chosen = st.selectbox(
        "Run",
        options,
        index=options.index(wanted) if wanted in labels else 0,
        format_func=labels.__getitem__,
        key=f"detail_run_{kind}",
    )
    st.query_params["run"] = chosen
    if kind == EVAL:
        _show_eval(chosen, runs, prune_runs)
    else:
        _show_prune(chosen)
ui.downloads("runs" if kind == EVAL else "prune_runs")
ui.downloads("energy_components")
ui.downloads("layers", label="layer shapes")
