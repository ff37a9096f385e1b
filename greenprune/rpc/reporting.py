"""Reporting finished work to the ResultsService."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from greenprune.api.results.v1 import results_pb2_grpc
from greenprune.rpc.client import channel

T = TypeVar("T")


class ResultsReporter:
    """A lazily opened client of the ResultsService.

    A call is tried once: while the service is unreachable, the job runner retries the whole
    report with backoff (one retry loop), its stage saying so.

    Args:
        address: The ResultsService address.
        token: The bearer token, if the stack uses one.
    """

    def __init__(self, address: str, token: str | None) -> None:
        self._address = address
        self._token = token
        self._channel: grpc.aio.Channel | None = None

    @property
    def stub(self) -> results_pb2_grpc.ResultsServiceStub:
        """The stub, opening the channel on first use."""
        if self._channel is None:
            self._channel = channel(self._address, self._token)
        return results_pb2_grpc.ResultsServiceStub(self._channel)

    async def call(self, rpc: Callable[[results_pb2_grpc.ResultsServiceStub], Awaitable[T]]) -> T:
        """Runs ``rpc(stub)`` once."""
        return await rpc(self.stub)

    async def close(self) -> None:
        """Closes the channel."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
