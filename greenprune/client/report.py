"""The results table of ``greenprune report`` and ``greenprune run``, rendered from a view.

The table is the ResultsService's ``task_breakdown`` view: one row per configuration and task,
with parameters, both ratios (the target share of prunable parameters and the share of all
parameters removed), the task's headline metric with its standard error, net energy with its
interval, J/token, and the change in that metric and in energy against the model's baseline,
each with its interval and a text that leads with its verdict (lower, higher, equivalent within
the experiment's margin, inconclusive; the per-task net energy of eval runs, which are not
interleaved, has none), and the family the verdict was adjusted in. Every figure and text comes
from the view (the rules are the ResultsService's); this module only picks the columns and
renders them as a rich table, CSV or JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from rich.console import Console
from rich.table import Table

from greenprune.core import findings
from greenprune.core.energy.readings import describe_method

FORMATS = ("table", "csv", "json")

BASELINE_TEXT = findings.BASELINE_TEXT
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
        metric: The task's headline metric: its accuracy (``acc``, ``acc_norm``...), else its
            perplexity (``word_perplexity``...), else its first metric.
        value: Its value; None when the task reports no metric.
        stderr: Its standard error; None when not reported.
        net_joules: Median net energy of the measured window over repeats.
        net_joules_low: Lower bound of its interval.
        net_joules_high: Upper bound of its interval.
        joules_per_token: Net energy per token.
        estimated: Whether the energy is an estimate rather than a counter reading.
        delta_value: For an accuracy, the value minus the baseline's (0.05 = 5 points); for
            other metrics, the relative change against the baseline.
        delta_energy: Relative change of net energy against the baseline (-0.1 = 10% less).
        run_id: The eval run's request_id.
        parameters_before: Parameters of the unpruned model; None when unknown.
        removed_share: The share of all parameters removed (``ratio`` is of prunable ones).
        delta_value_low: Lower bound of the accuracy change's interval (same unit).
        delta_value_high: Upper bound.
        delta_value_method: How that interval was computed ("paired-bootstrap" by document,
            "unpaired-stderr" from the two standard errors, "no paired data").
        delta_value_verdict: lower, higher, equivalent or inconclusive (adjusted within its
            family); empty without a paired interval.
        delta_value_margin: The equivalence margin (a fraction: 0.01 is 1 point).
        delta_value_family: The family its verdict was adjusted in ("primary").
        delta_value_family_size: The family's size.
        delta_value_adjustment: The adjustment ("holm", "bh", "none").
        delta_value_text: The change as shown ("lower: −3.2 pt [−5.0, −1.1]").
        delta_energy_low: Lower bound of the energy change's interval.
        delta_energy_high: Upper bound.
        delta_energy_method: How that interval was computed.
        delta_energy_text: The change as shown (eval runs are not interleaved: no verdict).
        recovered: Whether the checkpoint was tuned back with LoRA after pruning ("+LoRA").
        checkpoint_id: The evaluated checkpoint, empty for a base model evaluated directly.
        metric_kind: "accuracy", "perplexity" or "other" (not exported: the metric says it).
        method_family: ``width``, ``depth``, ``int8``, ... (not exported; shown by the ratio).
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
    delta_value_verdict: str = ""
    delta_value_margin: float | None = None
    delta_value_family: str = ""
    delta_value_family_size: int | None = None
    delta_value_adjustment: str = ""
    delta_value_text: str = ""
    delta_energy_low: float | None = None
    delta_energy_high: float | None = None
    delta_energy_method: str = ""
    delta_energy_text: str = ""
    recovered: bool = False
    checkpoint_id: str = ""
    metric_kind: str = field(default="", compare=False)
    method_family: str = field(default="", compare=False)


EXPORTED: tuple[str, ...] = tuple(
    f.name for f in fields(ResultRow) if f.name not in ("metric_kind", "method_family")
)
"""The columns of ``--format csv`` and ``json``, in order."""

_FROM_VIEW: Mapping[str, str] = {
    "parameters": "parameters_after",
    "removed_share": "parameters_removed",
    "delta_value": "value_change",
    "delta_energy": "energy_change",
    **{
        f"delta_value_{k}": f"value_change_{k}"
        for k in ("low", "high", "method", "verdict", "margin", "family", "family_size")
        + ("adjustment", "text")
    },
    **{f"delta_energy_{k}": f"energy_change_{k}" for k in ("low", "high", "method", "text")},
}
"""The ``task_breakdown`` column of each ResultRow field whose name differs."""


def rows_from_view(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[ResultRow]:
    """The report's rows: the ``task_breakdown`` view's rows of each task's headline metric."""
    result = []
    for values in rows:
        record = {k: _plain(v) for k, v in zip(columns, values, strict=True)}
        if not record.get("is_headline"):
            continue
        row = {f.name: record.get(_FROM_VIEW.get(f.name, f.name)) for f in fields(ResultRow)}
        for name in ("experiment", "model", "task", "metric", "run_id", "checkpoint_id"):
            row[name] = row[name] or ""
        for name in ("delta_value_method", "delta_value_text", "metric_kind", "method_family"):
            row[name] = row[name] or ""
        for name in ("delta_value_verdict", "delta_value_family", "delta_value_adjustment"):
            row[name] = row[name] or ""
        if row["delta_value_family_size"] is not None:
            row["delta_value_family_size"] = int(row["delta_value_family_size"])
        for name in ("delta_energy_method", "delta_energy_text"):
            row[name] = row[name] or ""
        for name in ("parameters", "parameters_before"):
            row[name] = None if row[name] is None else int(row[name])
        for name in ("estimated", "recovered"):
            row[name] = bool(row[name])
        result.append(ResultRow(**row))
    return result


