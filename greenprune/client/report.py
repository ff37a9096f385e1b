"""The results table: rows from recorded runs or from the ResultsService ``runs`` view.

One row per (model, ratio, task): parameters, accuracy with its standard error, net energy with
its interval, J/token, and the change in accuracy and energy against ratio 0 of the same model
and task. Rendered as a rich table, CSV or JSON. Nothing here talks to a server.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from rich.console import Console
from rich.table import Table

ACCURACY_METRICS = ("acc", "acc_norm")
"""Metrics taken as a task's accuracy, in order of preference (as the results views do)."""

PERPLEXITY_METRICS = ("word_perplexity", "byte_perplexity", "bits_per_byte")
"""Metrics shown for tasks without an accuracy (lower is better), in order of preference."""

FORMATS = ("table", "csv", "json")


@dataclass(frozen=True)
class ResultRow:
    """One evaluated checkpoint on one task.

    Attributes:
        experiment: The experiment the run belongs to.
        model: The base model.
        ratio: The target pruning ratio (0 for the unpruned copy); None when unknown.
        parameters: Parameters of the checkpoint; None when unknown.
        task: The lm-eval task.
        metric: The metric shown: the task's accuracy (``acc``, ``acc_norm``...), else its
            perplexity (``word_perplexity``...), else its first metric.
        value: Its value; None when the task reports no metric.
        stderr: Its standard error; None when not reported.
        net_joules: Median net energy of the measured window over repeats.
        net_joules_low: Lower bound of its interval.
        net_joules_high: Upper bound of its interval.
        joules_per_token: Net energy per token.
        estimated: Whether the energy is an estimate rather than a counter reading.
        delta_value: For an accuracy, the value minus the ratio-0 value (0.05 = 5 points); for
            other metrics, the relative change against ratio 0.
        delta_energy: Relative change of net energy against ratio 0 (-0.1 = 10% less).
        run_id: The eval run's request_id.
    """

    experiment: str
    model: str
    ratio: float | None
    parameters: int | None
    task: str
    metric: str = ""
    value: float | None = None
    stderr: float | None = None
    net_joules: float | None = None
    net_joules_low: float | None = None
    net_joules_high: float | None = None
    joules_per_token: float | None = None
    estimated: bool = False
    delta_value: float | None = None
    delta_energy: float | None = None
    run_id: str = field(default="", compare=False)


def primary_metric(metrics: Iterable[Any], task: str) -> tuple[str, float | None, float | None]:
    """Picks the metric that stands for a task (``MetricValue`` messages or alike).

    Returns:
        ``(metric name, value, stderr)``: the first of ``ACCURACY_METRICS`` the task reports,
        else the first of ``PERPLEXITY_METRICS``, else its first metric, preferring metrics of
        ``task`` itself; ``("", None, None)`` when there is none.
    """
    preference = (*ACCURACY_METRICS, *PERPLEXITY_METRICS)
    ranked = sorted(
        metrics,
        key=lambda m: (
            preference.index(m.metric) if m.metric in preference else len(preference),
            m.task != task,
        ),
    )
    if not ranked:
        return "", None, None
    best = ranked[0]
    stderr = best.stderr if _has(best, "stderr") else None
    return best.metric, best.value, stderr


def _has(message: Any, name: str) -> bool:
    try:
        return bool(message.HasField(name))
    except (AttributeError, ValueError):
        return getattr(message, name, None) is not None


def row_from_runs(prune_run: Any | None, eval_run: Any, ratio: float | None = None) -> ResultRow:
    """Builds a row from a ``PruneRun`` and an ``EvalRun`` message (``results.v1``)."""
    result = eval_run.result
    metric, value, stderr = primary_metric(result.metrics, result.task or eval_run.spec.tasks[0])
    energy = result.energy if result.HasField("energy") else None
    has_energy = energy is not None and energy.net_joules.count > 0
    if prune_run is not None:
        model = prune_run.spec.model
        ratio = prune_run.spec.ratio if ratio is None else ratio
        parameters: int | None = prune_run.result.parameters_after
    else:
        model, parameters = eval_run.model, None
    return ResultRow(
        experiment=eval_run.experiment,
        model=model or eval_run.model,
        ratio=ratio,
        parameters=parameters,
        task=result.task,
        metric=metric,
        value=value,
        stderr=stderr,
        net_joules=energy.net_joules.median if has_energy else None,
        net_joules_low=energy.net_joules.low if has_energy else None,
        net_joules_high=energy.net_joules.high if has_energy else None,
        joules_per_token=energy.joules_per_token if has_energy else None,
        estimated=bool(energy.estimated) if has_energy else False,
        run_id=eval_run.request_id,
    )


