"""The results table: rows from recorded runs or from the ResultsService ``runs`` view.

One row per (model, ratio, task): parameters, both ratios (the target share of prunable
parameters and the share of all parameters removed), accuracy with its standard error, net
energy with its interval, J/token, and the change in accuracy and energy against ratio 0 of the
same model and task, each with its interval and a text that says "no measurable change" when
the interval contains 0. The rules (headline metric, baseline, change, wording) are those of
``greenprune.core.findings``; paired intervals from the ``findings`` view replace the unpaired ones
when given (``with_findings``). Rendered as a rich table, CSV or JSON. Nothing here talks to a
server; ``decode_table`` is the one decoder of the ResultsService's ``Table``.
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

from greenprune.api.common.v1.energy_pb2 import Interval
from greenprune.core import findings

FORMATS = ("table", "csv", "json")

BASELINE_TEXT = "baseline"
"""What the change columns say on the baseline's own row."""


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
        parameters_before: Parameters of the unpruned model; None when unknown.
        removed_share: The share of all parameters removed (``ratio`` is of prunable ones).
        delta_value_low: Lower bound of the accuracy change's interval (same unit).
        delta_value_high: Upper bound.
        delta_value_method: How that interval was computed ("paired-bootstrap" by document,
            "unpaired-stderr" from the two standard errors, "no paired data").
        delta_value_measurable: Whether the interval excludes 0.
        delta_value_text: The change as shown ("−3.2 pt [−5.0, −1.1]", "no measurable change
            (...)").
        delta_energy_low: Lower bound of the energy change's interval.
        delta_energy_high: Upper bound.
        delta_energy_method: How that interval was computed.
        delta_energy_measurable: Whether the interval excludes 0.
        delta_energy_text: The change as shown.
        recovered: Whether the checkpoint was tuned back with LoRA after pruning ("+LoRA").
        checkpoint_id: The evaluated checkpoint (pairs the row with its ``findings`` rows).
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
    parameters_before: int | None = None
    removed_share: float | None = None
    delta_value_low: float | None = None
    delta_value_high: float | None = None
    delta_value_method: str = ""
    delta_value_measurable: bool = False
    delta_value_text: str = ""
    delta_energy_low: float | None = None
    delta_energy_high: float | None = None
    delta_energy_method: str = ""
    delta_energy_measurable: bool = False
    delta_energy_text: str = ""
    recovered: bool = False
    checkpoint_id: str = ""


def primary_metric(metrics: Iterable[Any], task: str) -> tuple[str, float | None, float | None]:
    """Picks the metric that stands for a task (``MetricValue`` messages or alike).

    Returns:
        ``(metric name, value, stderr)``: ``findings.headline_metric`` of the task's own
        metrics (else of all metrics); ``("", None, None)`` when there is none.
    """
    metrics = list(metrics)
    own = [m for m in metrics if m.task == task] or metrics
    name = findings.headline_metric(m.metric for m in own)
    if name is None:
        return "", None, None
    best = next(m for m in own if m.metric == name)
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
    before: int | None = None
    if prune_run is not None:
        model = prune_run.spec.model
        ratio = prune_run.spec.ratio if ratio is None else ratio
        parameters: int | None = prune_run.result.parameters_after
        before = prune_run.result.parameters_before or None
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
        parameters_before=before,
        removed_share=findings.share_removed(before, parameters),
        recovered=prune_run is not None and prune_run.spec.HasField("recovery"),
        checkpoint_id=eval_run.checkpoint_id,
    )


def rows_from_view(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[ResultRow]:
    """Builds rows from the ResultsService ``runs`` view (its column names)."""
    result = []
    for values in rows:
        record = dict(zip(columns, values, strict=True))
        parameters = record.get("parameters_after")
        before = record.get("parameters_before")
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
                parameters_before=int(before) if before is not None else None,
                removed_share=findings.share_removed(before, parameters),
                recovered=str(record.get("pruning_method") or "").endswith("+lora"),
                checkpoint_id=record.get("checkpoint_id") or "",
            )
        )
    return result


def decode_value(value: Any) -> Any:
    """Returns the Python value of one cell of a ResultsService ``Table``.

    A protobuf ``Value`` becomes None, a float, a str, a bool, or a dict/list.
    """
    kind = value.WhichOneof("kind")
    if kind in (None, "null_value"):
        return None
    if kind in ("number_value", "string_value", "bool_value"):
        return getattr(value, kind)
    from google.protobuf import json_format

    return json_format.MessageToDict(getattr(value, kind))


def decode_table(table: Any) -> tuple[list[str], list[str], list[list[Any]]]:
    """Decodes a ResultsService ``Table``: column names, column types and rows of values.

    The one decoder of query results: ``greenprune report`` and the app both use it.

    Raises:
        ValueError: A row's length differs from the number of columns.
    """
    names = [column.name for column in table.columns]
    types = [column.type for column in table.columns]
    rows = [[decode_value(value) for value in row.values] for row in table.rows]
    for row in rows:
        if len(row) != len(names):
            raise ValueError(f"a row of {len(row)} values for {len(names)} columns")
    return names, types, rows


