"""The columns the store writes into each table, as Arrow schemas.

``store.py`` turns the plain dicts it is given into Arrow tables with these schemas and inserts
them in bulk (``INSERT INTO ... BY NAME``). The dict keys of a run are exactly these column
names; the tables themselves are created by ``migrations.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyarrow as pa
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from greenprune.api.common.v1.energy_pb2 import EnergyReport, Interval
from greenprune.api.eval.v1.eval_pb2 import ItemScore, ProfilePoint, ProfileResult
from greenprune.api.pruning.v1.pruning_pb2 import PruneResult, PruneSpec

_STRING = pa.string()
_DOUBLE = pa.float64()
_INT64 = pa.int64()
_INT32 = pa.int32()
_BOOL = pa.bool_()
_TIMESTAMP = pa.timestamp("us")

INTERVAL_SUFFIXES: dict[str, str] = {
    "median": "",
    "low": "_low",
    "high": "_high",
    "count": "_count",
    "method": "_interval",
}
"""The column suffix of each field of an ``Interval`` (the median is stored under the name)."""

_SCALARS: dict[int, pa.DataType] = {
    FieldDescriptor.TYPE_DOUBLE: _DOUBLE,
    FieldDescriptor.TYPE_FLOAT: _DOUBLE,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_UINT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_UINT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_BOOL: _BOOL,
    FieldDescriptor.TYPE_STRING: _STRING,
    FieldDescriptor.TYPE_ENUM: _INT32,
}


def interval_fields(name: str) -> list[pa.Field]:
    """Returns the five columns of one Interval: median, low, high, count and method.

    Derived from the ``Interval`` message: each of its fields is one column named
    ``name + INTERVAL_SUFFIXES[field]``.

    Args:
        name: The figure, for example ``net_joules``; the median is stored under this name.
    """
    return [
        pa.field(name + INTERVAL_SUFFIXES[field.name], _SCALARS[field.type])
        for field in Interval.DESCRIPTOR.fields
    ]


def message_columns(
    descriptor: Descriptor,
    *,
    rename: Mapping[str, str] | None = None,
    skip: Iterable[str] = (),
) -> list[pa.Field]:
    """Returns the flattened columns of a message, derived from its descriptor.

    Scalars become one column each, repeated scalars a list column, ``Interval`` fields five
    columns (``interval_fields``). Other message fields must be skipped.

    Args:
        descriptor: The message's descriptor, e.g. ``ProfilePoint.DESCRIPTOR``.
        rename: Column names of fields whose column is not named as the field.
        skip: Fields stored elsewhere (or not at all).

    Raises:
        TypeError: A message field other than Interval was not skipped.
    """
    rename = rename or {}
    skipped = set(skip)
    columns: list[pa.Field] = []
    for field in descriptor.fields:
        if field.name in skipped:
            continue
        name = rename.get(field.name, field.name)
        if field.message_type is not None:
            if field.message_type.full_name != Interval.DESCRIPTOR.full_name:
                raise TypeError(f"{descriptor.name}.{field.name}: skip or store it elsewhere")
            columns.extend(interval_fields(name))
        elif is_repeated(field):
            columns.append(pa.field(name, pa.list_(_SCALARS[field.type])))
        else:
            columns.append(pa.field(name, _SCALARS[field.type]))
    return columns


def is_repeated(field: FieldDescriptor) -> bool:
    """Whether a field is repeated (protobuf 5 and 6 spell it differently)."""
    repeated = getattr(field, "is_repeated", None)
    if isinstance(repeated, bool):
        return repeated
    return field.label == FieldDescriptor.LABEL_REPEATED


def scalar_columns(descriptor: Descriptor, prefix: str) -> list[pa.Field]:
    """One column ``{prefix}{path}`` per singular scalar of a message and its sub-messages.

    Nested messages flatten with ``_`` (``spec_calibration_samples``); repeated fields and maps
    are left to the message's JSON column.
    """
    columns: list[pa.Field] = []
    for field in descriptor.fields:
        if is_repeated(field):
            continue
        if field.message_type is not None:
            columns.extend(scalar_columns(field.message_type, f"{prefix}{field.name}_"))
        else:
            columns.append(pa.field(f"{prefix}{field.name}", _SCALARS[field.type]))
    return columns


PRUNE_MESSAGE_FIELDS: list[pa.Field] = [
    pa.field("spec_json", _STRING),
    pa.field("result_json", _STRING),
    *scalar_columns(PruneSpec.DESCRIPTOR, "spec_"),
    *scalar_columns(PruneResult.DESCRIPTOR, "result_"),
]
"""A prune run's spec and result: the messages as JSON (what Get/List return, whole) and every
scalar as a column for SQL, both derived from the descriptors, so a field added to PruneSpec
or PruneResult is stored and served with no edit here."""


ENERGY_RENAMES: dict[str, str] = {"samples": "energy_samples"}
"""EnergyReport fields whose column has another name (``samples`` is taken by the run)."""

INTERVAL_NAMES: tuple[str, ...] = tuple(
    field.name
    for field in EnergyReport.DESCRIPTOR.fields
    if field.message_type is not None
    and field.message_type.full_name == Interval.DESCRIPTOR.full_name
)
"""The Interval figures of an EnergyReport, each stored as five columns."""

ENERGY_FIELDS: list[pa.Field] = [
    pa.field("has_energy", _BOOL),
    *message_columns(EnergyReport.DESCRIPTOR, rename=ENERGY_RENAMES, skip=("components",)),
]
"""The headline figures of an EnergyReport, on eval_runs and prune_runs alike, derived from
the message (its components go to ``energy_components``)."""

ENERGY_KEYS: tuple[str, ...] = tuple(field.name for field in ENERGY_FIELDS)

PRUNE_RUNS = pa.schema(
    [
        pa.field("request_id", _STRING),
        pa.field("experiment", _STRING),
        pa.field("job_name", _STRING),
        pa.field("create_time", _TIMESTAMP),
        pa.field("model", _STRING),
        pa.field("method", _STRING),
        pa.field("target_ratio", _DOUBLE),
        pa.field("prune_attention_heads", _BOOL),
        pa.field("prune_mlp", _BOOL),
        pa.field("prune_hidden", _BOOL),
        pa.field("keep_first_layers", _INT32),
        pa.field("keep_last_layers", _INT32),
        pa.field("round_to", _INT32),
        pa.field("calibration_samples", _INT32),
        pa.field("calibration_sequence_length", _INT32),
        pa.field("calibration_source", _STRING),
        pa.field("seed", _INT64),
        pa.field("checkpoint_id", _STRING),
        pa.field("parameters_before", _INT64),
        pa.field("parameters_after", _INT64),
        pa.field("prunable_parameters_before", _INT64),
        pa.field("prunable_parameters_after", _INT64),
        pa.field("achieved_ratio", _DOUBLE),
        pa.field("macs_before", _INT64),
        pa.field("macs_after", _INT64),
        pa.field("bytes_on_disk", _INT64),
        pa.field("prune_wall_seconds", _DOUBLE),
        pa.field("uniform", _BOOL),
        pa.field("content_hash", _STRING),
        pa.field("architecture", _STRING),
        pa.field("versions_json", _STRING),
        *ENERGY_FIELDS,
        pa.field("recovered", _BOOL),
        pa.field("recovery_steps", _INT32),
        pa.field("recovery_net_joules", _DOUBLE),
        pa.field("recovery_final_loss", _DOUBLE),
        pa.field("recovery_parent_content_hash", _STRING),
        pa.field("recovery_json", _STRING),
        *PRUNE_MESSAGE_FIELDS,
    ]
)
"""``recovery_json`` holds the RecoverySpec and RecoveryResult as JSON (``spec`` and
``result``); the other ``recovery_`` columns are its figures for SQL."""

EVAL_RUNS = pa.schema(
    [
        pa.field("request_id", _STRING),
        pa.field("experiment", _STRING),
        pa.field("job_name", _STRING),
        pa.field("create_time", _TIMESTAMP),
        pa.field("checkpoint_id", _STRING),
        pa.field("model", _STRING),
        pa.field("task", _STRING),
        pa.field("samples", _INT64),
        pa.field("num_fewshot", _INT32),
        pa.field("sample_limit", _INT32),
        pa.field("spec_json", _STRING),
        pa.field("versions_json", _STRING),
        *ENERGY_FIELDS,
    ]
)

METRICS = pa.schema(
    [
        pa.field("run_id", _STRING),
        pa.field("position", _INT32),
        pa.field("task", _STRING),
        pa.field("metric", _STRING),
        pa.field("value", _DOUBLE),
        pa.field("stderr", _DOUBLE),
        pa.field("samples", _INT64),
    ]
)

ENERGY_COMPONENTS = pa.schema(
    [
        pa.field("run_kind", _STRING),
        pa.field("run_id", _STRING),
        pa.field("position", _INT32),
        pa.field("component", _STRING),
        pa.field("method", _STRING),
        pa.field("estimated", _BOOL),
        *interval_fields("gross_joules"),
        *interval_fields("net_joules"),
        pa.field("idle_watts", _DOUBLE),
    ]
)

LAYER_SHAPES = pa.schema(
    [
        pa.field("prune_run_id", _STRING),
        pa.field("checkpoint_id", _STRING),
        pa.field("layer_index", _INT32),
        pa.field("attention_heads", _INT32),
        pa.field("key_value_heads", _INT32),
        pa.field("intermediate_size", _INT32),
        pa.field("kept", _BOOL),
    ]
)

COMPONENT_KEYS: tuple[str, ...] = tuple(
    name for name in ENERGY_COMPONENTS.names if name not in ("run_kind", "run_id", "position")
)
"""The keys of one component dict in a run."""

METRIC_KEYS: tuple[str, ...] = ("task", "metric", "value", "stderr", "samples")
"""The keys of one metric dict in an eval run."""

LAYER_KEYS: tuple[str, ...] = (
    "layer_index",
    "attention_heads",
    "key_value_heads",
    "intermediate_size",
    "kept",
)
"""The keys of one layer dict in a prune run."""

ITEM_SCORES = pa.schema(
    [
        pa.field("run_id", _STRING),
        pa.field("task", _STRING),
        *message_columns(ItemScore.DESCRIPTOR),
    ]
)
"""One document's score of one eval run (``TaskResult.items``), for paired accuracy."""