def _plain(value: Any) -> Any:
    """A view's cell as plain Python: NaN and pandas' missing values as None."""
    return None if findings.missing(value) else value


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


def _family(family: object) -> str:
    """A compression family to name ("int8", "depth"), empty for width pruning and none."""
    name = "" if findings.missing(family) else str(family)
    name = name.removesuffix(_DISTILLED).removesuffix("+lora")
    return "" if name in ("width", findings.BASELINE_FAMILY) else name


_DISTILLED = "+lora-distill"
"""The family suffix of recovery by distillation (``pruning_service.recovery.method_family``)."""


def _recovery(family: object, recovered: object) -> str:
    """How a checkpoint was recovered: "LoRA", "LoRA distilled", or "" for none."""
    if not recovered:
        return ""
    distilled = not findings.missing(family) and str(family).endswith(_DISTILLED)
    return "LoRA distilled" if distilled else "LoRA"


def _with_method(family: object, ratio: str) -> str:
    """``ratio`` named with its compression family where it is not width pruning ("int8, ...")."""
    return f"{_family(family)}, {ratio}" if _family(family) else ratio


def _ratio(row: ResultRow) -> str:
    if row.ratio is None:
        return "-"
    method = f" {_family(row.method_family)}" if _family(row.method_family) else ""
    method += f" +{_recovery(row.method_family, True)}" if row.recovered else ""
    if row.removed_share is None:
        return f"{row.ratio:.2f}{method}"
    return f"{row.ratio:.2f}{method} ({row.removed_share:.1%} of all)"