def rows_from_view(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[ResultRow]:
    """Builds rows from the ResultsService ``runs`` view (column names as ``analytics.views``)."""
    result = []
    for values in rows:
        record = dict(zip(columns, values, strict=True))
        parameters = record.get("parameters_after")
        metric, value, stderr = record.get("metric"), record.get("accuracy"), None
        if value is None and record.get("perplexity") is not None:
            metric, value = record.get("perplexity_metric"), record.get("perplexity")
        else:
            stderr = record.get("accuracy_stderr")
        result.append(
            ResultRow(
                experiment=record.get("experiment") or "",
                model=record.get("model") or "",
                ratio=record.get("ratio"),
                parameters=int(parameters) if parameters is not None else None,
                task=record.get("task") or "",
                metric=metric or "",
                value=value,
                stderr=stderr,
                net_joules=record.get("net_joules"),
                net_joules_low=record.get("net_joules_low"),
                net_joules_high=record.get("net_joules_high"),
                joules_per_token=record.get("joules_per_token"),
                estimated=bool(record.get("estimated")),
                run_id=record.get("run_id") or "",
            )
        )
    return result


def with_deltas(rows: Sequence[ResultRow]) -> list[ResultRow]:
    """Returns the rows with the change against ratio 0 of the same experiment, model and task.

    When several ratio-0 rows exist for one key (repeated runs), their mean is the baseline.
    """
    baselines: dict[tuple[str, str, str], list[ResultRow]] = defaultdict(list)
    for row in rows:
        if row.ratio == 0:
            baselines[(row.experiment, row.model, row.task)].append(row)
    result = []
    for row in rows:
        base = baselines.get((row.experiment, row.model, row.task), [])
        base_value = _mean(b.value for b in base if b.metric == row.metric)
        base_energy = _mean(b.net_joules for b in base)
        delta_value = None
        if row.value is not None and base_value is not None:
            delta_value = row.value - base_value
            if not is_accuracy(row.metric):
                delta_value = delta_value / base_value if base_value else None
        delta_energy = (
            (row.net_joules - base_energy) / base_energy
            if row.net_joules is not None and base_energy
            else None
        )
        result.append(replace(row, delta_value=delta_value, delta_energy=delta_energy))
    return result


def is_accuracy(metric: str) -> bool:
    """Whether a metric is an accuracy (a fraction where higher is better)."""
    return metric in ACCURACY_METRICS


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return sum(present) / len(present) if present else None


# -- rendering -----------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _signed(value: float | None, scale: float, unit: str) -> str:
    return "-" if value is None else f"{value * scale:+.1f}{unit}"


def _parameters(value: int | None) -> str:
    if value is None:
        return "-"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.2f}{suffix}"
    return str(value)


def _energy(row: ResultRow) -> str:
    if row.net_joules is None:
        return "-"
    text = f"{row.net_joules:.3g} J"
    if row.net_joules_low is not None and row.net_joules_high is not None:
        text += f" [{row.net_joules_low:.3g}, {row.net_joules_high:.3g}]"
    return text


def _score(row: ResultRow) -> str:
    if row.value is None:
        return "-"
    text = f"{row.value:.3f}" if is_accuracy(row.metric) else f"{row.value:.4g}"
    if row.stderr is not None and not math.isnan(row.stderr):
        text += f" ± {row.stderr:.3f}"
    return text


def _delta(row: ResultRow) -> str:
    if row.delta_value is None:
        return "-"
    if is_accuracy(row.metric):
        return _signed(row.delta_value, 100, " pt")
    return _signed(row.delta_value, 100, " %")


def results_table(rows: Sequence[ResultRow], title: str = "") -> Table:
    """Returns a rich table of ``rows`` (already carrying their deltas)."""
    experiments = {row.experiment for row in rows}
    table = Table(title=title or None, show_lines=False, header_style="bold")
    if len(experiments) > 1:
        table.add_column("experiment")
    for name, justify in (
        ("model", "left"),
        ("ratio", "right"),
        ("parameters", "right"),
        ("task", "left"),
        ("accuracy ± stderr", "right"),
        ("net energy [95% interval]", "right"),
        ("J/token", "right"),
        ("Δ accuracy", "right"),
        ("Δ energy", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        cells = [
            row.model,
            _fmt(row.ratio, ".2f"),
            _parameters(row.parameters),
            row.task + (f" ({row.metric})" if row.metric and row.metric != "acc" else ""),
            _score(row),
            _energy(row),
            _fmt(row.joules_per_token, ".3g"),
            _delta(row),
            _signed(row.delta_energy, 100, " %"),
        ]
        table.add_row(*([row.experiment] if len(experiments) > 1 else []), *cells)
    notes = []
    if any(row.value is not None and not is_accuracy(row.metric) for row in rows):
        notes.append(
            "Tasks without an accuracy show the metric in brackets (a perplexity: lower is "
            "better); its change is relative."
        )
    if any(row.estimated for row in rows):
        notes.append(
            "Energy is estimated (no power counters were readable); compare ratios, not absolutes."
        )
    table.caption = "\n".join(notes) or None
    return table


def print_rows(
    rows: Sequence[ResultRow], output_format: str, console: Console, title: str = ""
) -> None:
    """Writes ``rows`` to ``console`` as a table, CSV or JSON."""
    if output_format == "table":
        console.print(results_table(rows, title))
    elif output_format == "csv":
        console.print(to_csv(rows), end="", markup=False, highlight=False, soft_wrap=True)
    elif output_format == "json":
        console.print(to_json(rows), markup=False, highlight=False, soft_wrap=True)
    else:
        raise ValueError(f"unknown format {output_format!r} (use one of {', '.join(FORMATS)})")


def to_records(rows: Sequence[ResultRow]) -> list[dict[str, Any]]:
    """Returns the rows as plain dicts."""
    return [sanitize(asdict(row)) for row in rows]


def to_csv(rows: Sequence[ResultRow]) -> str:
    """Returns the rows as CSV with a header row."""
    buffer = io.StringIO()
    names = list(ResultRow.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for record in to_records(rows):
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return buffer.getvalue()


def to_json(rows: Sequence[ResultRow]) -> str:
    """Returns the rows as a JSON array."""
    return json.dumps(to_records(rows), indent=2, allow_nan=False)


def sanitize(records: Mapping[str, Any]) -> dict[str, Any]:
    """Returns ``records`` with NaN floats as None (JSON has no NaN)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in records.items()}
