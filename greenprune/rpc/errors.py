"""Domain errors to gRPC statuses, at the server's error boundary.

Servicers raise :mod:`greenprune.core.errors` exceptions, whose codes
:func:`greenprune.core.errors.code_name` names (the one error-to-code map);
:class:`ErrorMappingInterceptor` turns them into statuses with wire-safe messages. Unexpected
exceptions become INTERNAL with a generic message: the traceback goes to the server log, never
onto the wire.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.rpc import code_pb2, status_pb2

from greenprune.core.errors import (
    INTERNAL,
    GreenpruneError,
    InvalidArgumentError,
    code_name,
    is_disk_full,
)

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal error; see the server log"


MAX_MESSAGE_CHARS = 2000
"""Longer messages are cut: a status travels in metadata, which gRPC caps at 16 KiB."""


def _wire(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[:MAX_MESSAGE_CHARS] + f"...[{len(message) - MAX_MESSAGE_CHARS} chars cut]"


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """Returns the status code and wire-safe message for an exception."""
    code = grpc.StatusCode[code_name(exc)]
    if isinstance(exc, GreenpruneError):
        return code, _wire(str(exc))
    if is_disk_full(exc):
        filename = getattr(exc, "filename", None)
        where = f" writing {str(filename)[:200]!r}" if filename else ""
        return code, f"no space left on the device{where}"
    return grpc.StatusCode[INTERNAL], INTERNAL_MESSAGE


def rpc_status(code: str, message: str) -> status_pb2.Status:
    """Builds a ``google.rpc.Status`` from a canonical code name and a message."""
    return status_pb2.Status(code=code_pb2.Code.Value(code), message=message)


def _decode(deserializer: Callable[[bytes], Any] | None, request: Any) -> Any:
    """Parses the request here, so malformed bytes are INVALID_ARGUMENT, not UNKNOWN."""
    if deserializer is None:
        return request
    try:
        return deserializer(request)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's fault
        raise InvalidArgumentError("request", "is not a valid message of this method") from exc


def _wrap_unary(
    behavior: Callable[..., Awaitable[Any]], deserializer: Callable[[bytes], Any] | None
) -> Callable[..., Awaitable[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(_decode(deserializer, request), context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - this is the error boundary
            await _abort(exc, context)

    return wrapper


def _wrap_stream(
    behavior: Callable[..., Any], deserializer: Callable[[bytes], Any] | None
) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(behavior):
        # A coroutine that streams through ``context.write`` (grpc's Health.Watch does).
        return _wrap_unary(behavior, deserializer)

    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            async for item in behavior(_decode(deserializer, request), context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - this is the error boundary
            await _abort(exc, context)

    return wrapper


async def _abort(exc: BaseException, context: grpc.aio.ServicerContext) -> None:
    code, message = status_for(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.exception("unexpected error in RPC", exc_info=exc)
    await context.abort(code, message)


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every unary-unary and unary-stream handler in the error map.

    The request is parsed inside the wrapper too, so that a malformed message is answered
    INVALID_ARGUMENT like any other bad input.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Returns the handler with its behaviour wrapped."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, handler.request_deserializer),
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, handler.request_deserializer),
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )
        return handler