def _score(row: ResultRow) -> str:
    if row.value is None:
        return "-"
    text = f"{row.value:.3f}" if row.metric_kind == "accuracy" else f"{row.value:.4g}"
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
        "Changes against the baseline (the uncompressed model) come with their 95% interval "
        "and a verdict: " + findings.VERDICT_NOTE,
        "Δ accuracy: paired by document; "
        + findings.families_text(
            (row.delta_value_family, row.delta_value_family_size, row.delta_value_adjustment)
            for row in rows
        )
        + findings.margin_text([row.delta_value_margin for row in rows], relative=False)
        + ". Δ energy: net energy of eval runs measured apart (not interleaved): interval "
        "without a verdict; the profile's paired changes are below.",
    ]
    if any(row.value is not None and row.metric_kind != "accuracy" for row in rows):
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
        ("family", "left"),
        ("kernels: what could be saved, and what was", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    ordered = rows.sort_values(["model", "ratio", "phase", "batch_size"], kind="stable")
    for record in ordered.to_dict("records"):
        table.add_row(
            str(record["model"]),
            _with_method(
                record.get("method_family"),
                findings.ratio_text(record["ratio"], record["parameters_removed"]),
            ),
            str(record["checkpoint_id"] or "")[:16],
            "request mix (J/request)" if record["phase"] == "request" else str(record["phase"]),
            str(int(record["batch_size"])),
            _fmt(record["baseline_value"], ".3g"),
            _fmt(record["value"], ".3g"),
            str(record["text"]),
            str(record.get("family") or "-"),
            _kernel_note(record.get("kernel_note")),
        )
    table.caption = (
        "Steady-state windows measured in interleaved rounds (each round visits every "
        "checkpoint once, in a shuffled order); "
        + (
            "a request-mix row prices the declared workload (prefill J/token x prompt + decode "
            "J/token x output tokens, per round); "
            if (rows["phase"] == "request").any()
            else ""
        )
        + "verdicts: "
        + findings.VERDICT_NOTE
        + " "
        + findings.families_text(
            zip(rows["family"], rows["family_size"], rows["adjustment"], strict=True)
        )
        + findings.margin_text(list(rows["margin"]), relative=True)
        + ".\n"
        + describe_method(list(rows.get("energy_method", [])))
    )
    notes = [str(n) for n in rows.get("kernel_note", []) if not findings.missing(n)]
    if any(findings.NO_SAVING in note for note in notes):
        table.caption += (
            "\nOn this machine some checkpoints' zeroed weights run on dense kernels, which "
            f"multiply zeros as any other weight ({findings.NO_SAVING}): their sparsity cannot "
            "turn into saved work here. Realization ratio: measured saving / MACs skipped."
        )
    return table


def _kernel_note(note: object) -> str:
    return "" if findings.missing(note) else str(note)


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
        *(_REQUEST_COLUMNS if _has_workload(frame) else ()),
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
            _with_method(record.get("method_family"), _fmt(record["ratio"], ".2f")),
            _recovery(record.get("method_family"), record["recovered"]) or "no",
            str(int(record["batch_size"])),
            _fmt(record["pruning_joules"], ".3g"),
            _fmt(record["recovery_joules"], ".3g") if record["recovered"] else "-",
            saving,
            str(record["text"]),
            *(_request_cells(record) if _has_workload(frame) else ()),
        )
    table.caption = (
        "Payback: (pruning + recovery net joules) / J/token saved against the baseline, in the "
        f"profile's {findings.PROFILE_PHASE} phase at its largest batch size; the interval "
        "propagates the paired J/token change's, the baseline J/token's and the cost's (the "
        "spread of the pruning draws, when a point has several; one draw is one measurement) "
        "by Monte Carlo with the experiment's seed; \u2265 N tokens (possibly never) when the "
        "saving's interval reaches 0, never only when the saving is measurably not above 0. "
        "Costs cover the pruning and tuning work (not loading or saving), measured as the "
        "saving is, net of idle."
        + _workload_caption(frame)
        + "\n"
        + describe_method(list(frame.get("energy_method", [])))
    )
    return table


def payback_windows_table(frame: Any, title: str = "") -> Table | None:
    """The payback in every profiled phase and batch size (the ``payback_windows`` view).

    Returns:
        The table, or None when the view is empty.
    """
    if frame is None or not len(frame):
        return None
    table = Table(title=title or None, header_style="bold")
    for name in ("model", "ratio", "recovered", "phase", "batch", "payback [95%]", "verdict"):
        table.add_column(name, justify="left" if name in ("model", "phase") else "right")
    ordered = frame.sort_values(["model", "ratio", "recovered", "phase", "batch_size"])
    for record in ordered.to_dict("records"):
        table.add_row(
            str(record["model"]),
            _with_method(record.get("method_family"), _fmt(record["ratio"], ".2f")),
            _recovery(record.get("method_family"), record["recovered"]) or "no",
            str(record["phase"]),
            str(int(record["batch_size"])),
            str(record["text"]),
            str(record.get("verdict") or "-"),
        )
    table.caption = (
        "The same cost over the J/token saved in each phase and batch size (the headline table "
        f"above: {findings.PROFILE_PHASE} at the largest batch); interval and bounds as there."
    )
    return table


def _realization_pair(record: Mapping[str, Any]) -> str:
    """Each side's realization ratio (saving against the baseline / MACs skipped), "a / b"."""
    sides = [_plain(record.get(f"realization_{side}")) for side in ("a", "b")]
    return " / ".join(_fmt(None if findings.missing(v) else v, ".2f") for v in sides)


