"""The computed views of accuracy against energy: ``pareto_front`` and ``tradeoff``.

A front is ``findings.pareto_mask`` over the configurations of one experiment and task (or set
of tasks); each point on it is compared with its cheaper neighbour on the front
(``findings.front_neighbours``) with the change functions of ``measures.py``, so that a step
of the front that is not measurable says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from greenprune.core import findings
from results_service import measures
from results_service.measures import CONFIG, key_of, typed
from results_service.profiles import payback_table, profile_table

STEP_COLUMNS: tuple[str, ...] = (
    "neighbour_checkpoint_id",
    "accuracy_change_from_neighbour",
    "accuracy_change_from_neighbour_text",
    "energy_change_from_neighbour",
    "energy_change_from_neighbour_text",
    "step_measurable",
)
"""The columns of a front point's step from its cheaper neighbour (None for the cheapest)."""

PARETO_COLUMNS: tuple[str, ...] = (
    *CONFIG,
    "ratio",
    "achieved_ratio",
    "parameters_after",
    "macs_after",
    "tasks",
    "task_set",
    "mean_accuracy",
    "net_joules",
    "net_joules_low",
    "net_joules_high",
    "estimated",
    "method_family",
    "is_baseline",
    *STEP_COLUMNS,
)
"""The columns of the ``pareto_front`` view."""

TRADEOFF_COLUMNS: tuple[str, ...] = (
    *CONFIG,
    "ratio",
    "achieved_ratio",
    "parameters_before",
    "parameters_after",
    "parameters_removed",
    "method_family",
    "is_baseline",
    "recovered",
    "task",
    "task_set",
    "tasks",
    "accuracy",
    "accuracy_stderr",
    "energy",
    "energy_low",
    "energy_high",
    "energy_measure",
    "energy_source",
    "estimated",
    "on_front",
    *STEP_COLUMNS,
    "payback",
)
"""The columns of the ``tradeoff`` view."""

NET_JOULES = "net_joules"
JOULES_PER_TOKEN = "joules_per_token"


def _steps(
    points: pd.DataFrame,
    groups: Sequence[str],
    change: Any,
) -> pd.DataFrame:
    """Marks the front of each group and compares each front point with its neighbour.

    Args:
        points: One row per point with ``energy`` (cost), ``accuracy`` (quality) and what
            ``change`` reads.
        groups: The columns that split the points into fronts.
        change: ``change(neighbour_row, row)`` returns the accuracy and energy change fields
            (``interval_fields``) of the point against its neighbour.
    """
    points = points.reset_index(drop=True)
    on_front = findings.pareto_mask(points, x="energy", y="accuracy", groups=groups)
    neighbours = findings.front_neighbours(points, on_front, x="energy", groups=groups)
    steps: list[dict[str, object]] = []
    for index, row in points.iterrows():
        neighbour = neighbours.loc[index]
        step: dict[str, object] = {"on_front": bool(on_front.loc[index])}
        if neighbour is not None:
            accuracy, energy = change(points.loc[neighbour], row)
            step.update(
                neighbour_checkpoint_id=points.loc[neighbour, "checkpoint_id"],
                accuracy_change_from_neighbour=accuracy["estimate"],
                accuracy_change_from_neighbour_text=accuracy["text"],
                energy_change_from_neighbour=energy["estimate"],
                energy_change_from_neighbour_text=energy["text"],
                step_measurable=bool(accuracy["measurable"] and energy["measurable"]),
            )
        steps.append(step)
    return pd.concat([points, pd.DataFrame(steps, index=points.index)], axis=1)


def _unpaired_step(a: pd.Series, b: pd.Series) -> tuple[dict, dict]:
    """Accuracy from the standard errors and energy from the intervals' opposite ends."""
    accuracy = findings.accuracy_change_unpaired(
        a["accuracy"], a["accuracy_stderr"], b["accuracy"], b["accuracy_stderr"]
    )
    estimate = b["accuracy"] - a["accuracy"]
    energy = measures.task_energy_change(_energy_as_net(a), _energy_as_net(b))
    return findings.interval_fields(accuracy, relative=False, estimate=estimate), energy


def _energy_as_net(row: pd.Series) -> dict[str, object]:
    return {
        "net_joules": row["energy"],
        "net_joules_low": row["energy_low"],
        "net_joules_high": row["energy_high"],
    }


def _as_axis(points: pd.DataFrame) -> pd.DataFrame:
    """Task or combined points with the accuracy and net energy on the axes."""
    return points.rename(columns={"value": "accuracy", "stderr": "accuracy_stderr"}).assign(
        energy=points["net_joules"],
        energy_low=points["net_joules_low"],
        energy_high=points["net_joules_high"],
        energy_measure=NET_JOULES,
        energy_source="net energy of the eval runs",
    )