def with_deltas(rows: Sequence[ResultRow]) -> list[ResultRow]:
    """Returns the rows with their change against the baseline, each with an interval.

    The baseline is the ratio-0 row of the same experiment, model and task
    (``findings.is_baseline``); its own changes are 0, shown as "baseline".

    Without per-document scores the intervals are unpaired: accuracy from the two standard
    errors, energy from the two intervals' opposite ends (``findings``). When several baseline
    rows exist for one key (repeated runs), the first is the baseline.
    """
    baselines: dict[tuple[str, str, str], list[ResultRow]] = defaultdict(list)
    for row in rows:
        if findings.is_baseline(row.ratio):
            baselines[(row.experiment, row.model, row.task)].append(row)
    result = []
    for row in rows:
        base_rows = baselines.get((row.experiment, row.model, row.task), [])
        base = next((b for b in base_rows if b.metric == row.metric), None)
        if base is None:
            result.append(row)
            continue
        if base is row or findings.is_baseline(row.ratio):
            result.append(
                replace(
                    row,
                    delta_value=0.0,
                    delta_energy=0.0,
                    delta_value_text=BASELINE_TEXT,
                    delta_energy_text=BASELINE_TEXT,
                )
            )
            continue
        accuracy = is_accuracy(row.metric)
        delta_value = None
        value_change = None
        if row.value is not None and base.value is not None:
            delta_value = row.value - base.value
            if accuracy:
                value_change = findings.accuracy_change_unpaired(
                    base.value, base.stderr, row.value, row.stderr
                )
            else:
                delta_value = delta_value / base.value if base.value else None
        energy_change = findings.energy_change_unpaired(
            (base.net_joules, base.net_joules_low, base.net_joules_high),
            (row.net_joules, row.net_joules_low, row.net_joules_high),
        )
        result.append(
            _with_changes(
                row,
                value_change,
                delta_value,
                energy_change,
                None if energy_change is None else energy_change.median,
            )
        )
    return result


def _with_changes(
    row: ResultRow,
    value_change: Interval | None,
    delta_value: float | None,
    energy_change: Interval | None,
    delta_energy: float | None,
) -> ResultRow:
    value = findings.interval_fields(
        value_change, relative=not is_accuracy(row.metric), estimate=delta_value
    )
    energy = findings.interval_fields(energy_change, relative=True, estimate=delta_energy)
    return replace(
        row,
        delta_value=value["estimate"],
        delta_value_low=value["low"],
        delta_value_high=value["high"],
        delta_value_method=value["method"],
        delta_value_measurable=value["measurable"],
        delta_value_text=value["text"],
        delta_energy=energy["estimate"],
        delta_energy_low=energy["low"],
        delta_energy_high=energy["high"],
        delta_energy_method=energy["method"],
        delta_energy_measurable=energy["measurable"],
        delta_energy_text=energy["text"],
    )


def with_findings(
    rows: Sequence[ResultRow], columns: Sequence[str], values: Iterable[Sequence[Any]]
) -> list[ResultRow]:
    """Replaces the accuracy changes by the paired ones of the ``findings`` view, where given.

    Args:
        rows: Rows carrying their deltas (``with_deltas``).
        columns: The ``findings`` view's column names.
        values: Its rows.
    """
    paired: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
    for record in (dict(zip(columns, v, strict=True)) for v in values):
        if record.get("kind") == "accuracy" and record.get("count"):
            key = (
                record.get("experiment") or "",
                record.get("model") or "",
                record.get("task") or "",
                record.get("metric") or "",
                record.get("checkpoint_id") or "",
            )
            paired[key] = record
    result = []
    for row in rows:
        # Keyed by checkpoint too: two checkpoints at one ratio (recovered or not) differ.
        record = paired.get((row.experiment, row.model, row.task, row.metric, row.checkpoint_id))
        if record is None or findings.is_baseline(row.ratio):
            result.append(row)
            continue
        result.append(
            replace(
                row,
                delta_value=record["estimate"],
                delta_value_low=record["low"],
                delta_value_high=record["high"],
                delta_value_method=record["method"],
                delta_value_measurable=bool(record["measurable"]),
                delta_value_text=record["text"],
            )
        )
    return result


def is_accuracy(metric: str) -> bool:
    """Whether a metric is an accuracy (a fraction where higher is better)."""
    return findings.is_accuracy(metric)


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return sum(present) / len(present) if present else None


# -- rendering -----------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _parameters(value: int | None) -> str:
    if value is None:
        return "-"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.2f}{suffix}"
    return str(value)


def _energy(row: ResultRow) -> str:
    return findings.describe_energy(row.net_joules, row.net_joules_low, row.net_joules_high)


def _ratio(row: ResultRow) -> str:
    if row.ratio is None:
        return "-"
    recovered = " +LoRA" if row.recovered else ""
    if row.removed_share is None:
        return f"{row.ratio:.2f}{recovered}"
    return f"{row.ratio:.2f}{recovered} ({row.removed_share:.1%} of all)"


