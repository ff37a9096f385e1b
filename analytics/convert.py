"""Conversions between ResultsService protobuf messages and the plain dicts of ``store.py``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from analytics import schema
from analytics.store import ViewFilter, ViewTable
from greenprune.api.common.v1 import energy_pb2, layers_pb2
from greenprune.api.eval.v1 import eval_pb2
from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.api.results.v1 import results_pb2
from greenprune.core.limits import method_name, method_value


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


# Energy ------------------------------------------------------------------------------------


def _interval_from_pb(name: str, parent: Any) -> dict[str, Any]:
    if not parent.HasField(name):
        return dict.fromkeys(
            (name, f"{name}_low", f"{name}_high", f"{name}_count", f"{name}_interval")
        )
    interval = getattr(parent, name)
    return {
        name: interval.median,
        f"{name}_low": interval.low,
        f"{name}_high": interval.high,
        f"{name}_count": interval.count,
        f"{name}_interval": interval.method,
    }


def _interval_to_pb(name: str, row: dict[str, Any]) -> energy_pb2.Interval | None:
    if row.get(name) is None:
        return None
    return energy_pb2.Interval(
        median=row[name],
        low=row[f"{name}_low"] or 0.0,
        high=row[f"{name}_high"] or 0.0,
        count=row[f"{name}_count"] or 0,
        method=row[f"{name}_interval"] or "",
    )


def components_from_pb(
    components: Iterable[energy_pb2.ComponentEnergy],
) -> list[dict[str, Any]]:
    """Returns the component dicts of an EnergyReport's components."""
    rows = []
    for component in components:
        row = {
            "component": component.component,
            "method": component.method,
            "estimated": component.estimated,
            "idle_watts": component.idle_watts,
        }
        row.update(_interval_from_pb("gross_joules", component))
        row.update(_interval_from_pb("net_joules", component))
        rows.append(row)
    return rows


def energy_from_pb(parent: Any) -> dict[str, Any]:
    """Returns the energy columns and components of ``parent.energy`` (all NULL when unset).

    Args:
        parent: A TaskResult or PruneResult.
    """
    if not parent.HasField("energy"):
        columns: dict[str, Any] = dict.fromkeys(schema.ENERGY_KEYS)
        columns["has_energy"] = False
        columns["components"] = []
        return columns
    report = parent.energy
    columns = {"has_energy": True, "headline_component": report.headline_component}
    for name in schema.INTERVAL_NAMES:
        columns.update(_interval_from_pb(name, report))
    columns.update(
        tokens=report.tokens,
        energy_samples=report.samples,
        joules_per_token=report.joules_per_token,
        joules_per_sample=report.joules_per_sample,
        peak_rss_bytes=report.peak_rss_bytes,
        peak_cuda_bytes=report.peak_cuda_bytes,
        device_name=report.device_name,
        hardware=report.hardware,
        gpu_shared=report.gpu_shared,
        estimated=report.estimated,
        repeats=report.repeats,
        repeat_net_joules=list(report.repeat_net_joules),
        components=components_from_pb(report.components),
    )
    return columns


def energy_to_pb(row: dict[str, Any]) -> energy_pb2.EnergyReport | None:
    """Returns the EnergyReport stored in a run dict, or None when it had none."""
    if not row.get("has_energy"):
        return None
    report = energy_pb2.EnergyReport(
        headline_component=row["headline_component"] or "",
        tokens=row["tokens"] or 0,
        samples=row["energy_samples"] or 0,
        joules_per_token=row["joules_per_token"] or 0.0,
        joules_per_sample=row["joules_per_sample"] or 0.0,
        peak_rss_bytes=row["peak_rss_bytes"] or 0,
        peak_cuda_bytes=row["peak_cuda_bytes"] or 0,
        device_name=row["device_name"] or "",
        hardware=row["hardware"] or "",
        gpu_shared=bool(row["gpu_shared"]),
        estimated=bool(row["estimated"]),
        repeats=row["repeats"] or 0,
        repeat_net_joules=row["repeat_net_joules"] or [],
    )
    for name in schema.INTERVAL_NAMES:
        interval = _interval_to_pb(name, row)
        if interval is not None:
            getattr(report, name).CopyFrom(interval)
    for component in row.get("components") or []:
        report.components.add(
            component=component["component"],
            method=component["method"],
            estimated=component["estimated"],
            idle_watts=component["idle_watts"],
            gross_joules=_interval_to_pb("gross_joules", component),
            net_joules=_interval_to_pb("net_joules", component),
        )
    return report


