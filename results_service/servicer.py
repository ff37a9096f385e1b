"""The ResultsService servicer: checks requests and hands the work to ``store.py``.

Store calls run in worker threads (``asyncio.to_thread``) so DuckDB never blocks the event loop.
Errors are raised as ``greenprune.core.errors`` exceptions; the server's interceptor maps them to
status codes. Every read that can grow with the store is paged to stay under one response size
(``pages.take_page``, ``ResultsStore.export_chunk``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import MAX_RESPONSE_BYTES
from greenprune.rpc.common_messages import check_record, page_bounds, require_request_id
from results_service import pages
from results_service.store import EXPORT_MEDIA_TYPES, ResultsStore

M = TypeVar("M", bound=Message)


def _view_name(view: int) -> str:
    name = pages.VIEW_NAMES.get(view)
    if name is None:
        choices = ", ".join(results_pb2.View.Name(value) for value in pages.VIEW_NAMES)
        raise InvalidArgumentError("view", f"must be one of {choices}")
    return name


class ResultsServicer(results_pb2_grpc.ResultsServiceServicer):
    """Serves the ResultsService from a ``ResultsStore``.

    Args:
        store: The open store; the servicer does not close it.
        response_bytes: The size a read response stays under (a single oversized record is
            served with its strings cut).
    """

    def __init__(self, store: ResultsStore, response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._store = store
        self._budget = response_bytes

    @property
    def store(self) -> ResultsStore:
        """The store served."""
        return self._store

    async def _record(self, run: Message, kind: str) -> dict[str, Any]:
        """Checks one run, records it (idempotently) and returns it as stored, and if it is new.

        Args:
            run: The run message.
            kind: ``prune``, ``eval`` or ``profile``: the store's ``record_<kind>_run`` and
                ``get_<kind>_run`` hold it.
        """
        require_request_id(run.request_id, "run.request_id")
        check_record(run, "run")
        record = getattr(self._store, f"record_{kind}_run")
        get = getattr(self._store, f"get_{kind}_run")

        def write() -> tuple[bool, Message]:
            return record(run), get(run.request_id)

        created, stored = await asyncio.to_thread(write)
        return {"run": stored, "created": created}

    async def RecordPruneRun(  # noqa: D102
        self, request: results_pb2.RecordPruneRunRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.RecordPruneRunResponse:
        return results_pb2.RecordPruneRunResponse(**await self._record(request.run, "prune"))

    async def RecordEvalRun(  # noqa: D102
        self, request: results_pb2.RecordEvalRunRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.RecordEvalRunResponse:
        return results_pb2.RecordEvalRunResponse(**await self._record(request.run, "eval"))

    async def BatchRecordEvalRuns(  # noqa: D102
        self, request: results_pb2.BatchRecordEvalRunsRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.BatchRecordEvalRunsResponse:
        for index, run in enumerate(request.runs):
            require_request_id(run.request_id, f"runs[{index}].request_id")
            check_record(run, f"runs[{index}]")

        created = await asyncio.to_thread(self._store.record_eval_runs, list(request.runs))
        return results_pb2.BatchRecordEvalRunsResponse(created_count=created)

    async def RecordProfileRun(  # noqa: D102
        self, request: results_pb2.RecordProfileRunRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.RecordProfileRunResponse:
        return results_pb2.RecordProfileRunResponse(**await self._record(request.run, "profile"))

    async def _get(self, request_id: str, get: Callable[[str], M]) -> M:
        require_request_id(request_id)
        run = await asyncio.to_thread(get, request_id)
        return pages.fit(run, self._budget - pages.TOKEN_ROOM)

    async def GetPruneRun(  # noqa: D102
        self, request: results_pb2.GetPruneRunRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.GetPruneRunResponse:
        run = await self._get(request.request_id, self._store.get_prune_run)
        return results_pb2.GetPruneRunResponse(run=run)

    async def GetEvalRun(  # noqa: D102
        self, request: results_pb2.GetEvalRunRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.GetEvalRunResponse:
        run = await self._get(request.request_id, self._store.get_eval_run)
        return results_pb2.GetEvalRunResponse(run=run)

    async def GetProfileRun(  # noqa: D102
        self, request: results_pb2.GetProfileRunRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.GetProfileRunResponse:
        run = await self._get(request.request_id, self._store.get_profile_run)
        return results_pb2.GetProfileRunResponse(run=run)

    async def _list(self, table: str, request: Any) -> tuple[list[Any], str]:
        """A page of runs of ``table`` that fits one response, and the next page's token."""
        limit, offset = page_bounds(request.page_size, request.page_token)

        def page() -> tuple[list[Any], str]:
            runs, next_offset = self._store.list_runs(
                table, request.experiment, limit, offset, self._budget
            )
            return pages.runs_page(runs, offset, next_offset, self._budget)

        return await asyncio.to_thread(page)

    async def ListPruneRuns(  # noqa: D102
        self, request: results_pb2.ListPruneRunsRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.ListPruneRunsResponse:
        runs, token = await self._list("prune_runs", request)
        return results_pb2.ListPruneRunsResponse(runs=runs, next_page_token=token)

    async def ListEvalRuns(  # noqa: D102
        self, request: results_pb2.ListEvalRunsRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.ListEvalRunsResponse:
        runs, token = await self._list("eval_runs", request)
        return results_pb2.ListEvalRunsResponse(runs=runs, next_page_token=token)

    async def QueryView(  # noqa: D102
        self, request: results_pb2.QueryViewRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.QueryViewResponse:
        view = _view_name(request.view)
        view_filter = pages.view_filter_from_pb(request.filter)
        limit, offset = page_bounds(request.page_size, request.page_token)

        def query() -> tuple[results_pb2.Table, str]:
            table = self._store.query_view(view, view_filter)
            return pages.table_page(
                table, offset, limit if request.page_size else None, self._budget
            )

        table, token = await asyncio.to_thread(query)
        return results_pb2.QueryViewResponse(table=table, next_page_token=token)

    async def ExportView(  # noqa: D102
        self, request: results_pb2.ExportViewRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.ExportViewResponse:
        view = _view_name(request.view)
        fmt = pages.EXPORT_FORMATS.get(request.format)
        if fmt is None:
            raise InvalidArgumentError(
                "format", "must be EXPORT_FORMAT_CSV or EXPORT_FORMAT_PARQUET"
            )
        offset, fingerprint = pages.parse_export_token(request.page_token)
        view_filter = pages.view_filter_from_pb(request.filter)

        chunk = await asyncio.to_thread(
            self._store.export_chunk,
            view,
            view_filter,
            fmt,
            self._budget - pages.EXPORT_CHUNK_ROOM,
            offset,
            fingerprint,
        )
        return results_pb2.ExportViewResponse(
            data=chunk.data,
            media_type=EXPORT_MEDIA_TYPES[fmt],
            filename=f"{view}.{fmt}",
            next_page_token=pages.export_token(chunk.next_offset, chunk.fingerprint),
        )
