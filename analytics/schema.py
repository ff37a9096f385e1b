"""The columns the store writes into each table, as Arrow schemas.

``store.py`` turns the plain dicts it is given into Arrow tables with these schemas and inserts
them in bulk (``INSERT INTO ... BY NAME``). The dict keys of a run are exactly these column
names; the tables themselves are created by ``migrations.py``.
"""

from __future__ import annotations

import pyarrow as pa

_STRING = pa.string()
_DOUBLE = pa.float64()
_INT64 = pa.int64()
_INT32 = pa.int32()
_BOOL = pa.bool_()
_TIMESTAMP = pa.timestamp("us")

INTERVAL_NAMES = ("net_joules", "gross_joules", "wall_seconds", "tokens_per_second")
"""The Interval figures of an EnergyReport, each stored as five columns."""


def interval_fields(name: str) -> list[pa.Field]:
    """Returns the five columns of one Interval: median, low, high, count and method.

    Args:
        name: The figure, for example ``net_joules``; the median is stored under this name.
    """
    return [
        pa.field(name, _DOUBLE),
        pa.field(f"{name}_low", _DOUBLE),
        pa.field(f"{name}_high", _DOUBLE),
        pa.field(f"{name}_count", _INT32),
        pa.field(f"{name}_interval", _STRING),
    ]


ENERGY_FIELDS: list[pa.Field] = [
    pa.field("has_energy", _BOOL),
    pa.field("headline_component", _STRING),
    *[field for name in INTERVAL_NAMES for field in interval_fields(name)],
    pa.field("tokens", _INT64),
    pa.field("energy_samples", _INT64),
    pa.field("joules_per_token", _DOUBLE),
    pa.field("joules_per_sample", _DOUBLE),
    pa.field("peak_rss_bytes", _INT64),
    pa.field("peak_cuda_bytes", _INT64),
    pa.field("device_name", _STRING),
    pa.field("hardware", _STRING),
    pa.field("gpu_shared", _BOOL),
    pa.field("estimated", _BOOL),
    pa.field("repeats", _INT32),
    pa.field("repeat_net_joules", pa.list_(_DOUBLE)),
]
"""The headline figures of an EnergyReport, on eval_runs and prune_runs alike."""

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
    ]
)

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
