"""What every service's gRPC boundary shares: request ids, pages, checked values, job status."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from greenprune.api.common.v1 import jobs_pb2
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.jobs import Job
from greenprune.core.limits import (
    MAX_LIST_ITEMS,
    MAX_NAME_CHARS,
    MAX_RECORD_BYTES,
    MAX_TEXT_CHARS,
    check_text,
    record_number_bound,
)
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
    return limit, parse_page_token(page_token)


MAX_PAGE_OFFSET = 2**53
"""The largest offset a page token may carry (SQLite and DuckDB take 64-bit integers)."""


def parse_page_token(page_token: str, field: str = "page_token") -> int:
    """Returns the offset in a token from :func:`next_page_token`, or raises INVALID_ARGUMENT.

    Only ASCII digits are accepted (``str.isdigit`` also accepts ``"²"``), and the offset must
    fit the stores' integers; the message quotes at most a short prefix of the token.
    """
    if len(page_token) > 16 or not page_token.isascii() or not page_token.isdigit():
        raise InvalidArgumentError(field, f"{page_token[:20]!r} is not a token this server issued")
    offset = int(page_token)
    if offset > MAX_PAGE_OFFSET:
        raise InvalidArgumentError(field, f"{page_token[:20]!r} is not a token this server issued")
    return offset


def next_page_token(offset: int, limit: int, returned: int) -> str:
    """Returns the token of the next page, or "" when this page was the last."""
    return str(offset + limit) if returned == limit else ""


def require_request_id(request_id: str, field: str = "request_id") -> str:
    """Returns ``request_id``, refusing one that is empty, too long or holds control characters.

    The one rule for a run's id: the ResultsService applies it when a run is recorded and the
    job services when a job is submitted, so no job does work it cannot record.
    """
    if not request_id:
        raise InvalidArgumentError(field, "must not be empty")
    return check_text(field, request_id, MAX_NAME_CHARS)


NAME_FIELDS = frozenset(
    {
        "request_id",
        "experiment",
        "checkpoint_id",
        "model",
        "task",
        "tasks",
        "job_name",
        "device",
        "name",
    }
)
"""String fields that hold names: at most ``MAX_NAME_CHARS``, no control characters."""

MAX_MESSAGE_DEPTH = 32


def check_record(run: Message, prefix: str = "run") -> None:
    """Refuses a run the ResultsService must not record, naming the field.

    Everything :func:`check_values` refuses, and beyond it: a number of a magnitude no real run
    reaches (``limits.record_number_bound`` of its field's name; a sum over such values would
    overflow every view that aggregates them), and a run whose serialized size passes
    ``MAX_RECORD_BYTES`` (no page of ``List*Runs`` could hold it whole).
    """
    check_values(run, prefix, bounded=True)
    size = run.ByteSize()
    if size > MAX_RECORD_BYTES:
        raise InvalidArgumentError(
            prefix, f"is {size} bytes serialized (at most {MAX_RECORD_BYTES} per recorded run)"
        )


def check_values(
    message: Message,
    prefix: str = "",
    depth: int = 0,
    max_items: int | None = None,
    *,
    bounded: bool = False,
) -> None:
    """Refuses oversized strings and non-finite numbers anywhere in ``message``.

    Name fields (:data:`NAME_FIELDS`) and map keys are held to ``MAX_NAME_CHARS`` without
    control characters; other strings to ``MAX_TEXT_CHARS`` without NUL; float and double
    fields must be finite; with ``max_items``, no list or map holds more entries; with
    ``bounded``, no number's magnitude passes ``record_number_bound`` of its field's name.
    Raises :class:`InvalidArgumentError` naming the field path and quoting at most a short
    prefix of the value.
    """
    if depth > MAX_MESSAGE_DEPTH:
        raise InvalidArgumentError(prefix or "request", "is nested too deeply")
    for field, value in message.ListFields():
        path = f"{prefix}.{field.name}" if prefix else field.name
        if field.is_repeated and max_items is not None and len(value) > max_items:
            raise InvalidArgumentError(path, f"lists {len(value)} entries (at most {max_items})")
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                if isinstance(key, str):
                    check_text(f"{path} key", key, MAX_NAME_CHARS)
                _check_one(
                    value_field, item, f"{path}[{str(key)[:40]!r}]", depth, max_items, bounded
                )
        elif field.is_repeated:
            for index, item in enumerate(value):
                _check_one(field, item, f"{path}[{index}]", depth, max_items, bounded)
        else:
            _check_one(field, value, path, depth, max_items, bounded)


def check_submission(request: Message, run_ids: Sequence[str] = ()) -> None:
    """Checks a job's create request by the rules its runs will be recorded under.

    The ResultsService refuses a run whose id or strings break :func:`require_request_id` or
    :func:`check_values`; a job that passed submit with such a value would do its work and then
    fail to report it. So the job services check the request (id, experiment, spec) with the
    same two functions, every run id the job will record (an eval job records one per task),
    and bound every list of the spec to ``MAX_LIST_ITEMS``.

    Args:
        request: A ``Create*JobRequest`` (``request_id``, ``experiment``, ``spec``).
        run_ids: The ids of the runs the job will record, when they differ from request_id.
    """
    check_values(request, max_items=MAX_LIST_ITEMS)
    for run_id in run_ids:
        try:
            require_request_id(run_id, "request_id")
        except InvalidArgumentError as exc:
            shown = run_id if len(run_id) <= 80 else f"...{run_id[-60:]}"
            raise InvalidArgumentError(
                "request_id", f"makes the recorded run id {shown!r}, which {exc.message}"
            ) from None


def _check_one(
    field: FieldDescriptor,
    value: Any,
    path: str,
    depth: int,
    max_items: int | None,
    bounded: bool,
) -> None:
    if isinstance(value, Message):
        check_values(value, path, depth + 1, max_items, bounded=bounded)
    elif isinstance(value, str):
        if field.name in NAME_FIELDS:
            check_text(path, value, MAX_NAME_CHARS)
        elif len(value) > MAX_TEXT_CHARS:
            check_text(path, value, MAX_TEXT_CHARS)
        elif "\x00" in value:
            raise InvalidArgumentError(path, f"holds a NUL character: {value[:40]!r}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError(path, f"must be a finite number, got {value!r}")
    elif bounded and field.enum_type is None and isinstance(value, int | float):
        bound = record_number_bound(field.name)
        if abs(value) > bound and not isinstance(value, bool):
            raise InvalidArgumentError(
                path, f"{value!r} is beyond what any run measures (magnitude at most {bound:g})"
            )
