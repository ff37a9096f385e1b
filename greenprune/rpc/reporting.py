"""Reporting finished work to the ResultsService, retrying while it is unreachable."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from greenprune.api.results.v1 import results_pb2_grpc
from greenprune.rpc.client import channel

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class ResultsReporter:
    """A lazily opened client of the ResultsService.

    Args:
        address: The ResultsService address.
        token: The bearer token, if the stack uses one.
        retry_seconds: How long one call keeps retrying while the service is unreachable; the
            job runner then retries the whole report with backoff, its stage saying so.
    """

    def __init__(self, address: str, token: str | None, retry_seconds: float = 10.0) -> None:
        self._address = address
        self._token = token
        self._retry_seconds = retry_seconds
        self._channel: grpc.aio.Channel | None = None

    @property
    def stub(self) -> results_pb2_grpc.ResultsServiceStub:
        """The stub, opening the channel on first use."""
        if self._channel is None:
            self._channel = channel(self._address, self._token)
        return results_pb2_grpc.ResultsServiceStub(self._channel)

    async def call(self, rpc: Callable[[results_pb2_grpc.ResultsServiceStub], Awaitable[T]]) -> T:
        """Runs ``rpc(stub)``, retrying with backoff while the service is unreachable."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_seconds
        delay = 0.2
        while True:
            try:
                return await rpc(self.stub)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or loop.time() + delay > deadline:
                    raise
                log.warning("results service unreachable (%s); retrying", exc.code().name)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        """Closes the channel."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
