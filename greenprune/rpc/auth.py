"""Bearer-token authentication for every RPC except health and reflection."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import grpc

OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _deny(message: str) -> grpc.RpcMethodHandler:
    async def abort(request: object, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.unary_unary_rpc_method_handler(abort)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls whose ``authorization`` metadata is not ``Bearer <token>``.

    Args:
        token: The expected token.
    """

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Passes authenticated and open calls on; answers the rest UNAUTHENTICATED."""
        method = handler_call_details.method or ""
        if method.startswith(OPEN_SERVICES):
            return await continuation(handler_call_details)
        presented = b""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                presented = value.encode() if isinstance(value, str) else value
        if not hmac.compare_digest(presented, self._expected):
            handler = await continuation(handler_call_details)
            denial = "missing or invalid bearer token"
            if handler is not None and handler.unary_stream is not None:
                return _deny_stream(denial)
            return _deny(denial)
        return await continuation(handler_call_details)


def _deny_stream(message: str) -> grpc.RpcMethodHandler:
    async def abort(request: object, context: grpc.aio.ServicerContext):  # noqa: ANN202
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - makes this an async generator

    return grpc.unary_stream_rpc_method_handler(abort)