def method_comparison_table(frame: Any, title: str = "") -> Table | None:
    """Compression methods of equal size against each other: one row per pair and change.

    Args:
        frame: The ``method_comparison`` view as a DataFrame (b against a, at one ratio).
        title: The table's title.

    Returns:
        The table, or None when the view is empty (fewer than two methods at one ratio).
    """
    if frame is None or not len(frame):
        return None
    table = Table(title=title or None, header_style="bold")
    for name, justify in (
        ("model", "left"),
        ("ratio", "right"),
        ("a", "left"),
        ("b", "left"),
        ("kind", "left"),
        ("task or phase", "left"),
        ("batch", "right"),
        ("a value", "right"),
        ("b value", "right"),
        ("Δ b against a [95%]", "right"),
        ("family", "left"),
        ("realization a / b", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    ordered = frame.sort_values(["model", "ratio", "method_a", "method_b", "kind"], kind="stable")
    for record in ordered.to_dict("records"):
        energy = record["kind"] == "energy"
        where = str(record["phase"]) if energy else str(record.get("task") or findings.MINUS)
        spec = ".3g" if energy else ".3f"
        table.add_row(
            str(record["model"]),
            _fmt(record["ratio"], ".2f"),
            str(record["method_a"]),
            str(record["method_b"]),
            str(record["kind"]),
            where,
            "" if findings.missing(record.get("batch_size")) else str(int(record["batch_size"])),
            _fmt(_plain(record["value_a"]), spec),
            _fmt(_plain(record["value_b"]), spec),
            str(record["text"]),
            str(record.get("family") or "-"),
            _realization_pair(record) if energy else "",
        )
    energy_rows = frame[frame["kind"] == "energy"]
    accuracy_rows = frame[frame["kind"] != "energy"]
    table.caption = (
        "Each pair shares a model and a target ratio: b against a, energy (J/token of the "
        "steady-state profile) paired by round and accuracy paired by document; verdicts: "
        + findings.VERDICT_NOTE
        + " "
        + findings.families_text(
            zip(frame["family"], frame["family_size"], frame["adjustment"], strict=True)
        )
        + _kind_margins(energy_rows, accuracy_rows)
        + ". Realization: each method's J/token saving against the baseline / the share of "
        "MACs its kernels skip.\n" + describe_method(list(energy_rows.get("energy_method", [])))
    )
    return table


def _kind_margins(energy: Any, accuracy: Any) -> str:
    """``, margin ±3.0% (energy), ±1.0 pt (accuracy)``: each kind's margins, named."""
    parts = [
        text.removeprefix(", margin ") + f" ({kind})"
        for kind, text in (
            ("energy", findings.margin_text(list(energy["margin"]), relative=True)),
            ("accuracy", findings.margin_text(list(accuracy["margin"]), relative=False)),
        )
        if text
    ]
    return ", margin " + ", ".join(parts) if parts else ""


def report_tables(
    rows: Sequence[ResultRow],
    found: Any,
    methods: Any,
    payback: Any,
    experiment: str = "",
    payback_windows: Any = None,
) -> list[Table]:
    """Every table of ``greenprune report``, in order, as the terminal and the HTML show them.

    Args:
        rows: The results rows (:func:`rows_from_view`): accuracy by task.
        found: The ``findings`` view: energy by phase and batch.
        methods: The ``method_comparison`` view.
        payback: The ``payback`` view.
        experiment: The experiment, for the titles.
        payback_windows: The ``payback_windows`` view: payback per phase and batch size.
    """
    name = f"{experiment} " if experiment else ""
    tables = [results_table(rows, title=experiment)]
    for table in (
        energy_findings_table(found, title=f"{name}energy profile"),
        method_comparison_table(methods, title=f"{name}compression methods of equal size"),
        payback_table(payback, title=f"{name}payback"),
        payback_windows_table(payback_windows, title=f"{name}payback per phase and batch size"),
    ):
        if table is not None:
            tables.append(table)
    return tables


_REQUEST_COLUMNS = ("J/request", "\u0394 J/request [95%]", "payback (requests) [95%]")
"""The payback table's columns of the declared request mix."""


def _has_workload(frame: Any) -> bool:
    column = frame.get("workload_prompt_tokens")
    return column is not None and bool(column.notna().any())


def _request_cells(record: Mapping[str, Any]) -> tuple[str, str, str]:
    """A checkpoint's J/request, its change (verdict and interval) and payback in requests."""
    if not findings.finite(record.get("joules_per_request")):
        return "-", "-", "-"
    cpu = record.get("cpu_seconds_per_request")
    energy = _fmt(record["joules_per_request"], ".3g")
    if findings.finite(cpu):
        energy += f" ({cpu:.3g} CPU-s)"
    return energy, str(record["request_text"]), str(record["payback_requests_text"])


def _workload_caption(frame: Any) -> str:
    if not _has_workload(frame):
        return ""
    first = frame[frame["workload_prompt_tokens"].notna()].iloc[0]
    return (
        f" Request mix: {int(first['workload_prompt_tokens'])} prompt + "
        f"{int(first['workload_output_tokens'])} output tokens = prefill J/token x prompt + "
        f"decode J/token x output at batch {int(first['request_batch_size'])}, paired by round."
    )


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
    return [sanitize({name: getattr(row, name) for name in EXPORTED}) for row in rows]


def to_csv(rows: Sequence[ResultRow]) -> str:
    """Returns the rows as CSV with a header row."""
    buffer = io.StringIO()
    names = list(EXPORTED)
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
