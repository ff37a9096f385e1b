"""The computed views of the energy profiles: ``profile``, ``payback``, energy ``findings``.

Every input row is a profile window with its configuration (``views._PROFILE_WINDOWS``); the
baseline of a profile run is its configuration that ``views.py`` marks ``is_baseline``.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from greenprune.api.common.v1.energy_pb2 import Interval
from greenprune.core import findings
from greenprune.core.findings import finite
from greenprune.core.payback import mismatch, payback
from results_service.measures import (
    CHANGE_FIELDS,
    CONFIG,
    ENERGY_MEASURE_FIELDS,
    change_frame,
    energy_measure,
    key_of,
    paired_rounds,
    summary,
    typed,
    window_change,
    with_window_measures,
)

_WINDOW = [*CONFIG, "phase", "batch_size"]

PROFILE_COLUMNS: tuple[str, ...] = (
    *_WINDOW,
    "ratio",
    "achieved_ratio",
    "parameters_removed",
    "rounds",
    "joules_per_token",
    "joules_per_token_low",
    "joules_per_token_high",
    "tokens_per_second",
    "tokens_per_second_low",
    "tokens_per_second_high",
    "latency_seconds",
    "latency_seconds_low",
    "latency_seconds_high",
    "net_joules",
    "net_joules_low",
    "net_joules_high",
    "above_idle",
    "estimated",
    "energy_method",
    "method_family",
    "is_baseline",
    "cpu_seconds_per_token",
    "cpu_seconds_per_token_low",
    "cpu_seconds_per_token_high",
    "kernel_path",
    "macs_skipped_share",
)
"""The columns of the ``profile`` view (``kernel_path``: the kernels the checkpoint ran on,
``macs_skipped_share``: the share of the baseline's MACs they skip)."""

_PROFILE_MEASURES = (
    "joules_per_token",
    "tokens_per_second",
    "latency_seconds",
    "net_joules",
    "cpu_seconds_per_token",
)

FINDINGS_COLUMNS: tuple[str, ...] = (
    "kind",
    *CONFIG,
    "ratio",
    "parameters_removed",
    "phase",
    "batch_size",
    "task",
    "metric",
    "baseline_value",
    "value",
    "relative",
    *CHANGE_FIELDS,
    "method_family",
    *ENERGY_MEASURE_FIELDS,
    "kernel_path",
    "macs_skipped_share",
    "realization_ratio",
    "kernel_note",
)
"""The columns of the ``findings`` view (``energy_method``/``estimated``, the kernel path, its
MACs skipped, the realization ratio and the kernel note: energy rows only)."""


def profile_table(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The ``profile`` view: per configuration, phase and batch size, medians over rounds.

    Args:
        inputs: ``windows``, one row per measured window (``views._PROFILE_WINDOWS``).
    """
    windows = inputs["windows"]
    if windows.empty:
        return pd.DataFrame(columns=list(PROFILE_COLUMNS))
    frame = with_window_measures(windows)
    rows = []
    for key, group in frame.groupby(_WINDOW, sort=True, dropna=False):
        row: dict[str, object] = dict(zip(_WINDOW, key, strict=True))
        first = group.iloc[0]
        row.update(
            checkpoint_id=first["checkpoint_id"],
            ratio=first["ratio"],
            achieved_ratio=first["achieved_ratio"],
            parameters_removed=first["parameters_removed"],
            method_family=first["method_family"],
            is_baseline=bool(first["is_baseline"]),
            rounds=len(group),
            estimated=bool(group["estimated"].any()),
            energy_method=first["energy_method"],
            kernel_path=_kernel(first),
            macs_skipped_share=first.get("macs_skipped_share"),
        )
        for measure in _PROFILE_MEASURES:
            mid, low, high = summary(group[measure])
            row.update({measure: mid, f"{measure}_low": low, f"{measure}_high": high})
        row["above_idle"] = findings.above_idle(row["net_joules_low"])
        rows.append(row)
    return pd.DataFrame(rows, columns=list(PROFILE_COLUMNS))


def energy_findings(windows: pd.DataFrame) -> list[dict[str, object]]:
    """Every profiled configuration's J/token against its profile run's baseline.

    Paired by round, per phase and batch size: the ``energy`` rows of ``findings``.
    """
    if windows.empty:
        return []
    frame = with_window_measures(windows)
    rows: list[dict[str, object]] = []
    for (_experiment, _model, _run), run in frame.groupby(
        ["experiment", "model", "run_id"], sort=True
    ):
        baselines = run[run["is_baseline"]]
        if baselines.empty:
            continue
        base = key_of(baselines.iloc[0])
        others = run[~run["is_baseline"]].drop_duplicates(CONFIG)
        for (phase, batch), window in run.groupby(["phase", "batch_size"], sort=True):
            for other in others.sort_values("checkpoint_id").to_dict("records"):
                b, o = paired_rounds(window, base, key_of(other))
                row: dict[str, object] = {
                    "kind": "energy",
                    **{name: other[name] for name in CONFIG},
                    "ratio": other["ratio"],
                    "parameters_removed": other["parameters_removed"],
                    "method_family": other["method_family"],
                    "phase": phase,
                    "batch_size": batch,
                    "task": None,
                    "metric": "joules_per_token",
                    "baseline_value": summary(b)[0],
                    "value": summary(o)[0],
                    "relative": True,
                }
                row.update(window_change(b, o))
                row.update(energy_measure(window))
                row.update(_kernel_fields(window, other, row))
                rows.append(row)
    return rows


def _kernel(row: Mapping[str, object]) -> str | None:
    path = row.get("kernel_path")
    return None if findings.missing(path) or not path else str(path)


def _kernel_fields(
    window: pd.DataFrame, other: Mapping[str, object], change: Mapping[str, object]
) -> dict[str, object]:
    """The kernel path a configuration ran on in a window, and what it made of its removal."""
    mine = window[window["checkpoint_id"].fillna("") == (other["checkpoint_id"] or "")]
    first = mine.iloc[0].to_dict() if len(mine) else dict(other)
    path, skipped = _kernel(first), first.get("macs_skipped_share")
    return {
        "kernel_path": path,
        "macs_skipped_share": skipped,
        "realization_ratio": findings.realization_ratio(change.get("estimate"), skipped),
        "kernel_note": findings.kernel_note(
            path,
            skipped,
            other.get("zeroed_share"),
            measurable_change=bool(change.get("measurable")),
            estimate=change.get("estimate"),
        ),
    }


def findings_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Rows of the ``findings`` view as its typed frame."""
    floats = (
        "baseline_value",
        "value",
        "ratio",
        "parameters_removed",
        "macs_skipped_share",
        "realization_ratio",
    )
    return change_frame(rows, FINDINGS_COLUMNS, floats)


PAYBACK_COLUMNS: tuple[str, ...] = (
    *CONFIG,
    "ratio",
    "recovered",
    "phase",
    "batch_size",
    "pruning_joules",
    "recovery_joules",
    "cost_joules",
    "baseline_joules_per_token",
    "change",
    "change_low",
    "change_high",
    "saving_joules_per_token",
    "saving_joules_per_token_low",
    "saving_joules_per_token_high",
    "payback_tokens",
    "payback_tokens_low",
    "payback_tokens_high",
    "never",
    "text",
    "method_family",
    *ENERGY_MEASURE_FIELDS,
    "cost_energy_method",
    "comparable",
)
"""The columns of the ``payback`` view: ``energy_method``/``estimated`` of the saving (the
profile), ``cost_energy_method`` of the pruning and recovery, ``comparable`` whether they were
measured alike (else no payback is computed)."""

_PAYBACK_FIGURES = PAYBACK_COLUMNS[
    PAYBACK_COLUMNS.index("pruning_joules") : PAYBACK_COLUMNS.index("never")
]
"""The numeric columns of the ``payback`` view."""


def payback_table(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The ``payback`` view: per compressed checkpoint, the inference tokens that repay its cost.

    The saving per token is the paired J/token change against the baseline in the profile's
    ``findings.PROFILE_PHASE`` at the largest batch size profiled (the steady state of
    serving); the cost is the pruning's net energy plus the recovery's
    (``greenprune.core.payback``).

    Args:
        inputs: ``windows`` (``views._PROFILE_WINDOWS``) and ``costs``, one row per prune run:
            ``checkpoint_id``, ``pruning_joules``, ``recovery_joules`` (NULL without
            recovery), ``recovered``.
    """
    costs = inputs["costs"]
    energy = findings_frame(energy_findings(inputs["windows"]))
    energy = energy[energy["phase"] == findings.PROFILE_PHASE]
    if energy.empty or costs.empty:
        return pd.DataFrame(columns=list(PAYBACK_COLUMNS))
    cost_of = costs.drop_duplicates("checkpoint_id", keep="last").set_index("checkpoint_id")
    rows = []
    for _, group in energy.groupby(["experiment", "model"], sort=True):
        largest = group["batch_size"].max()
        for _, finding in group[group["batch_size"] == largest].iterrows():
            checkpoint = finding["checkpoint_id"]
            if checkpoint not in cost_of.index:
                continue
            cost = cost_of.loc[checkpoint]
            pruning = float(cost["pruning_joules"]) if finite(cost["pruning_joules"]) else 0.0
            recovery = float(cost["recovery_joules"]) if finite(cost["recovery_joules"]) else 0.0
            recovered = not findings.missing(cost["recovered"]) and bool(cost["recovered"])
            cost_methods = {"pruning": _text(cost.get("pruning_method"))}
            if recovered:
                cost_methods["recovery"] = _text(cost.get("recovery_method"))
            saving_method = _text(finding["energy_method"])
            unlike = mismatch(saving_method, cost_methods)
            row: dict[str, object] = {
                **{key: finding[key] for key in (*CONFIG, "ratio", "phase", "batch_size")},
                "method_family": finding["method_family"],
                "recovered": recovered,
                "pruning_joules": pruning,
                "recovery_joules": recovery,
                "cost_joules": max(pruning + recovery, 0.0),
                "baseline_joules_per_token": finding["baseline_value"],
                "change": finding["estimate"],
                "change_low": finding["low"],
                "change_high": finding["high"],
            }
            base = finding["baseline_value"]
            if unlike is not None:
                saving, tokens = (None, None, None), (None, None, None)
                text = f"not comparable: {unlike}"
            elif finite(finding["estimate"]) and finite(base) and float(base) > 0:
                change = Interval(
                    median=float(finding["estimate"]),
                    low=float(finding["low"]),
                    high=float(finding["high"]),
                )
                result = payback(float(row["cost_joules"]), float(base), change)  # type: ignore[arg-type]
                saving, text = result.saving, result.describe()
                tokens = (result.tokens, result.tokens_low, result.tokens_high)
            else:
                saving, tokens = (None, None, None), (None, None, None)
                text = f"never: {finding['text']}"
            row.update(
                saving_joules_per_token=saving[0],
                saving_joules_per_token_low=saving[1],
                saving_joules_per_token_high=saving[2],
                payback_tokens=tokens[0],
                payback_tokens_low=tokens[1],
                payback_tokens_high=tokens[2],
                never=tokens[0] is None,
                text=text,
                energy_method=saving_method or None,
                estimated=finding["estimated"],
                cost_energy_method=", ".join(sorted(set(cost_methods.values()))) or None,
                comparable=unlike is None,
            )
            rows.append(row)
    frame = pd.DataFrame(rows, columns=list(PAYBACK_COLUMNS))
    bools = ("never", "recovered", "comparable")
    frame = typed(frame, floats=("ratio", *_PAYBACK_FIGURES), ints=("batch_size",), bools=bools)
    frame["estimated"] = frame["estimated"].astype("boolean")
    return frame


def _text(value: object) -> str:
    return "" if findings.missing(value) else str(value)