# Runs --------------------------------------------------------------------------------------


def eval_run_from_pb(run: results_pb2.EvalRun) -> dict[str, Any]:
    """Returns the store dict of an EvalRun; create_time is ignored (the store sets it)."""
    spec = run.spec
    result = run.result
    subject = spec.WhichOneof("subject")
    checkpoint_id = run.checkpoint_id or (spec.checkpoint_id if subject == "checkpoint_id" else "")
    model = run.model or (spec.model if subject == "model" else "")
    row: dict[str, Any] = {
        "request_id": run.request_id,
        "experiment": run.experiment,
        "job_name": run.job_name,
        "checkpoint_id": checkpoint_id,
        "model": model,
        "task": result.task,
        "samples": result.samples,
        "num_fewshot": spec.num_fewshot,
        "sample_limit": spec.limit if spec.HasField("limit") else None,
        "spec": json_format.MessageToDict(spec, preserving_proto_field_name=True),
        "versions": dict(run.versions),
        "metrics": [
            {
                "task": metric.task,
                "metric": metric.metric,
                "value": metric.value,
                "stderr": metric.stderr if metric.HasField("stderr") else None,
                "samples": metric.samples,
            }
            for metric in result.metrics
        ],
    }
    row.update(energy_from_pb(result))
    return row


def eval_run_to_pb(row: dict[str, Any]) -> results_pb2.EvalRun:
    """Returns the EvalRun of a store dict."""
    result = eval_pb2.TaskResult(
        task=row["task"],
        samples=row["samples"],
        metrics=[
            eval_pb2.MetricValue(
                task=metric["task"],
                metric=metric["metric"],
                value=metric["value"],
                stderr=metric["stderr"],
                samples=metric["samples"],
            )
            for metric in row["metrics"]
        ],
        energy=energy_to_pb(row),
    )
    return results_pb2.EvalRun(
        request_id=row["request_id"],
        experiment=row["experiment"],
        checkpoint_id=row["checkpoint_id"],
        model=row["model"],
        spec=json_format.ParseDict(row["spec"], eval_pb2.EvalSpec(), ignore_unknown_fields=True),
        result=result,
        versions=row["versions"],
        create_time=_timestamp(row.get("create_time")),
        job_name=row["job_name"],
    )


def prune_run_from_pb(run: results_pb2.PruneRun) -> dict[str, Any]:
    """Returns the store dict of a PruneRun; create_time is ignored (the store sets it)."""
    spec = run.spec
    result = run.result
    row: dict[str, Any] = {
        "request_id": run.request_id,
        "experiment": run.experiment,
        "job_name": run.job_name,
        "model": spec.model,
        "method": method_name(spec.method),
        "target_ratio": spec.ratio,
        "prune_attention_heads": spec.prune_attention_heads,
        "prune_mlp": spec.prune_mlp,
        "prune_hidden": spec.prune_hidden,
        "keep_first_layers": spec.keep_first_layers,
        "keep_last_layers": spec.keep_last_layers,
        "round_to": spec.round_to,
        "calibration_samples": spec.calibration.samples,
        "calibration_sequence_length": spec.calibration.sequence_length,
        "calibration_source": spec.calibration.source,
        "seed": spec.seed,
        "checkpoint_id": result.checkpoint_id,
        "parameters_before": result.parameters_before,
        "parameters_after": result.parameters_after,
        "prunable_parameters_before": result.prunable_parameters_before,
        "prunable_parameters_after": result.prunable_parameters_after,
        "achieved_ratio": result.achieved_ratio,
        "macs_before": result.macs_before,
        "macs_after": result.macs_after,
        "bytes_on_disk": result.bytes_on_disk,
        "prune_wall_seconds": result.wall_seconds,
        "uniform": result.uniform,
        "content_hash": result.content_hash,
        "architecture": result.architecture,
        "versions": dict(result.versions),
        "layers": [
            {
                "layer_index": layer.index,
                "attention_heads": layer.attention_heads,
                "key_value_heads": layer.key_value_heads,
                "intermediate_size": layer.intermediate_size,
                "kept": layer.kept,
            }
            for layer in result.layers
        ],
    }
    row.update(energy_from_pb(result))
    return row