def _score(row: ResultRow) -> str:
    if row.value is None:
        return "-"
    text = f"{row.value:.3f}" if is_accuracy(row.metric) else f"{row.value:.4g}"
    if row.stderr is not None and not math.isnan(row.stderr):
        text += f" ± {row.stderr:.3f}"
    return text


def _delta(text: str) -> str:
    return text or "-"


def results_table(rows: Sequence[ResultRow], title: str = "") -> Table:
    """Returns a rich table of ``rows`` (already carrying their deltas)."""
    experiments = {row.experiment for row in rows}
    table = Table(title=title or None, show_lines=False, header_style="bold")
    if len(experiments) > 1:
        table.add_column("experiment")
    for name, justify in (
        ("model", "left"),
        ("ratio (of all parameters)", "right"),
        ("parameters", "right"),
        ("task", "left"),
        ("accuracy ± stderr", "right"),
        ("net energy [95% interval]", "right"),
        ("J/token", "right"),
        ("Δ accuracy", "right"),
        ("Δ energy", "right"),
    ):
        # Names never wrap (they are what a reader looks up); the changes' texts may.
        table.add_column(  # type: ignore[arg-type]
            name, justify=justify, no_wrap=name in ("model", "task")
        )
    for row in rows:
        cells = [
            row.model,
            _ratio(row),
            _parameters(row.parameters),
            row.task + (f" ({row.metric})" if row.metric and row.metric != "acc" else ""),
            _score(row),
            _energy(row),
            _fmt(row.joules_per_token, ".3g"),
            _delta(row.delta_value_text),
            _delta(row.delta_energy_text),
        ]
        table.add_row(*([row.experiment] if len(experiments) > 1 else []), *cells)
    notes = [
        "Ratio: the target share of prunable parameters (in brackets: of all parameters). "
        'Changes against ratio 0 come with their 95% interval; "no measurable change" '
        "when it contains 0."
    ]
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


def energy_findings_table(frame: Any, title: str = "") -> Table | None:
    """The energy profile's changes against the baseline: one row per checkpoint, phase, batch.

    Args:
        frame: The ``findings`` view as a DataFrame (its ``energy`` rows are shown).
        title: The table's title.

    Returns:
        The table, or None when the view has no energy rows (no profile was measured).
    """
    rows = frame[frame["kind"] == "energy"] if len(frame) else frame
    if not len(rows):
        return None
    table = Table(title=title or None, header_style="bold")
    for name, justify in (
        ("model", "left"),
        ("ratio (of all parameters)", "right"),
        ("checkpoint", "left"),
        ("phase", "left"),
        ("batch", "right"),
        ("J/token baseline", "right"),
        ("J/token", "right"),
        ("Δ J/token, paired by round [95%]", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    ordered = rows.sort_values(["model", "ratio", "phase", "batch_size"], kind="stable")
    for record in ordered.to_dict("records"):
        table.add_row(
            str(record["model"]),
            findings.ratio_text(record["ratio"], record["parameters_removed"]),
            str(record["checkpoint_id"] or "")[:16],
            str(record["phase"]),
            str(int(record["batch_size"])),
            _fmt(record["baseline_value"], ".3g"),
            _fmt(record["value"], ".3g"),
            str(record["text"]),
        )
    table.caption = (
        "Steady-state windows measured in interleaved rounds (each round visits every "
        'checkpoint once, in a shuffled order); "no measurable change" when the paired '
        "interval contains 0."
    )
    return table


def payback_table(frame: Any, title: str = "") -> Table | None:
    """When each compressed checkpoint's energy saving repays its pruning and recovery energy.

    Args:
        frame: The ``payback`` view as a DataFrame.
        title: The table's title.

    Returns:
        The table, or None when the view is empty (no profile, or no recorded prune energy).
    """
    if frame is None or not len(frame):
        return None
    table = Table(title=title or None, header_style="bold")
    for name in (
        "model",
        "ratio",
        "recovered",
        "batch",
        "pruning J",
        "recovery J",
        "saved J/token [95%]",
        "payback (inference tokens) [95%]",
    ):
        table.add_column(name, justify="left" if name == "model" else "right")
    ordered = frame.sort_values(["model", "ratio", "recovered"], kind="stable")
    for record in ordered.to_dict("records"):
        saving = "-"
        if findings.finite(record["saving_joules_per_token"]):
            saving = (
                f"{record['saving_joules_per_token']:.3g} "
                f"[{record['saving_joules_per_token_low']:.3g}, "
                f"{record['saving_joules_per_token_high']:.3g}]"
            )
        table.add_row(
            str(record["model"]),
            _fmt(record["ratio"], ".2f"),
            "LoRA" if record["recovered"] else "no",
            str(int(record["batch_size"])),
            _fmt(record["pruning_joules"], ".3g"),
            _fmt(record["recovery_joules"], ".3g") if record["recovered"] else "-",
            saving,
            str(record["text"]),
        )
    table.caption = (
        "Payback: (pruning + recovery net joules) / J/token saved against the baseline, in the "
        f"profile's {findings.PROFILE_PHASE} phase at its largest batch size; the interval comes "
        "from the paired J/token change; never when the saving is not measurably above zero."
    )
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
