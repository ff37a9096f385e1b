"""Conversions between ResultsService protobuf messages and the plain dicts of ``store.py``."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, TypeVar

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from greenprune.api.common.v1 import energy_pb2, layers_pb2
from greenprune.api.eval.v1 import eval_pb2
from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.api.results.v1 import results_pb2
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import MAX_TEXT_CHARS, method_name, method_value
from greenprune.core.message_records import from_json_dict, to_json_dict
from greenprune.rpc.common_messages import parse_page_token
from results_service import schema
from results_service.store import ViewFilter, ViewTable

M = TypeVar("M", bound=Message)


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


# Energy ------------------------------------------------------------------------------------


def _interval_from_pb(name: str, parent: Any) -> dict[str, Any]:
    columns = [name + suffix for suffix in schema.INTERVAL_SUFFIXES.values()]
    if not parent.HasField(name):
        return dict.fromkeys(columns)
    interval = getattr(parent, name)
    return {
        name + suffix: getattr(interval, field)
        for field, suffix in schema.INTERVAL_SUFFIXES.items()
    }


def _interval_to_pb(name: str, row: dict[str, Any]) -> energy_pb2.Interval | None:
    if row.get(name) is None:
        return None
    interval = energy_pb2.Interval()
    for field, suffix in schema.INTERVAL_SUFFIXES.items():
        value = row.get(name + suffix)
        if value is not None:
            setattr(interval, field, value)
    return interval


def _is_interval(field: Any) -> bool:
    return (
        field.message_type is not None
        and field.message_type.full_name == energy_pb2.Interval.DESCRIPTOR.full_name
    )


def message_to_row(
    message: Any, *, rename: dict[str, str] | None = None, skip: Iterable[str] = ()
) -> dict[str, Any]:
    """Returns the flattened columns of a message, as ``schema.message_columns`` names them."""
    rename = rename or {}
    skipped = set(skip)
    row: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        if field.name in skipped:
            continue
        name = rename.get(field.name, field.name)
        if _is_interval(field):
            row.update(
                {
                    name + suffix: value
                    for suffix, value in zip(
                        schema.INTERVAL_SUFFIXES.values(),
                        _interval_from_pb(field.name, message).values(),
                        strict=True,
                    )
                }
            )
        elif field.message_type is not None:
            raise TypeError(f"{message.DESCRIPTOR.name}.{field.name} is not flattened")
        elif schema.is_repeated(field):
            row[name] = list(getattr(message, field.name))
        else:
            row[name] = getattr(message, field.name)
    return row


def row_to_message(
    row: dict[str, Any],
    message: Any,
    *,
    rename: dict[str, str] | None = None,
    skip: Iterable[str] = (),
) -> Any:
    """Fills ``message`` from the flattened columns of ``row`` (None leaves a field unset)."""
    rename = rename or {}
    skipped = set(skip)
    for field in message.DESCRIPTOR.fields:
        if field.name in skipped:
            continue
        name = rename.get(field.name, field.name)
        if _is_interval(field):
            interval = _interval_to_pb(name, row)
            if interval is not None:
                getattr(message, field.name).CopyFrom(interval)
        elif schema.is_repeated(field):
            getattr(message, field.name).extend(row.get(name) or [])
        elif row.get(name) is not None:
            setattr(message, field.name, row[name])
    return message


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

    The columns follow ``EnergyReport``'s fields (``schema.ENERGY_FIELDS``).

    Args:
        parent: A TaskResult or PruneResult.
    """
    if not parent.HasField("energy"):
        columns: dict[str, Any] = dict.fromkeys(schema.ENERGY_KEYS)
        columns["has_energy"] = False
        columns["components"] = []
        return columns
    report = parent.energy
    columns = {"has_energy": True}
    columns.update(message_to_row(report, rename=schema.ENERGY_RENAMES, skip=("components",)))
    columns["components"] = components_from_pb(report.components)
    return columns


def energy_to_pb(row: dict[str, Any]) -> energy_pb2.EnergyReport | None:
    """Returns the EnergyReport stored in a run dict, or None when it had none."""
    if not row.get("has_energy"):
        return None
    report = row_to_message(
        row, energy_pb2.EnergyReport(), rename=schema.ENERGY_RENAMES, skip=("components",)
    )
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
        "items": [message_to_row(item) for item in result.items],
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
        items=[row_to_message(item, eval_pb2.ItemScore()) for item in row.get("items") or []],
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
    row.update(_recovery_columns(spec, result))
    row.update(prune_message_columns(spec, result))
    return row


def _scalars(message: Any, prefix: str) -> dict[str, Any]:
    """The values of ``schema.scalar_columns`` for one message."""
    values: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        if schema.is_repeated(field):
            continue
        value = getattr(message, field.name)
        if field.message_type is not None:
            values.update(_scalars(value, f"{prefix}{field.name}_"))
        else:
            values[f"{prefix}{field.name}"] = value
    return values


