"""Conversions at the gRPC boundary that every service shares."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from greenprune.api.common.v1 import jobs_pb2
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.job_runner import Job
from greenprune.rpc.errors import rpc_status

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


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
