"""Client channels to greenprune services, with the bearer token attached."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _with_token(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata.add("authorization", f"Bearer {token}")
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class _UnaryTokenInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_token(client_call_details, self._token), request)


class _StreamTokenInterceptor(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_token(client_call_details, self._token), request)


def channel(
    address: str, token: str | None = None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> grpc.aio.Channel:
    """Opens an insecure aio channel that sends ``token`` as a bearer token when given."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    interceptors = (
        [_UnaryTokenInterceptor(token), _StreamTokenInterceptor(token)] if token else None
    )
    return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)


def sync_channel(
    address: str, token: str | None = None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> grpc.Channel:
    """Opens an insecure blocking channel that sends ``token`` as a bearer token when given."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    chan = grpc.insecure_channel(address, options=options)
    if token:
        chan = grpc.intercept_channel(chan, _SyncTokenInterceptor(token))
    return chan


class _SyncTokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        # grpc's sync call details are a namedtuple.
        return details._replace(metadata=[*(details.metadata or ()), self._metadata])

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request)


def read_pages(call: Callable[[Any], Any], request: Any) -> Iterator[Any]:
    """Yields every response of a paged call until its ``next_page_token`` is empty.

    Each token is sent back as the request's ``page_token`` (AIP-158); ``request`` itself is
    not changed.

    Raises:
        RuntimeError: The server sent the same token twice in a row (it would never end).
    """
    page = type(request)()
    page.CopyFrom(request)
    while True:
        response = call(page)
        yield response
        token = response.next_page_token
        if not token:
            return
        if token == page.page_token:
            raise RuntimeError(f"the server sent page token {token[:40]!r} twice in a row")
        page.page_token = token


async def health_status(address: str, service: str = "", timeout: float = 2.0) -> str:
    """Returns the health status name of ``service`` at ``address`` ("UNREACHABLE" on error)."""
    async with grpc.aio.insecure_channel(address) as chan:
        try:
            response = await health_pb2_grpc.HealthStub(chan).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.aio.AioRpcError:
            return "UNREACHABLE"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


async def wait_until_serving(address: str, service: str = "", timeout: float = 60.0) -> None:
    """Waits until ``address`` reports SERVING, or raises TimeoutError."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await health_status(address, service) == "SERVING":
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{address} did not report SERVING within {timeout:.0f} s")


def decode_value(value: Any) -> Any:
    """Returns the Python value of one cell of a ResultsService ``Table``.

    A protobuf ``Value`` becomes None, a float, a str, a bool, or a dict/list.
    """
    kind = value.WhichOneof("kind")
    if kind in (None, "null_value"):
        return None
    if kind in ("number_value", "string_value", "bool_value"):
        return getattr(value, kind)
    return json_format.MessageToDict(getattr(value, kind))


def decode_table(table: Any) -> tuple[list[str], list[str], list[list[Any]]]:
    """Decodes a ResultsService ``Table``: column names, column types and rows of values.

    The one decoder of query results: the Python client and the app both use it.

    Raises:
        ValueError: A row's length differs from the number of columns.
    """
    names = [column.name for column in table.columns]
    types = [column.type for column in table.columns]
    rows = [[decode_value(value) for value in row.values] for row in table.rows]
    for row in rows:
        if len(row) != len(names):
            raise ValueError(f"a row of {len(row)} values for {len(names)} columns")
    return names, types, rows