ITEM_KEYS: tuple[str, ...] = tuple(field.name for field in ItemScore.DESCRIPTOR.fields)
"""The keys of one item dict in an eval run."""

PROFILE_RUNS = pa.schema(
    [
        pa.field("request_id", _STRING),
        pa.field("experiment", _STRING),
        pa.field("model", _STRING),
        pa.field("job_name", _STRING),
        pa.field("create_time", _TIMESTAMP),
        pa.field("spec_json", _STRING),
        *message_columns(ProfileResult.DESCRIPTOR, skip=("points",)),
    ]
)
"""One profile run: who asked, the spec, and the ProfileResult's figures but its points."""

PROFILE_RESULT_KEYS: tuple[str, ...] = tuple(
    field.name for field in ProfileResult.DESCRIPTOR.fields if field.name != "points"
)

PROFILE_POINTS = pa.schema(
    [
        pa.field("request_id", _STRING),
        pa.field("experiment", _STRING),
        pa.field("model", _STRING),
        *message_columns(ProfilePoint.DESCRIPTOR),
    ]
)
"""One measured window of a profile run (a ``ProfilePoint``) with its run's id and model."""

PROFILE_POINT_KEYS: tuple[str, ...] = tuple(field.name for field in ProfilePoint.DESCRIPTOR.fields)