def prune_message_columns(
    spec: pruning_pb2.PruneSpec, result: pruning_pb2.PruneResult
) -> dict[str, Any]:
    """The columns of ``schema.PRUNE_MESSAGE_FIELDS``: both messages as JSON and as scalars."""
    return {
        "spec_json": json.dumps(to_json_dict(spec), sort_keys=True),
        "result_json": json.dumps(to_json_dict(result), sort_keys=True),
        **_scalars(spec, "spec_"),
        **_scalars(result, "result_"),
    }


def _recovery_columns(
    spec: pruning_pb2.PruneSpec, result: pruning_pb2.PruneResult
) -> dict[str, Any]:
    """The ``recovery_`` columns of a prune run (NULL when it had no recovery)."""
    if not spec.HasField("recovery"):
        return {
            "recovered": False,
            "recovery_steps": None,
            "recovery_net_joules": None,
            "recovery_final_loss": None,
            "recovery_parent_content_hash": None,
            "recovery_json": None,
        }
    recovery = result.recovery
    has_energy = recovery.HasField("energy")
    return {
        "recovered": True,
        "recovery_steps": recovery.steps,
        "recovery_net_joules": recovery.energy.net_joules.median if has_energy else None,
        "recovery_final_loss": recovery.final_loss,
        "recovery_parent_content_hash": recovery.parent_content_hash,
        "recovery_json": json.dumps(
            {"spec": to_json_dict(spec.recovery), "result": to_json_dict(recovery)},
            sort_keys=True,
        ),
    }


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
    if row.get("recovery_json"):
        recovery = json.loads(row["recovery_json"])
        spec.recovery.CopyFrom(from_json_dict(recovery["spec"], pruning_pb2.RecoverySpec))
        result.recovery.CopyFrom(from_json_dict(recovery["result"], pruning_pb2.RecoveryResult))
    if row.get("spec_json") and row.get("result_json"):
        # Rows written since the messages are stored whole: every field, current or added later.
        spec = from_json_dict(json.loads(row["spec_json"]), pruning_pb2.PruneSpec)
        result = from_json_dict(json.loads(row["result_json"]), pruning_pb2.PruneResult)
    return results_pb2.PruneRun(
        request_id=row["request_id"],
        experiment=row["experiment"],
        spec=spec,
        result=result,
        create_time=_timestamp(row.get("create_time")),
        job_name=row["job_name"],
    )


def profile_run_from_pb(run: results_pb2.ProfileRun) -> dict[str, Any]:
    """Returns the store dict of a ProfileRun; create_time is ignored (the store sets it)."""
    row: dict[str, Any] = {
        "request_id": run.request_id,
        "experiment": run.experiment,
        "model": run.model,
        "job_name": run.job_name,
        "spec": json_format.MessageToDict(run.spec, preserving_proto_field_name=True),
        "points": [message_to_row(point) for point in run.result.points],
    }
    row.update(message_to_row(run.result, skip=("points",)))
    return row