def prune_run_to_pb(row: dict[str, Any]) -> results_pb2.PruneRun:
    """Returns the PruneRun of a store dict."""
    spec = pruning_pb2.PruneSpec(
        model=row["model"],
        method=method_value(row["method"]),
        ratio=row["target_ratio"],
        prune_attention_heads=row["prune_attention_heads"],
        prune_mlp=row["prune_mlp"],
        prune_hidden=row["prune_hidden"],
        keep_first_layers=row["keep_first_layers"],
        keep_last_layers=row["keep_last_layers"],
        round_to=row["round_to"],
        calibration=pruning_pb2.CalibrationSpec(
            samples=row["calibration_samples"],
            sequence_length=row["calibration_sequence_length"],
            source=row["calibration_source"],
        ),
        seed=row["seed"],
    )
    result = pruning_pb2.PruneResult(
        checkpoint_id=row["checkpoint_id"],
        parameters_before=row["parameters_before"],
        parameters_after=row["parameters_after"],
        prunable_parameters_before=row["prunable_parameters_before"],
        prunable_parameters_after=row["prunable_parameters_after"],
        achieved_ratio=row["achieved_ratio"],
        macs_before=row["macs_before"],
        macs_after=row["macs_after"],
        bytes_on_disk=row["bytes_on_disk"],
        layers=[
            layers_pb2.LayerShape(
                index=layer["layer_index"],
                attention_heads=layer["attention_heads"],
                key_value_heads=layer["key_value_heads"],
                intermediate_size=layer["intermediate_size"],
                kept=layer["kept"],
            )
            for layer in row["layers"]
        ],
        wall_seconds=row["prune_wall_seconds"],
        energy=energy_to_pb(row),
        uniform=row["uniform"],
        content_hash=row["content_hash"],
        architecture=row["architecture"],
        versions=row["versions"],
    )
    return results_pb2.PruneRun(
        request_id=row["request_id"],
        experiment=row["experiment"],
        spec=spec,
        result=result,
        create_time=_timestamp(row.get("create_time")),
        job_name=row["job_name"],
    )


# Views -------------------------------------------------------------------------------------

VIEW_NAMES: dict[int, str] = {
    value: results_pb2.View.Name(value).removeprefix("VIEW_").lower()
    for value in results_pb2.View.values()
    if value != results_pb2.VIEW_UNSPECIFIED
}
"""The store's view name of every View value but UNSPECIFIED."""

EXPORT_FORMATS: dict[int, str] = {
    results_pb2.EXPORT_FORMAT_CSV: "csv",
    results_pb2.EXPORT_FORMAT_PARQUET: "parquet",
}
"""The store's format name of every ExportFormat value but UNSPECIFIED."""


def view_filter_from_pb(view_filter: results_pb2.ViewFilter) -> ViewFilter:
    """Returns the store's filter of a ViewFilter."""
    return ViewFilter(view_filter.experiment, view_filter.model, view_filter.task)


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat() + ("Z" if value.tzinfo is None else "")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def table_to_pb(table: ViewTable) -> results_pb2.Table:
    """Returns a view's Table: numbers as doubles, timestamps as RFC 3339 UTC text."""
    message = results_pb2.Table(
        columns=[results_pb2.Column(name=c.name, type=c.type) for c in table.columns]
    )
    for row in table.rows:
        message.rows.add().extend([_cell(value) for value in row])
    return message