DERIVED_TABLES: dict[str, pa.Schema] = {
    "prune_runs": PRUNE_RUNS,
    "eval_runs": EVAL_RUNS,
    "item_scores": ITEM_SCORES,
    "profile_runs": PROFILE_RUNS,
    "profile_points": PROFILE_POINTS,
}
"""Tables whose columns follow the messages: a column these schemas name and the file lacks
(a field added to the proto) is added on open by ``migrations.add_missing_columns``."""


def sql_type(arrow_type: pa.DataType) -> str:
    """Returns the DuckDB column type of an Arrow type used in these schemas."""
    if pa.types.is_list(arrow_type):
        return sql_type(arrow_type.value_type) + "[]"
    for check, name in (
        (pa.types.is_boolean, "BOOLEAN"),
        (pa.types.is_int32, "INTEGER"),
        (pa.types.is_int64, "BIGINT"),
        (pa.types.is_floating, "DOUBLE"),
        (pa.types.is_timestamp, "TIMESTAMP"),
        (pa.types.is_string, "VARCHAR"),
    ):
        if check(arrow_type):
            return name
    raise TypeError(f"no DuckDB type for {arrow_type}")


def column_definitions(fields: Iterable[pa.Field]) -> str:
    """Returns ``name TYPE`` definitions, comma separated, for a CREATE TABLE statement."""
    return ",\n    ".join(f"{field.name} {sql_type(field.type)}" for field in fields)
