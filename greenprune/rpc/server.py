"""Bootstrap shared by every greenprune gRPC server.

A server here is ``grpc.aio`` with the standard health service (NOT_SERVING until ready and
while draining), reflection, the error map, optional bearer-token auth, message-size limits and
graceful shutdown on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from greenprune.core.settings import ServerSettings
from greenprune.rpc.auth import BearerTokenInterceptor
from greenprune.rpc.errors import ErrorMappingInterceptor

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

Cleanup = Callable[[], Awaitable[None]]


@dataclass
class ServiceBinding:
    """A servicer and how to add it to a server.

    Attributes:
        name: The full service name, for example ``greenprune.api.results.v1.ResultsService``.
        add_to_server: The generated ``add_XServicer_to_server`` function.
        servicer: The servicer instance.
    """

    name: str
    add_to_server: Callable[[object, grpc.aio.Server], None]
    servicer: object


@dataclass
class RunningServer:
    """A started server.

    Attributes:
        server: The aio server.
        port: The bound port (the real one when settings asked for port 0).
        host: The bound host.
        health: The health servicer, to flip service status.
        names: The service names served.
    """

    server: grpc.aio.Server
    port: int
    host: str
    health: health.aio.HealthServicer
    names: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The ``host:port`` clients dial."""
        return f"{self.host}:{self.port}"

    async def set_serving(self, serving: bool) -> None:
        """Marks every service (and the server as a whole) SERVING or NOT_SERVING."""
        status = SERVING if serving else NOT_SERVING
        for name in ["", *self.names]:
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Drains: NOT_SERVING first, then stops accepting and waits ``grace`` seconds."""
        await self.set_serving(False)
        await self.server.stop(grace)


async def start_server(
    bindings: Sequence[ServiceBinding], settings: ServerSettings, *, ready: bool = True
) -> RunningServer:
    """Builds, binds and starts a server for ``bindings``.

    Args:
        bindings: The services to serve.
        settings: Host, port (0 picks a free one), token, limits.
        ready: Whether to report SERVING at once; pass False and call ``set_serving`` later
            when the service has more start-up work to do.

    Returns:
        The running server.
    """
    interceptors: list[grpc.aio.ServerInterceptor] = []
    if settings.token:
        interceptors.append(BearerTokenInterceptor(settings.token))
    interceptors.append(ErrorMappingInterceptor())
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    for binding in bindings:
        binding.add_to_server(binding.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [binding.name for binding in bindings]
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    port = server.add_insecure_port(settings.address)
    if port == 0:
        raise OSError(f"could not bind {settings.address}")
    running = RunningServer(server, port, settings.host, health_servicer, names)
    await running.set_serving(False)
    await server.start()
    if ready:
        await running.set_serving(True)
    log.info("serving %s on %s", ", ".join(names), running.address)
    return running


async def _serve(
    build: Callable[[], Awaitable[tuple[list[ServiceBinding], Cleanup | None]]],
    settings: ServerSettings,
) -> None:
    bindings, cleanup = await build()
    running = await start_server(bindings, settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    print(f"listening on {running.address}", flush=True)
    await stopping.wait()
    log.info("draining %s", running.address)
    await running.set_serving(False)
    await running.server.stop(settings.grace_seconds)
    if cleanup is not None:
        await cleanup()
    log.info("stopped")


def serve(
    build: Callable[[], Awaitable[tuple[list[ServiceBinding], Cleanup | None]]],
    settings: ServerSettings,
) -> None:
    """Runs a server until SIGTERM or SIGINT, then drains and stops gracefully.

    Args:
        build: Coroutine factory returning the bindings and an optional async cleanup, run
            inside the server's event loop.
        settings: The server settings.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_serve(build, settings))
