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
from results_service.findings_view import findings_frame, judged_findings, kernel_path_of
from results_service.measures import (
    CONFIG,
    ENERGY_MEASURE_FIELDS,
    summary,
    typed,
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
            kernel_path=kernel_path_of(first),
            macs_skipped_share=first.get("macs_skipped_share"),
        )
        for measure in _PROFILE_MEASURES:
            mid, low, high = summary(group[measure])
            row.update({measure: mid, f"{measure}_low": low, f"{measure}_high": high})
        row["above_idle"] = findings.above_idle(row["net_joules_low"])
        rows.append(row)
    return pd.DataFrame(rows, columns=list(PROFILE_COLUMNS))


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
    "open_ended",
    "text",
    "verdict",
    "family",
    "family_size",
    "adjustment",
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
    judged = [row for row in judged_findings(inputs) if row["kind"] == "energy"]
    energy = findings_frame(judged)
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
            never: bool | None = None
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
            elif all(finite(finding[k]) for k in ("estimate", "low", "high")) and (
                finite(base) and float(base) > 0
            ):
                change = Interval(
                    median=float(finding["estimate"]),
                    low=float(finding["low"]),
                    high=float(finding["high"]),
                )
                result = payback(float(row["cost_joules"]), float(base), change)  # type: ignore[arg-type]
                saving, text = result.saving, result.describe()
                tokens = (result.tokens, result.tokens_low, result.tokens_high)
                never = result.never
            else:
                saving, tokens = (None, None, None), (None, None, None)
                text = f"unknown: {finding['text']}"
            row.update(
                saving_joules_per_token=saving[0],
                saving_joules_per_token_low=saving[1],
                saving_joules_per_token_high=saving[2],
                payback_tokens=tokens[0],
                payback_tokens_low=tokens[1],
                payback_tokens_high=tokens[2],
                never=never,
                open_ended=unlike is None and never is False and tokens[2] is None,
                text=text,
                energy_method=saving_method or None,
                estimated=finding["estimated"],
                cost_energy_method=", ".join(sorted(set(cost_methods.values()))) or None,
                comparable=unlike is None,
                verdict=finding["verdict"],
                family=finding["family"],
                family_size=finding["family_size"],
                adjustment=finding["adjustment"],
            )
            rows.append(row)
    frame = pd.DataFrame(rows, columns=list(PAYBACK_COLUMNS))
    bools = ("recovered", "comparable")
    ints = ("batch_size", "family_size")
    flags = ("never", "open_ended", "estimated")
    floats = ("ratio", *_PAYBACK_FIGURES)
    return typed(frame, floats=floats, ints=ints, bools=bools, flags=flags)


def _text(value: object) -> str:
    return "" if findings.missing(value) else str(value)