def pareto_front_table(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The ``pareto_front`` view: the configurations no other beats, per experiment and tasks.

    A point is beaten when another has no lower mean headline accuracy and no higher summed net
    energy; each point on the front is compared with its cheaper neighbour.

    Args:
        inputs: ``runs`` (``views._SCORED_RUNS``).
    """
    combined = measures.combined_points(measures.task_points(inputs["runs"]))
    if combined.empty:
        return pd.DataFrame(columns=list(PARETO_COLUMNS))
    stepped = _steps(_as_axis(combined), ("experiment", "task_set"), _unpaired_step)
    front = stepped[stepped["on_front"]].rename(columns={"accuracy": "mean_accuracy"})
    front = front.sort_values(
        ["experiment", "task_set", "net_joules", "mean_accuracy"],
        ascending=[True, True, True, False],
        kind="stable",
    )
    frame = front.reindex(columns=list(PARETO_COLUMNS)).reset_index(drop=True)
    floats = ("ratio", "achieved_ratio", "mean_accuracy", "net_joules", "net_joules_low")
    floats += ("net_joules_high", "accuracy_change_from_neighbour", "energy_change_from_neighbour")
    frame = typed(frame, floats=floats, ints=("parameters_after", "macs_after", "tasks"))
    frame["step_measurable"] = frame["step_measurable"].astype("boolean")
    return typed(frame, bools=("estimated", "is_baseline"))


def _profile_axis(windows: pd.DataFrame) -> dict[tuple[Any, ...], dict[str, object]]:
    """Each profiled configuration's J/token at its largest batch, over rounds.

    The profile phase is preferred; the figure is the median with its interval.
    """
    profile = profile_table({"windows": windows})
    if profile.empty:
        return {}
    ranked = profile.assign(_rank=(profile["phase"] != findings.PROFILE_PHASE).astype(int))
    ranked = ranked.sort_values(["batch_size", "_rank"], ascending=[False, True], kind="stable")
    axis = {}
    for row in ranked.to_dict("records"):
        key = key_of(row)
        if key not in axis:
            axis[key] = {
                "energy": row["joules_per_token"],
                "energy_low": row["joules_per_token_low"],
                "energy_high": row["joules_per_token_high"],
                "energy_measure": JOULES_PER_TOKEN,
                "energy_source": f"profile J/token, {row['phase']} at batch "
                f"{int(row['batch_size'])}",
            }
    return axis


def tradeoff_table(inputs: Mapping[str, pd.DataFrame], seed: int = 0) -> pd.DataFrame:
    """The ``tradeoff`` view: every configuration per task and over its tasks, with its front.

    Each point is on the axes the trade-off is drawn with; each front point is compared with
    its cheaper neighbour on the front.

    The energy axis of a front (an experiment and a task, or a task set) is the profile's
    J/token where any of its configurations was profiled, and then only the profiled ones are
    on it; else the net energy of the eval runs.

    Args:
        inputs: ``runs``, ``items`` (``views._SCORED_RUNS``, ``views._ITEM_SCORES``),
            ``windows`` and ``costs`` (``views._PROFILE_WINDOWS``, ``views._PRUNE_COSTS``).
        seed: Seed of the paired bootstrap.
    """
    points = measures.task_points(inputs["runs"])
    scored = measures.accuracy_points(points)
    if scored.empty:
        return pd.DataFrame(columns=list(TRADEOFF_COLUMNS))
    per_task = _as_axis(scored.assign(task_set=scored["task"], tasks=1))
    combined = _as_axis(measures.combined_points(points))
    axis = _profile_axis(inputs["windows"])
    profiled = measures.profiled_changes(inputs["windows"])
    scores = measures.item_scores(inputs["items"])

    def change(a: pd.Series, b: pd.Series) -> tuple[dict, dict]:
        accuracy, energy = _unpaired_step(a, b)
        if not findings.missing(a["task"]):
            paired = measures.accuracy_change(
                {"value": a["accuracy"], "stderr": a["accuracy_stderr"], "run_id": a["run_id"]},
                {"value": b["accuracy"], "stderr": b["accuracy_stderr"], "run_id": b["run_id"]},
                a["headline_metric"],
                scores,
                seed=seed,
            )
            accuracy = paired
        if b["energy_measure"] == JOULES_PER_TOKEN:
            found = profiled.get((key_of(a), key_of(b)))
            if found is not None:
                energy = {
                    "estimate": found["energy_change"],
                    "measurable": found["energy_change_measurable"],
                    "text": found["energy_change_text"],
                }
        return accuracy, energy

    parts = []
    for frame in (per_task, combined):
        for _, group in frame.groupby(["experiment", "task_set"], sort=True):
            keys = [key_of(row) for row in group.to_dict("records")]
            if any(key in axis for key in keys):
                group = group[[key in axis for key in keys]].copy()
                for column in (
                    "energy",
                    "energy_low",
                    "energy_high",
                    "energy_measure",
                    "energy_source",
                ):
                    group[column] = [axis[key_of(row)][column] for row in group.to_dict("records")]
            parts.append(_steps(group, ("experiment", "task_set"), change))
    frame = pd.concat(parts, ignore_index=True)
    payback = payback_table({"windows": inputs["windows"], "costs": inputs["costs"]})
    texts = {key_of(row): row["text"] for row in payback.to_dict("records")}
    frame["payback"] = [texts.get(key_of(row), "-") for row in frame.to_dict("records")]
    frame = frame.reindex(columns=list(TRADEOFF_COLUMNS))
    frame = frame.sort_values(
        ["experiment", "task", "model", "ratio", "checkpoint_id"],
        na_position="first",
        kind="stable",
    ).reset_index(drop=True)
    floats = ("ratio", "achieved_ratio", "parameters_removed", "accuracy", "accuracy_stderr")
    floats += ("energy", "energy_low", "energy_high", "accuracy_change_from_neighbour")
    floats += ("energy_change_from_neighbour",)
    frame = typed(frame, floats=floats, ints=("parameters_before", "parameters_after", "tasks"))
    frame["step_measurable"] = frame["step_measurable"].astype("boolean")
    return typed(frame, bools=("estimated", "is_baseline", "recovered", "on_front"))
