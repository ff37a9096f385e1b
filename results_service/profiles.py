"""The computed views of the energy profiles: ``profile``, ``payback``, energy ``findings``.

Every input row is a profile window with its configuration (``views._PROFILE_WINDOWS``); the
baseline of a profile run is its configuration that ``views.py`` marks ``is_baseline``.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from greenprune.api.common.v1.energy_pb2 import Interval
from greenprune.core import findings, stats
from greenprune.core.findings import finite
from greenprune.core.payback import Payback, mismatch, payback
from results_service import findings_view
from results_service.findings_view import judged_findings, kernel_path_of
from results_service.measures import (
    CONFIG,
    ENERGY_MEASURE_FIELDS,
    Analysis,
    analysis_of,
    key_of,
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
    "workload_prompt_tokens",
    "workload_output_tokens",
    "request_batch_size",
    "baseline_joules_per_request",
    "joules_per_request",
    "request_change",
    "request_change_low",
    "request_change_high",
    "baseline_cpu_seconds_per_request",
    "cpu_seconds_per_request",
    "payback_requests",
    "payback_requests_low",
    "payback_requests_high",
    "never",
    "open_ended",
    "text",
    "request_verdict",
    "request_text",
    "payback_requests_text",
    "cost_draws",
    "interval_method",
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
measured alike (else no payback is computed); the ``workload``/``request`` columns price the
declared request mix (NULL without ``workload:``); ``cost_draws`` the pruning draws the cost is
the mean of, ``interval_method`` how the payback's interval was found."""

_PAYBACK_FIGURES = PAYBACK_COLUMNS[
    PAYBACK_COLUMNS.index("pruning_joules") : PAYBACK_COLUMNS.index("never")
]
"""The numeric columns of the ``payback`` view."""


def payback_table(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The ``payback`` view: per compressed checkpoint, the inference tokens that repay its cost.

    The saving per token is the paired J/token change against the baseline in the profile's
    ``findings.PROFILE_PHASE`` at the largest batch size profiled (the steady state of
    serving); the cost is the pruning's net energy plus the recovery's, the mean over the
    point's pruning draws when it has several (``greenprune.core.payback``). The interval
    propagates the change's, the baseline J/token's (its rounds) and the cost's (the draws'
    spread), seeded with the experiment's seed. With a declared request mix (``workload:``)
    the same is given per request, and the payback in requests.

    Args:
        inputs: ``windows`` (``views._PROFILE_WINDOWS``), ``analysis`` and ``costs``, one row
            per prune run: ``checkpoint_id``, ``pruning_joules``, ``recovery_joules`` (NULL
            without recovery), ``recovered``, and its point (``pruned_in``, ``draw_point``,
            ``pruning_seed``).
    """
    return _payback_frame(_payback_rows(inputs, every_window=False), PAYBACK_COLUMNS)


PAYBACK_WINDOW_COLUMNS: tuple[str, ...] = tuple(
    name
    for name in PAYBACK_COLUMNS
    if not name.startswith(("workload_", "request_", "payback_requests"))
    and "per_request" not in name
)
"""The columns of the ``payback_windows`` view: the ``payback`` view's, without the request
mix."""


def payback_windows_table(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The ``payback_windows`` view: the payback in every profiled phase and batch size.

    As the ``payback`` view (same cost, same propagation), with the saving per token of each
    phase and batch size: serving small batches or decoding saves another share per token.

    Args:
        inputs: As :func:`payback_table`.
    """
    return _payback_frame(_payback_rows(inputs, every_window=True), PAYBACK_WINDOW_COLUMNS)


