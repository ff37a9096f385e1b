"""``from_pb``/``to_pb`` for the PruningService: protobuf on one side, plain data on the other."""

from __future__ import annotations

import dataclasses
from typing import Any

from greenprune.api.common.v1 import layers_pb2
from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.errors import InvalidArgumentError
from greenprune.rpc.convert import (
    energy_report_to_pb,
    job_status_to_pb,
    method_name,
    method_value,
)
from greenprune.rpc.jobs import Job
from pruning_service.pruner import METHODS, CalibrationConfig, PruneConfig

COLLECTION = "pruneJobs"


def method_from_pb(value: int) -> str:
    """Returns the method name for an enum value, or raises INVALID_ARGUMENT."""
    name = method_name(value)
    if name not in METHODS:
        allowed = ", ".join(pruning_pb2.PruningMethod.Name(method_value(m)) for m in METHODS)
        raise InvalidArgumentError("spec.method", f"must be one of {allowed}")
    return name


def spec_from_pb(spec: pruning_pb2.PruneSpec) -> PruneConfig:
    """Converts a PruneSpec to the pruner's config; server defaults fill unset fields."""
    defaults = CalibrationConfig()
    calibration = CalibrationConfig(
        samples=spec.calibration.samples or defaults.samples,
        sequence_length=spec.calibration.sequence_length or defaults.sequence_length,
        source=spec.calibration.source or defaults.source,
    )
    prune_heads, prune_mlp = spec.prune_attention_heads, spec.prune_mlp
    if not (prune_heads or prune_mlp or spec.prune_hidden):
        prune_heads = prune_mlp = True  # nothing chosen means the default: heads and MLP
    return PruneConfig(
        model=spec.model,
        method=method_from_pb(spec.method),
        ratio=spec.ratio,
        prune_attention_heads=prune_heads,
        prune_mlp=prune_mlp,
        prune_hidden=spec.prune_hidden,
        keep_first_layers=spec.keep_first_layers,
        keep_last_layers=spec.keep_last_layers,
        round_to=max(spec.round_to, 1),
        calibration=calibration,
        seed=spec.seed,
    )


def config_to_dict(config: PruneConfig) -> dict[str, Any]:
    """Returns the config as JSON-serialisable data (what the job table stores)."""
    return dataclasses.asdict(config)


def config_from_dict(data: dict[str, Any]) -> PruneConfig:
    """Rebuilds a config stored with :func:`config_to_dict`."""
    fields = dict(data)
    fields["calibration"] = CalibrationConfig(**fields["calibration"])
    return PruneConfig(**fields)


def spec_to_pb(data: dict[str, Any]) -> pruning_pb2.PruneSpec:
    """Converts a stored config back to a PruneSpec."""
    return pruning_pb2.PruneSpec(
        model=data["model"],
        method=method_value(data["method"]),
        ratio=data["ratio"],
        prune_attention_heads=data["prune_attention_heads"],
        prune_mlp=data["prune_mlp"],
        prune_hidden=data["prune_hidden"],
        keep_first_layers=data["keep_first_layers"],
        keep_last_layers=data["keep_last_layers"],
        round_to=data["round_to"],
        calibration=pruning_pb2.CalibrationSpec(**data["calibration"]),
        seed=data["seed"],
    )


def result_to_pb(result: dict[str, Any]) -> pruning_pb2.PruneResult:
    """Converts the worker's result (see ``pruning_service.worker``) to a PruneResult."""
    message = pruning_pb2.PruneResult(
        checkpoint_id=result["checkpoint_id"],
        parameters_before=result["parameters_before"],
        parameters_after=result["parameters_after"],
        prunable_parameters_before=result["prunable_parameters_before"],
        prunable_parameters_after=result["prunable_parameters_after"],
        achieved_ratio=result["achieved_ratio"],
        macs_before=result["macs_before"],
        macs_after=result["macs_after"],
        bytes_on_disk=result["bytes_on_disk"],
        layers=[layers_pb2.LayerShape(**layer) for layer in result["layers"]],
        wall_seconds=result["wall_seconds"],
        uniform=result["uniform"],
        content_hash=result["content_hash"],
        architecture=result["architecture"],
        versions=result["versions"],
    )
    if result.get("energy"):
        message.energy.CopyFrom(energy_report_to_pb(result["energy"]))
    return message


def job_to_pb(job: Job) -> pruning_pb2.PruneJob:
    """Converts a job record to a PruneJob."""
    message = pruning_pb2.PruneJob(
        name=f"{COLLECTION}/{job.id}",
        status=job_status_to_pb(job),
        spec=spec_to_pb(job.spec),
    )
    if job.result is not None and job.state == "SUCCEEDED":
        message.result.CopyFrom(result_to_pb(job.result))
    return message
