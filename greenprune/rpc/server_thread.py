"""A real greenprune server in a background thread and event loop, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

from greenprune.core.settings import ServerSettings
from greenprune.rpc.server import Cleanup, RunningServer, ServiceBinding, start_server

Build = Callable[[], Awaitable[tuple[list[ServiceBinding], Cleanup | None]]]


class ServerThread:
    """Runs ``build`` and a server in a background event loop until :meth:`stop`.

    Args:
        build: Returns the bindings and an optional async cleanup (run in the server's loop).
        settings: Server settings; use port 0.
    """

    def __init__(self, build: Build, settings: ServerSettings) -> None:
        self.build = build
        self.settings = settings
        self._stopped = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._cleanup: Cleanup | None = None
        self.running: RunningServer | None = None

    def start(self) -> ServerThread:
        """Starts the loop and the server; returns self once it is SERVING."""
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        bindings, self._cleanup = await self.build()
        self.running = await start_server(bindings, self.settings)

    def call(self, coro: Awaitable[Any], timeout: float = 120) -> Any:
        """Runs a coroutine in the server's loop and returns its result."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        return future.result(timeout)

    @property
    def address(self) -> str:
        """The address clients dial."""
        assert self.running is not None
        return self.running.address

    def stop(self, grace: float = 1.0) -> None:
        """Drains, runs the cleanup and stops the loop; later calls do nothing."""
        if self._stopped:
            return
        self._stopped = True

        async def _stop() -> None:
            assert self.running is not None
            await self.running.set_serving(False)
            await self.running.server.stop(grace)
            if self._cleanup is not None:
                await self._cleanup()

        try:
            self.call(_stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
