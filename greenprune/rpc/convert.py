"""Conversions at the gRPC boundary that every service shares."""

from __future__ import annotations

import dataclasses
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from greenprune.api.common.v1 import energy_pb2, jobs_pb2
from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.errors import InvalidArgumentError
from greenprune.rpc.errors import rpc_status
from greenprune.rpc.jobs import Job

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_METHOD_PREFIX = "PRUNING_METHOD_"


def method_name(value: int) -> str:
    """Returns the experiment-file spelling of a PruningMethod, e.g. ``magnitude-l1``."""
    try:
        name = pruning_pb2.PruningMethod.Name(value)
    except ValueError:
        return f"unknown-{value}"
    return name.removeprefix(_METHOD_PREFIX).lower().replace("_", "-")


def method_value(name: str) -> int:
    """Returns the PruningMethod of a name written by ``method_name`` (UNSPECIFIED if unknown)."""
    try:
        return pruning_pb2.PruningMethod.Value(_METHOD_PREFIX + name.upper().replace("-", "_"))
    except ValueError:
        return pruning_pb2.PRUNING_METHOD_UNSPECIFIED


def timestamp(seconds: float | None) -> Timestamp | None:
    """Returns a protobuf timestamp for epoch ``seconds``, or None."""
    if seconds is None:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def job_status_to_pb(job: Job) -> jobs_pb2.JobStatus:
    """Returns the shared part of a job message."""
    status = jobs_pb2.JobStatus(
        request_id=job.request_id,
        state=jobs_pb2.JobState.Value(f"JOB_STATE_{job.state}"),
        stage=job.stage,
        progress=job.progress,
        experiment=job.experiment,
        create_time=timestamp(job.create_time),
        start_time=timestamp(job.start_time),
        end_time=timestamp(job.end_time),
    )
    if job.error_code:
        status.error.CopyFrom(rpc_status(job.error_code, job.error_message or ""))
    return status


def job_id_from_name(name: str, collection: str) -> str:
    """Returns the id in ``{collection}/{id}``, or raises INVALID_ARGUMENT naming ``name``."""
    prefix = f"{collection}/"
    if not name.startswith(prefix) or len(name) == len(prefix) or "/" in name[len(prefix) :]:
        raise InvalidArgumentError("name", f"must look like '{collection}/ID', got {name!r}")
    return name[len(prefix) :]


def page_bounds(page_size: int, page_token: str) -> tuple[int, int]:
    """Returns (limit, offset) for a list request, validating both fields."""
    if page_size < 0:
        raise InvalidArgumentError("page_size", "must not be negative")
    limit = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if not page_token:
        return limit, 0
    if not page_token.isdigit():
        raise InvalidArgumentError("page_token", "is not a token this server issued")
    return limit, int(page_token)


def next_page_token(offset: int, limit: int, returned: int) -> str:
    """Returns the token of the next page, or "" when this page was the last."""
    return str(offset + limit) if returned == limit else ""


def require_request_id(request_id: str, field: str = "request_id") -> str:
    """Returns ``request_id`` or raises INVALID_ARGUMENT when it is empty or too long."""
    if not request_id:
        raise InvalidArgumentError(field, "must not be empty")
    if len(request_id) > 256:
        raise InvalidArgumentError(field, "must be at most 256 characters")
    return request_id


def interval_to_pb(value: Any) -> energy_pb2.Interval:
    """Converts a :class:`greenprune.energy.Interval` (or its dict) to protobuf."""
    data = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else dict(value)
    return energy_pb2.Interval(
        median=data["median"],
        low=data["low"],
        high=data["high"],
        count=data.get("n", data.get("count", 0)),
        method=data.get("method", ""),
    )


def energy_report_to_pb(report: Any) -> energy_pb2.EnergyReport:
    """Converts a :class:`greenprune.energy.EnergyReport` (or its dict) to protobuf."""
    data = dataclasses.asdict(report) if dataclasses.is_dataclass(report) else dict(report)
    components = [
        energy_pb2.ComponentEnergy(
            component=c["component"],
            method=c["method"],
            estimated=c["estimated"],
            gross_joules=interval_to_pb(c["gross_joules"]),
            net_joules=interval_to_pb(c["net_joules"]),
            idle_watts=c["idle_watts"],
        )
        for c in data["components"]
    ]
    return energy_pb2.EnergyReport(
        components=components,
        headline_component=data["headline_component"],
        net_joules=interval_to_pb(data["net_joules"]),
        gross_joules=interval_to_pb(data["gross_joules"]),
        wall_seconds=interval_to_pb(data["wall_seconds"]),
        tokens_per_second=interval_to_pb(data["tokens_per_second"]),
        tokens=int(data["tokens"]),
        samples=int(data["samples"]),
        joules_per_token=data["joules_per_token"],
        joules_per_sample=data["joules_per_sample"],
        peak_rss_bytes=int(data["peak_rss_bytes"]),
        peak_cuda_bytes=int(data["peak_cuda_bytes"]),
        device_name=data["device_name"],
        hardware=data["hardware"],
        gpu_shared=data["gpu_shared"],
        estimated=data["estimated"],
        repeats=int(data["repeats"]),
        repeat_net_joules=list(data["repeat_net_joules"]),
    )