def profile_run_to_pb(row: dict[str, Any]) -> results_pb2.ProfileRun:
    """Returns the ProfileRun of a store dict."""
    result = row_to_message(row, eval_pb2.ProfileResult(), skip=("points",))
    for point in row.get("points") or []:
        row_to_message(point, result.points.add())
    return results_pb2.ProfileRun(
        request_id=row["request_id"],
        experiment=row["experiment"] or "",
        model=row["model"] or "",
        spec=json_format.ParseDict(
            row.get("spec") or {}, eval_pb2.EvalSpec(), ignore_unknown_fields=True
        ),
        result=result,
        create_time=_timestamp(row.get("create_time")),
        job_name=row["job_name"] or "",
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


def _row_to_pb(row: list[Any]) -> struct_pb2.ListValue:
    message = struct_pb2.ListValue()
    message.extend([_cell(value) for value in row])
    return message


# Pages -------------------------------------------------------------------------------------

TRUNCATION_MARKER = "…[truncated {removed} bytes]"
"""Ends a string value cut because its message was too large for one response."""

KEPT_STRING_BYTES = MAX_TEXT_CHARS
"""What a cut string keeps: as much as the service accepts in a free-text field today."""

_TOKEN_ROOM = 64
"""Bytes kept free in a response for its next_page_token and the other small fields."""


def cut_text(value: str, keep: int = KEPT_STRING_BYTES) -> str:
    """Returns ``value`` cut to its first ``keep`` UTF-8 bytes and :data:`TRUNCATION_MARKER`.

    A value no longer than ``keep`` bytes is returned as it is.
    """
    if len(value) * 4 <= keep:
        return value
    encoded = value.encode("utf-8")
    if len(encoded) <= keep:
        return value
    kept = encoded[:keep].decode("utf-8", "ignore")
    return kept + TRUNCATION_MARKER.format(removed=len(encoded) - len(kept.encode("utf-8")))


def cap_strings(message: Message, keep: int = KEPT_STRING_BYTES) -> None:
    """Cuts, in place, every string anywhere in ``message`` (map keys too) with ``cut_text``."""
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _cap_map(value, field.message_type.fields_by_name["value"], keep)
        elif field.message_type is not None:
            for item in value if field.is_repeated else [value]:
                cap_strings(item, keep)
        elif field.type == field.TYPE_STRING:
            if field.is_repeated:
                value[:] = [cut_text(item, keep) for item in value]
            elif cut_text(value, keep) is not value:
                setattr(message, field.name, cut_text(value, keep))


def _cap_map(entries: Any, value_field: Any, keep: int) -> None:
    for key in list(entries):
        item = entries[key]
        if value_field.message_type is not None:
            cap_strings(item, keep)
        new_key = cut_text(key, keep) if isinstance(key, str) else key
        new_item = cut_text(item, keep) if isinstance(item, str) else item
        if new_key is key and new_item is item:
            continue
        if value_field.message_type is None:
            del entries[key]
            entries[new_key] = new_item
        else:
            kept = type(item)()
            kept.CopyFrom(item)
            del entries[key]
            entries[new_key].CopyFrom(kept)


def _entry_bytes(size: int) -> int:
    """The bytes a message of ``size`` bytes takes as an element of a repeated field."""
    return 2 + size.bit_length() // 7 + size


def take_page(messages: Iterable[M], budget: int) -> list[M]:
    """Takes ``messages`` while they fit ``budget`` serialized bytes together.

    The first is always taken: when it alone is larger than ``budget``, its strings are cut
    (``cap_strings``), so that one oversized record is still served rather than failing the
    call. At most one message past the page is drawn from ``messages``.
    """
    page: list[M] = []
    total = 0
    for message in messages:
        size = _entry_bytes(message.ByteSize())
        if page and total + size > budget:
            break
        if not page and size > budget:
            cap_strings(message)
            size = _entry_bytes(message.ByteSize())
        page.append(message)
        total += size
    return page


def runs_page(
    runs: list[dict[str, Any]],
    to_pb: Any,
    offset: int,
    next_offset: int | None,
    budget: int,
) -> tuple[list[Any], str]:
    """Returns the run messages of a store page that fit ``budget``, and the next page's token.

    Args:
        runs: A page of the store (``list_eval_runs``, ``list_prune_runs``).
        to_pb: Converts one run (``eval_run_to_pb``, ``prune_run_to_pb``).
        offset: The page's offset.
        next_offset: The store's offset of the next page, None when the page was the last.
        budget: The response's size in bytes.
    """
    page = take_page((to_pb(run) for run in runs), budget - _TOKEN_ROOM)
    if len(page) < len(runs):
        next_offset = offset + len(page)
    return page, "" if next_offset is None else str(next_offset)


def table_page(
    table: ViewTable, offset: int, limit: int | None, budget: int
) -> tuple[results_pb2.Table, str]:
    """Returns the rows of a view from ``offset`` that fit ``budget``, and the next page's token.

    Numbers travel as doubles, timestamps as RFC 3339 UTC text.

    Args:
        table: The whole view.
        offset: The rows to skip.
        limit: The most rows to return; None for as many as fit.
        budget: The response's size in bytes.
    """
    message = results_pb2.Table(
        columns=[results_pb2.Column(name=c.name, type=c.type) for c in table.columns]
    )
    end = len(table.rows) if limit is None else min(len(table.rows), offset + limit)
    rows = (_row_to_pb(row) for row in table.rows[offset:end])
    message.rows.extend(take_page(rows, budget - message.ByteSize() - _TOKEN_ROOM))
    after = offset + len(message.rows)
    return message, str(after) if after < len(table.rows) else ""


_EXPORT_TOKEN = re.compile(r"([0-9]{1,16})-([0-9a-f]{8})")


def parse_export_token(page_token: str) -> tuple[int, str]:
    """Returns the byte offset and the file's fingerprint of an export token ((0, "") if empty).

    Raises:
        InvalidArgumentError: The token is not one ``export_token`` issued.
    """
    if not page_token:
        return 0, ""
    match = _EXPORT_TOKEN.fullmatch(page_token)
    if match is None:
        raise InvalidArgumentError(
            "page_token", f"{page_token[:20]!r} is not a token this server issued"
        )
    return parse_page_token(match[1]), match[2]


def export_token(next_offset: int | None, fingerprint: str) -> str:
    """Returns the token of an export's next chunk ("" after the last one)."""
    return "" if next_offset is None else f"{next_offset}-{fingerprint}"


EXPORT_CHUNK_ROOM = 1024
"""Bytes of a response kept free beside an export chunk (media type, file name, token)."""
