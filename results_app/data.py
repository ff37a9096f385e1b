"""The app's client of the ResultsService: cached calls, tables as DataFrames, friendly errors.

Everything the app shows comes through here. The stub lives in ``st.cache_resource`` (one
channel per address and token); view tables, exports and runs live in ``st.cache_data`` for
``CACHE_TTL_SECONDS`` so that clicking around does not hammer the service but new runs show
up quickly. A failed call raises ``ServiceError`` whose text is meant for people.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import pandas as pd
import streamlit as st
from google.protobuf import json_format

from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.rpc.client import decode_table, read_pages, sync_channel
from results_app.settings import AppSettings

CACHE_TTL_SECONDS = 15
"""How long a view, export or run stays cached before the app asks the service again."""

VIEWS: dict[str, int] = {
    name.removeprefix("VIEW_").lower(): value
    for name, value in results_pb2.View.items()
    if value != results_pb2.VIEW_UNSPECIFIED
}
"""The views the app reads, by the name the store gives them."""

EXPORT_FORMATS: dict[str, tuple[int, str]] = {
    "csv": (results_pb2.EXPORT_FORMAT_CSV, "text/csv"),
    "parquet": (results_pb2.EXPORT_FORMAT_PARQUET, "application/vnd.apache.parquet"),
}
"""Export formats: the protobuf enum value and the media type of the file."""


class ServiceError(Exception):
    """A call to the ResultsService failed; the message says what to do about it."""


@dataclass(frozen=True)
class Filter:
    """Narrows every view the pages show; empty fields do not filter.

    Attributes:
        experiment: Only rows of this experiment.
        model: Only rows of this base model.
        task: Only rows of this task.
    """

    experiment: str = ""
    model: str = ""
    task: str = ""


def describe_error(code: grpc.StatusCode, details: str, address: str) -> str:
    """Turns a failed call into a sentence for the person looking at the app.

    Args:
        code: The call's status code.
        details: The status details the server sent.
        address: The address the app dialled.
    """
    if code == grpc.StatusCode.UNAVAILABLE:
        return (
            f"The results service at {address} is not reachable. Start the services with "
            "`greenprune up` (or `make demo`), or point GREENPRUNE_APP_RESULTS_ADDRESS at "
            f"a running ResultsService. ({details})"
        )
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return (
            f"The results service at {address} refused the app's token: set GREENPRUNE_TOKEN "
            f"to the token the services were started with. ({details})"
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return (
            f"The results service at {address} did not answer in time; it may be busy. "
            "Reload the page in a moment, or raise GREENPRUNE_APP_TIMEOUT_SECONDS."
        )
    if code == grpc.StatusCode.NOT_FOUND:
        return f"Not found in the results store: {details}"
    return f"The results service at {address} failed ({code.name}): {details}"


@st.cache_resource(show_spinner=False)
def _stub(address: str, token: str | None) -> results_pb2_grpc.ResultsServiceStub:
    return results_pb2_grpc.ResultsServiceStub(sync_channel(address, token))


def _invoke(settings: AppSettings, method: str, request: Any) -> Any:
    stub = _stub(settings.results_address, settings.token)
    try:
        return getattr(stub, method)(request, timeout=settings.timeout_seconds)
    except grpc.RpcError as error:
        code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
        details = error.details() if callable(getattr(error, "details", None)) else str(error)
        raise ServiceError(describe_error(code, details or "", settings.results_address)) from None


def _typed_column(values: Sequence[Any], column_type: str) -> pd.Series:
    if column_type == "double":
        return pd.Series(pd.to_numeric(pd.Series(values, dtype=object)), dtype="float64")
    if column_type == "int64":
        numbers = [None if v is None else int(v) for v in values]
        try:
            return pd.Series(numbers, dtype="Int64")
        except (OverflowError, TypeError, ValueError):  # past int64 after the trip as a double
            return pd.Series(numbers, dtype="float64")
    if column_type == "bool":
        return pd.Series(values, dtype="boolean")
    if column_type == "timestamp":
        present = [v for v in values if v is not None]
        if present and isinstance(present[0], int | float):
            return pd.to_datetime(pd.Series(values, dtype="float64"), unit="s", utc=True)
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
    return pd.Series(values, dtype=object)


def table_to_frame(table: results_pb2.Table) -> pd.DataFrame:
    """Converts a view's Table into a DataFrame with one typed column per declared column.

    Doubles become float64 (NaN where null), int64 nullable Int64, bools nullable booleans,
    timestamps UTC datetimes and strings objects (None where null).

    Args:
        table: The table from QueryView.
    """
    try:
        names, _, rows = decode_table(table)
    except ValueError as error:
        raise ServiceError(f"The results service sent a malformed table: {error}.") from None
    columns = {
        column.name: _typed_column([row[i] for row in rows], column.type)
        for i, column in enumerate(table.columns)
    }
    return pd.DataFrame(columns, columns=names)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _query_view(settings: AppSettings, view: str, view_filter: Filter) -> pd.DataFrame:
    request = results_pb2.QueryViewRequest(
        view=VIEWS[view],
        filter=results_pb2.ViewFilter(
            experiment=view_filter.experiment, model=view_filter.model, task=view_filter.task
        ),
    )
    return table_to_frame(_read_view(settings, request))


def _read_view(settings: AppSettings, request: results_pb2.QueryViewRequest) -> results_pb2.Table:
    """Reads every page of a view into one Table."""
    table = results_pb2.Table()
    for number, page in enumerate(read_pages(lambda r: _invoke(settings, "QueryView", r), request)):
        if number == 0:
            table.columns.extend(page.table.columns)
        table.rows.extend(page.table.rows)
    return table


def query_view(view: str, view_filter: Filter | None = None) -> pd.DataFrame:
    """Returns a view of the store as a DataFrame (cached for ``CACHE_TTL_SECONDS``).

    Args:
        view: A key of ``VIEWS``.
        view_filter: Narrows the rows; None does not filter.

    Raises:
        ServiceError: The service could not be reached or refused the call.
    """
    return _query_view(AppSettings(), view, view_filter or Filter())


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _export_view(settings: AppSettings, view: str, view_filter: Filter, fmt: str) -> bytes:
    request = results_pb2.ExportViewRequest(
        view=VIEWS[view],
        filter=results_pb2.ViewFilter(
            experiment=view_filter.experiment, model=view_filter.model, task=view_filter.task
        ),
        format=EXPORT_FORMATS[fmt][0],
    )
    pages = read_pages(lambda r: _invoke(settings, "ExportView", r), request)
    return b"".join(page.data for page in pages)


def export_view(view: str, view_filter: Filter | None = None, fmt: str = "csv") -> bytes:
    """Returns a view as a file from the ExportView RPC.

    Args:
        view: A key of ``VIEWS``.
        view_filter: Narrows the rows; None does not filter.
        fmt: A key of ``EXPORT_FORMATS``.

    Raises:
        ServiceError: The service could not be reached or refused the call.
    """
    return _export_view(AppSettings(), view, view_filter or Filter(), fmt)


def _message_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _get_run(settings: AppSettings, kind: str, request_id: str) -> dict[str, Any]:
    if kind == "eval":
        response = _invoke(
            settings, "GetEvalRun", results_pb2.GetEvalRunRequest(request_id=request_id)
        )
    else:
        response = _invoke(
            settings, "GetPruneRun", results_pb2.GetPruneRunRequest(request_id=request_id)
        )
    return _message_dict(response.run)


def get_eval_run(request_id: str) -> dict[str, Any]:
    """Returns an eval run (the EvalRun message as a dict with the proto's field names).

    Raises:
        ServiceError: The run is unknown or the service failed.
    """
    return _get_run(AppSettings(), "eval", request_id)


def get_prune_run(request_id: str) -> dict[str, Any]:
    """Returns a prune run (the PruneRun message as a dict with the proto's field names).

    Raises:
        ServiceError: The run is unknown or the service failed.
    """
    return _get_run(AppSettings(), "prune", request_id)
