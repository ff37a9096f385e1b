"""The computed views of accuracy against energy: ``pareto_front`` and ``tradeoff``.

A front is ``findings.pareto_mask`` over the configurations of one experiment and task (or set
of tasks); each point on it is compared with its cheaper neighbour on the front
(``findings.front_neighbours``) with the change functions of ``measures.py``, so that a step
of the front carries its verdicts (one ``front steps`` family per experiment).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import pandas as pd

from greenprune.core import findings, verdicts
from results_service import measures
from results_service.measures import CONFIG, key_of, typed
from results_service.profiles import payback_table, profile_table

STEP_COLUMNS: tuple[str, ...] = (
    "neighbour_checkpoint_id",
    "accuracy_change_from_neighbour",
    "accuracy_change_from_neighbour_verdict",
    "accuracy_change_from_neighbour_text",
    "energy_change_from_neighbour",
    "energy_change_from_neighbour_verdict",
    "energy_change_from_neighbour_text",
    "step_distinct",
    "step_family",
    "step_family_size",
    "step_adjustment",
)
"""The columns of a front point's step from its cheaper neighbour (None for the cheapest).

``step_distinct`` is True when both changes are lower or higher, False when either is
equivalent or inconclusive, None when the energy change has no verdict (eval runs' net energy,
not interleaved) and the accuracy change says lower or higher. The steps of a view are one
``front`` family per experiment."""

_DECIDED = (verdicts.LOWER, verdicts.HIGHER)

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
            step.update(neighbour_checkpoint_id=points.loc[neighbour, "checkpoint_id"])
            step["_changes"] = (accuracy, energy)
        steps.append(step)
    return pd.concat([points, pd.DataFrame(steps, index=points.index)], axis=1)


def _judge_steps(frame: pd.DataFrame, analysis: Any) -> pd.DataFrame:
    """Judges every step of a view as one ``front`` family per experiment; fills its columns."""
    if "_changes" not in frame.columns:
        frame["_changes"] = None
    groups: dict[Hashable, list[dict[str, object]]] = {}
    for experiment, changes in zip(frame["experiment"], frame["_changes"], strict=True):
        if isinstance(changes, tuple):
            groups.setdefault(experiment, []).extend(changes)
    for experiment, members in groups.items():
        measures.judge(members, verdicts.FRONT, analysis(experiment).adjustment)
    columns: dict[str, list[object]] = {name: [] for name in STEP_COLUMNS[1:]}
    for changes in frame["_changes"]:
        accuracy, energy = changes if isinstance(changes, tuple) else ({}, {})
        judged = accuracy if accuracy.get("verdict") else energy
        values = {
            "accuracy_change_from_neighbour": accuracy.get("estimate"),
            "accuracy_change_from_neighbour_verdict": accuracy.get("verdict"),
            "accuracy_change_from_neighbour_text": accuracy.get("text"),
            "energy_change_from_neighbour": energy.get("estimate"),
            "energy_change_from_neighbour_verdict": energy.get("verdict"),
            "energy_change_from_neighbour_text": energy.get("text"),
            "step_distinct": _distinct(accuracy, energy) if accuracy else None,
            "step_family": judged.get("family"),
            "step_family_size": judged.get("family_size"),
            "step_adjustment": judged.get("adjustment"),
        }
        for name, value in values.items():
            columns[name].append(value)
    frame = frame.drop(columns="_changes")
    for name, values_of in columns.items():
        frame[name] = values_of
    return frame


def _distinct(accuracy: Mapping[str, object], energy: Mapping[str, object]) -> bool | None:
    if accuracy.get("verdict") not in _DECIDED:
        return False
    if energy.get("verdict") is None:
        return None
    return energy.get("verdict") in _DECIDED


def _net_energy_step(a: pd.Series, b: pd.Series) -> dict[str, object]:
    """The step's net energy change (intervals' opposite ends, no verdict)."""
    return measures.task_energy_change(_energy_as_net(a), _energy_as_net(b))


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

    A step's accuracy is paired by document over the shared tasks; its summed net energy (eval
    runs, not interleaved) has no verdict.

    Args:
        inputs: ``runs``, ``items`` and ``analysis`` (``views.py``).
    """
    analysis = measures.analysis_of(inputs)
    points = measures.task_points(inputs["runs"])
    combined = measures.combined_points(points)
    if combined.empty:
        return pd.DataFrame(columns=list(PARETO_COLUMNS))
    scored_by = _task_points_by_config(measures.accuracy_points(points))
    scores = measures.item_scores(inputs["items"])

    def change(a: pd.Series, b: pd.Series) -> tuple[dict, dict]:
        margins = analysis(a["experiment"]).margins
        accuracy = measures.pooled_accuracy_change(
            scored_by[key_of(a)], scored_by[key_of(b)], scores, margins
        )
        return accuracy, _net_energy_step(a, b)

    stepped = _judge_steps(_steps(_as_axis(combined), ("experiment", "task_set"), change), analysis)
    front = stepped[stepped["on_front"]].rename(columns={"accuracy": "mean_accuracy"})
    front = front.sort_values(
        ["experiment", "task_set", "net_joules", "mean_accuracy"],
        ascending=[True, True, True, False],
        kind="stable",
    )
    frame = front.reindex(columns=list(PARETO_COLUMNS)).reset_index(drop=True)
    floats = ("ratio", "achieved_ratio", "mean_accuracy", "net_joules", "net_joules_low")
    floats += ("net_joules_high", "accuracy_change_from_neighbour", "energy_change_from_neighbour")
    ints = ("parameters_after", "macs_after", "tasks", "step_family_size")
    bools = ("estimated", "is_baseline")
    return typed(frame, floats=floats, ints=ints, bools=bools, flags=("step_distinct",))


