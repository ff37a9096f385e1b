"""Entry point of the ResultsService: ``python -m results_service.server``.

The ResultsService is the only process that opens the results DuckDB file
(``GREENPRUNE_RESULTS_DB_PATH``, by default ``<state_dir>/results/results.duckdb``).
"""

from __future__ import annotations

import asyncio

from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.core.settings import ResultsSettings
from greenprune.rpc.server import Cleanup, ServiceBinding, serve
from results_service.servicer import ResultsServicer
from results_service.store import ResultsStore

SERVICE_NAME = results_pb2.DESCRIPTOR.services_by_name["ResultsService"].full_name


def bindings(settings: ResultsSettings, store: ResultsStore | None = None) -> list[ServiceBinding]:
    """Returns the ResultsService binding.

    Args:
        settings: The service settings; ``db_path`` names the file to open.
        store: An open store to serve; when None, the file of ``settings.db_path`` is opened
            (and migrated), and the caller closes it through ``servicer.store.close()``.
    """
    if store is None:
        assert settings.db_path is not None
        store = ResultsStore(settings.db_path)
    servicer = ResultsServicer(store)
    return [
        ServiceBinding(
            SERVICE_NAME, results_pb2_grpc.add_ResultsServiceServicer_to_server, servicer
        )
    ]


async def build(settings: ResultsSettings) -> tuple[list[ServiceBinding], Cleanup]:
    """Opens the store and returns the binding and a cleanup that closes the store."""
    assert settings.db_path is not None
    store = await asyncio.to_thread(ResultsStore, settings.db_path, warm_views=True)

    async def cleanup() -> None:
        await asyncio.to_thread(store.close)

    return bindings(settings, store), cleanup


def main() -> None:
    """Runs the ResultsService until SIGTERM or SIGINT."""
    settings = ResultsSettings()

    async def factory() -> tuple[list[ServiceBinding], Cleanup]:
        return await build(settings)

    serve(factory, settings)


if __name__ == "__main__":
    main()
