"""The PruningService's boundary: PruneSpec to the pruner's config, job records to PruneJob."""

from __future__ import annotations

from typing import Any

from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.core.jobs import Job
from greenprune.core.limits import (
    CALIBRATION_SOURCE_DEFAULT,
    PRUNE_SPEC,
    PRUNE_SPEC_ENUM_DEFAULTS,
    SEMI_STRUCTURED_RATIO,
    fill_defaults,
    method_name,
    method_value,
    prune_enum_spelling,
)
from greenprune.core.message_records import dataclass_from, fields_of, from_json_dict, to_json_dict
from greenprune.rpc.common_messages import job_status_to_pb
from pruning_service.pruner import PruneConfig

COLLECTION = "pruneJobs"


def normalized_spec(spec: pruning_pb2.PruneSpec) -> pruning_pb2.PruneSpec:
    """A copy of ``spec`` with server defaults in its unset fields (what the job stores)."""
    normal = pruning_pb2.PruneSpec()
    normal.CopyFrom(spec)
    fill_defaults(normal, PRUNE_SPEC)
    normal.calibration.source = normal.calibration.source or CALIBRATION_SOURCE_DEFAULT
    if normal.HasField("recovery"):
        from pruning_service.recovery import normalize

        normalize(normal.recovery)
    two_four = normal.sparsity_pattern == pruning_pb2.SPARSITY_PATTERN_2_4
    if normal.sparsity and two_four and not normal.sparsity_ratio:
        normal.sparsity_ratio = SEMI_STRUCTURED_RATIO  # 2:4 has one share
    if not (normal.prune_attention_heads or normal.prune_mlp or normal.prune_hidden):
        normal.prune_attention_heads = normal.prune_mlp = True  # nothing chosen: the default
    return normal


def config_from_spec(spec: pruning_pb2.PruneSpec) -> PruneConfig:
    """The pruner's config of a (normalized) spec; enum fields become their file spellings."""
    values = fields_of(spec)
    for name in PRUNE_SPEC_ENUM_DEFAULTS:
        values[name] = prune_enum_spelling(name, getattr(spec, name))
    return dataclass_from(PruneConfig, {**values, "method": method_name(spec.method)})


def spec_from_stored(data: dict[str, Any]) -> pruning_pb2.PruneSpec:
    """The PruneSpec a job stored; rows of versions before 0.2 spelled the method by name."""
    if isinstance(data.get("method"), str) and not data["method"].startswith("PRUNING_METHOD_"):
        data = {**data, "method": pruning_pb2.PruningMethod.Name(method_value(data["method"]))}
    return from_json_dict(data, pruning_pb2.PruneSpec)


def config_from_stored(data: dict[str, Any]) -> PruneConfig:
    """The pruner's config of a spec stored in the job table."""
    return config_from_spec(spec_from_stored(data))


def job_to_pb(job: Job) -> pruning_pb2.PruneJob:
    """Converts a job record to a PruneJob."""
    message = pruning_pb2.PruneJob(
        name=f"{COLLECTION}/{job.id}",
        status=job_status_to_pb(job),
        spec=spec_from_stored(job.spec),
    )
    if job.result is not None and job.state == "SUCCEEDED":
        message.result.CopyFrom(from_json_dict(job.result, pruning_pb2.PruneResult))
    return message


def stored_spec(spec: pruning_pb2.PruneSpec) -> dict[str, Any]:
    """The spec as the job table stores it."""
    return to_json_dict(spec)