def _task_points_by_config(scored: pd.DataFrame) -> dict[Hashable, pd.DataFrame]:
    if scored.empty:
        return {}
    return {key_of(part.iloc[0]): part for _, part in scored.groupby(CONFIG, dropna=False)}


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


def tradeoff_table(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The ``tradeoff`` view: every configuration per task and over its tasks, with its front.

    Each point is on the axes the trade-off is drawn with; each front point is compared with
    its cheaper neighbour on the front: accuracy paired by document, energy paired by profile
    round where profiled (else net energy, no verdict); the steps of an experiment are one
    ``front`` family.

    The energy axis of a front (an experiment and a task, or a task set) is the profile's
    J/token where any of its configurations was profiled, and then only the profiled ones are
    on it; else the net energy of the eval runs.

    Args:
        inputs: ``runs``, ``items``, ``windows``, ``costs`` and ``analysis`` (``views.py``).
    """
    analysis = measures.analysis_of(inputs)
    points = measures.task_points(inputs["runs"])
    scored = measures.accuracy_points(points)
    if scored.empty:
        return pd.DataFrame(columns=list(TRADEOFF_COLUMNS))
    per_task = _as_axis(scored.assign(task_set=scored["task"], tasks=1))
    combined = _as_axis(measures.combined_points(points))
    axis = _profile_axis(inputs["windows"])
    profiled = measures.profiled_changes(inputs["windows"], analysis)
    scores = measures.item_scores(inputs["items"])
    scored_by = _task_points_by_config(scored)

    def change(a: pd.Series, b: pd.Series) -> tuple[dict, dict]:
        margins = analysis(a["experiment"]).margins
        if findings.missing(a["task"]):
            accuracy = measures.pooled_accuracy_change(
                scored_by[key_of(a)], scored_by[key_of(b)], scores, margins
            )
        else:
            accuracy = measures.accuracy_change(
                {"value": a["accuracy"], "run_id": a["run_id"]},
                {"value": b["accuracy"], "run_id": b["run_id"]},
                a["headline_metric"],
                scores,
                margins,
            )
        energy = _net_energy_step(a, b)
        if b["energy_measure"] == JOULES_PER_TOKEN:
            found = profiled.get((key_of(a), key_of(b)))
            if found is not None:
                energy = dict(found["change"])
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
    frame = _judge_steps(pd.concat(parts, ignore_index=True), analysis)
    payback = payback_table(inputs)
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
    ints = ("parameters_before", "parameters_after", "tasks", "step_family_size")
    bools = ("estimated", "is_baseline", "recovered", "on_front")
    return typed(frame, floats=floats, ints=ints, bools=bools, flags=("step_distinct",))