def _payback_frame(rows: list[dict[str, object]], columns: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    bools = ("recovered", "comparable")
    ints = ("batch_size", "family_size")
    flags = ("never", "open_ended", "estimated")
    floats = ("ratio", *(name for name in _PAYBACK_FIGURES if name in columns))
    return typed(frame, floats=floats, ints=ints, bools=bools, flags=flags)


def _payback_rows(
    inputs: Mapping[str, pd.DataFrame], every_window: bool
) -> list[dict[str, object]]:
    """The rows of the payback views: at the largest prefill batch, or in every window."""
    costs = inputs["costs"]
    judged = [row for row in judged_findings(inputs) if row["kind"] == "energy"]
    if not judged or costs.empty:
        return []
    analysis = analysis_of(inputs)
    cost_of = costs.drop_duplicates("checkpoint_id", keep="last").set_index("checkpoint_id")
    requests = {key_of(row): row for row in judged if row["phase"] == findings_view.REQUEST_PHASE}
    energy = [row for row in judged if row["phase"] == findings.PROFILE_PHASE]
    largest: dict[tuple[object, object], int] = {}
    for row in energy:
        key = (row["experiment"], row["model"])
        largest[key] = max(largest.get(key, 0), int(row["batch_size"]))  # type: ignore[arg-type]
    if every_window:
        energy = [row for row in judged if row["phase"] != findings_view.REQUEST_PHASE]
    rows = []
    order = ("experiment", "model", "phase", "batch_size")
    for finding in sorted(energy, key=lambda r: tuple(str(r[k]) for k in order)):
        if not every_window and finding["batch_size"] != largest.get(
            (finding["experiment"], finding["model"])
        ):
            continue
        checkpoint = finding["checkpoint_id"]
        if checkpoint not in cost_of.index:
            continue
        cost = cost_of.loc[checkpoint]
        recovered = not findings.missing(cost["recovered"]) and bool(cost["recovered"])
        draws = _draw_costs(costs, cost)
        pruning = _mean(draws, "pruning_joules")
        recovery = _mean(draws, "recovery_joules")
        cost_methods = {"pruning": _text(cost.get("pruning_method"))}
        if recovered:
            cost_methods["recovery"] = _text(cost.get("recovery_method"))
        saving_method = _text(finding["energy_method"])
        unlike = mismatch(saving_method, cost_methods)
        the = analysis(finding["experiment"])
        cost_draws = [
            max(_number(d["pruning_joules"]) + _number(d["recovery_joules"]), 0.0)
            for d in draws.to_dict("records")
        ]
        row: dict[str, object] = {
            **{key: finding[key] for key in (*CONFIG, "ratio", "phase", "batch_size")},
            "method_family": finding["method_family"],
            "recovered": recovered,
            "pruning_joules": pruning,
            "recovery_joules": recovery,
            "cost_joules": max(pruning + recovery, 0.0),
            "cost_draws": len(cost_draws),
            "baseline_joules_per_token": finding["baseline_value"],
            "change": finding["estimate"],
            "change_low": finding["low"],
            "change_high": finding["high"],
        }
        result, text = _payback_of(finding, cost_draws, unlike, the.seed, "tokens")
        saving = result.saving if result else (None, None, None)
        tokens = (result.tokens, result.tokens_low, result.tokens_high) if result else (None,) * 3
        never = result.never if result else None
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
            interval_method=result.method if result else None,
            energy_method=saving_method or None,
            estimated=finding["estimated"],
            cost_energy_method=", ".join(sorted(set(cost_methods.values()))) or None,
            comparable=unlike is None,
            verdict=finding["verdict"],
            family=finding["family"],
            family_size=finding["family_size"],
            adjustment=finding["adjustment"],
        )
        request = requests.get(key_of(finding))
        if not every_window and request is not None and the.workload is not None:
            row.update(_request_columns(request, the, cost_draws, unlike))
        rows.append(row)
    return rows


def _request_columns(
    request: Mapping[str, object], the: Analysis, costs: list[float], unlike: str | None
) -> dict[str, object]:
    """The payback view's columns of the declared request mix."""
    assert the.workload is not None
    cpu = request.get(findings_view.CPU_SECONDS) or (None, None)
    result, text = _payback_of(request, costs, unlike, the.seed, "requests")
    return {
        "workload_prompt_tokens": the.workload.prompt_tokens,
        "workload_output_tokens": the.workload.output_tokens,
        "request_batch_size": request["batch_size"],
        "baseline_joules_per_request": request["baseline_value"],
        "joules_per_request": request["value"],
        "request_change": request["estimate"],
        "request_change_low": request["low"],
        "request_change_high": request["high"],
        "baseline_cpu_seconds_per_request": cpu[0],  # type: ignore[index]
        "cpu_seconds_per_request": cpu[1],  # type: ignore[index]
        "request_verdict": request["verdict"],
        "request_text": request["text"],
        "payback_requests": result.tokens if result else None,
        "payback_requests_low": result.tokens_low if result else None,
        "payback_requests_high": result.tokens_high if result else None,
        "payback_requests_text": text,
    }


def _payback_of(
    finding: Mapping[str, object], costs: list[float], unlike: str | None, seed: int, unit: str
) -> tuple[Payback | None, str]:
    """The payback of one energy finding, or None with the reason it has none."""
    if unlike is not None:
        return None, f"not comparable: {unlike}"
    base = finding["baseline_value"]
    if not (
        all(finite(finding[k]) for k in ("estimate", "low", "high"))
        and finite(base)
        and float(base) > 0  # type: ignore[arg-type]
    ):
        return None, f"unknown: {finding['text']}"
    change = Interval(
        median=float(finding["estimate"]),  # type: ignore[arg-type]
        low=float(finding["low"]),  # type: ignore[arg-type]
        high=float(finding["high"]),  # type: ignore[arg-type]
        count=int(finding["count"] or 0),  # type: ignore[call-overload]
    )
    rounds = [v for v in finding.get(findings_view.BASELINE_ROUNDS) or [] if finite(v)]  # type: ignore[attr-defined]
    baseline = stats.interval(rounds) if rounds else None
    result = payback(
        costs or [0.0],
        float(base),  # type: ignore[arg-type]
        change,
        baseline=baseline,
        seed=seed,
        unit=unit,
    )
    return result, result.describe()


def _draw_costs(costs: pd.DataFrame, cost: pd.Series) -> pd.DataFrame:
    """The cost rows of every pruning draw of a checkpoint's point (the latest per seed)."""
    point = cost.get("draw_point")
    if findings.missing(point) or "draw_point" not in costs.columns:
        return cost.to_frame().T
    same = costs[(costs["draw_point"] == point) & (costs["pruned_in"] == cost.get("pruned_in"))]
    same = same.drop_duplicates("pruning_seed", keep="last")
    return same if len(same) else cost.to_frame().T


def _mean(frame: pd.DataFrame, column: str) -> float:
    return float(sum(_number(v) for v in frame[column]) / max(len(frame), 1))


def _number(value: object) -> float:
    return float(value) if finite(value) else 0.0  # type: ignore[arg-type]


def _text(value: object) -> str:
    return "" if findings.missing(value) else str(value)
