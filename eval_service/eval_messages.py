"""The EvalService's boundary: EvalSpec to the evaluator's configs, job records to EvalJob."""

from __future__ import annotations

from typing import Any

from eval_service.evaluator import EvalConfig
from eval_service.profile import ProfileConfig
from greenprune.api.eval.v1 import eval_pb2
from greenprune.core.jobs import Job
from greenprune.core.limits import (
    DEVICE_DEFAULT,
    EVAL_SPEC,
    PROFILE_AUTO_SPEC,
    PROFILE_BATCH_SIZES_DEFAULT,
    PROFILE_SPEC,
    fill_defaults,
)
from greenprune.core.message_records import dataclass_from, fields_of, from_json_dict
from greenprune.rpc.common_messages import job_status_to_pb

COLLECTION = "evalJobs"


def eval_run_id(request_id: str, task: str) -> str:
    """The id of the EvalRun a job records for one task: ``{request_id}/{task}``."""
    return f"{request_id}/{task}"


def recorded_run_ids(request_id: str, spec: eval_pb2.EvalSpec) -> list[str]:
    """The ids of the runs a job of ``spec`` records (a profile job records one, its own)."""
    if not request_id or spec.HasField("profile"):
        return [request_id] if request_id else []
    return [eval_run_id(request_id, task) for task in spec.tasks]


def normalized_spec(
    spec: eval_pb2.EvalSpec, default_batch_size: int, default_repeats: int
) -> eval_pb2.EvalSpec:
    """A copy of ``spec`` with the server's defaults in its unset fields (what the job stores)."""
    normal = eval_pb2.EvalSpec()
    normal.CopyFrom(spec)
    normal.batch_size = normal.batch_size or default_batch_size
    normal.repeats = normal.repeats or default_repeats
    normal.device = normal.device or DEVICE_DEFAULT
    fill_defaults(normal, EVAL_SPEC)
    if normal.HasField("profile"):
        fill_defaults(normal, PROFILE_SPEC)
        if normal.profile.precision > 0:
            fill_defaults(normal, PROFILE_AUTO_SPEC)
        if not normal.profile.batch_sizes:
            normal.profile.batch_sizes.extend(PROFILE_BATCH_SIZES_DEFAULT)
    return normal


def config_from_spec(spec: eval_pb2.EvalSpec) -> EvalConfig:
    """The evaluator's config of a (normalized) spec."""
    return dataclass_from(EvalConfig, fields_of(spec))


def profile_config(spec: eval_pb2.EvalSpec, device: str) -> ProfileConfig:
    """The profiler's config of a (normalized) profile spec, on a resolved device."""
    return dataclass_from(
        ProfileConfig,
        {
            **fields_of(spec.profile),
            "device": device,
            "idle_seconds": spec.idle_seconds,
            "seed": spec.seed,
        },
    )


def spec_from_stored(data: dict[str, Any]) -> eval_pb2.EvalSpec:
    """The EvalSpec a job stored; rows of versions before 0.2 nested the settings in config."""
    if isinstance(data.get("config"), dict):
        settings = {k: v for k, v in data["config"].items() if v is not None}
        subject = {k: data[k] for k in ("checkpoint_id", "model") if data.get(k)}
        data = {**settings, **subject}
    return from_json_dict(data, eval_pb2.EvalSpec)


def job_to_pb(job: Job) -> eval_pb2.EvalJob:
    """Converts a job record to an EvalJob."""
    message = eval_pb2.EvalJob(
        name=f"{COLLECTION}/{job.id}", status=job_status_to_pb(job), spec=spec_from_stored(job.spec)
    )
    if job.result is not None and job.state == "SUCCEEDED":
        message.result.CopyFrom(from_json_dict(job.result, eval_pb2.EvalResult))
    return message
