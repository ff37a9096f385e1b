"""The ResultsService servicer: converts messages and hands the work to ``store.py``.

Store calls run in worker threads (``asyncio.to_thread``) so DuckDB never blocks the event loop.
Errors are raised as ``greenprune.core.errors`` exceptions; the server's interceptor maps them to
status codes. Every read that can grow with the store is paged to stay under one response size
(``convert.take_page``, ``ResultsStore.export_chunk``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc

from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import MAX_RESPONSE_BYTES
from greenprune.rpc.common_messages import check_values, page_bounds, require_request_id
from results_service import convert
from results_service.store import EXPORT_MEDIA_TYPES, ResultsStore


def _view_name(view: int) -> str:
    name = convert.VIEW_NAMES.get(view)
    if name is None:
        choices = ", ".join(results_pb2.View.Name(value) for value in convert.VIEW_NAMES)
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

    async def _record(
        self,
        run: Any,
        from_pb: Callable[[Any], dict[str, Any]],
        record: Callable[[dict[str, Any]], bool],
        get: Callable[[str], dict[str, Any]],
        to_pb: Callable[[dict[str, Any]], Any],
    ) -> tuple[Any, bool]:
        """Checks one run, records it (idempotently) and returns it as stored, and if it is new."""
        require_request_id(run.request_id, "run.request_id")
        check_values(run, "run")

        def write() -> tuple[bool, dict[str, Any]]:
            return record(from_pb(run)), get(run.request_id)

        created, stored = await asyncio.to_thread(write)
        return to_pb(stored), created

    async def RecordPruneRun(  # noqa: D102
        self, request: results_pb2.RecordPruneRunRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.RecordPruneRunResponse:
        run, created = await self._record(
            request.run,
            convert.prune_run_from_pb,
            self._store.record_prune_run,
            self._store.get_prune_run,
            convert.prune_run_to_pb,
        )
        return results_pb2.RecordPruneRunResponse(run=run, created=created)

    async def RecordEvalRun(  # noqa: D102
        self, request: results_pb2.RecordEvalRunRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.RecordEvalRunResponse:
        run, created = await self._record(
            request.run,
            convert.eval_run_from_pb,
            self._store.record_eval_run,
            self._store.get_eval_run,
            convert.eval_run_to_pb,
        )
        return results_pb2.RecordEvalRunResponse(run=run, created=created)

    async def BatchRecordEvalRuns(  # noqa: D102
        self, request: results_pb2.BatchRecordEvalRunsRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.BatchRecordEvalRunsResponse:
        for index, run in enumerate(request.runs):
            require_request_id(run.request_id, f"runs[{index}].request_id")
            check_values(run, f"runs[{index}]")

        def record() -> int:
            return self._store.record_eval_runs(
                [convert.eval_run_from_pb(run) for run in request.runs]
            )

        created = await asyncio.to_thread(record)
        return results_pb2.BatchRecordEvalRunsResponse(created_count=created)

    async def RecordProfileRun(  # noqa: D102
        self, request: results_pb2.RecordProfileRunRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.RecordProfileRunResponse:
        run, created = await self._record(
            request.run,
            convert.profile_run_from_pb,
            self._store.record_profile_run,
            self._store.get_profile_run,
            convert.profile_run_to_pb,
        )
        return results_pb2.RecordProfileRunResponse(run=run, created=created)

    async def GetPruneRun(  # noqa: D102
        self, request: results_pb2.GetPruneRunRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.GetPruneRunResponse:
        require_request_id(request.request_id)
        stored = await asyncio.to_thread(self._store.get_prune_run, request.request_id)
        return results_pb2.GetPruneRunResponse(run=convert.prune_run_to_pb(stored))

    async def GetEvalRun(  # noqa: D102
        self, request: results_pb2.GetEvalRunRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.GetEvalRunResponse:
        require_request_id(request.request_id)
        stored = await asyncio.to_thread(self._store.get_eval_run, request.request_id)
        return results_pb2.GetEvalRunResponse(run=convert.eval_run_to_pb(stored))

    async def GetProfileRun(  # noqa: D102
        self, request: results_pb2.GetProfileRunRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.GetProfileRunResponse:
        require_request_id(request.request_id)
        stored = await asyncio.to_thread(self._store.get_profile_run, request.request_id)
        return results_pb2.GetProfileRunResponse(run=convert.profile_run_to_pb(stored))

    async def ListPruneRuns(  # noqa: D102
        self, request: results_pb2.ListPruneRunsRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.ListPruneRunsResponse:
        limit, offset = page_bounds(request.page_size, request.page_token)

        def page() -> tuple[list[results_pb2.PruneRun], str]:
            runs, next_offset = self._store.list_prune_runs(
                request.experiment, limit, offset, self._budget
            )
            return convert.runs_page(
                runs, convert.prune_run_to_pb, offset, next_offset, self._budget
            )

        runs, token = await asyncio.to_thread(page)
        return results_pb2.ListPruneRunsResponse(runs=runs, next_page_token=token)

    async def ListEvalRuns(  # noqa: D102
        self, request: results_pb2.ListEvalRunsRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.ListEvalRunsResponse:
        limit, offset = page_bounds(request.page_size, request.page_token)

        def page() -> tuple[list[results_pb2.EvalRun], str]:
            runs, next_offset = self._store.list_eval_runs(
                request.experiment, limit, offset, self._budget
            )
            return convert.runs_page(
                runs, convert.eval_run_to_pb, offset, next_offset, self._budget
            )

        runs, token = await asyncio.to_thread(page)
        return results_pb2.ListEvalRunsResponse(runs=runs, next_page_token=token)

    async def QueryView(  # noqa: D102
        self, request: results_pb2.QueryViewRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.QueryViewResponse:
        view = _view_name(request.view)
        view_filter = convert.view_filter_from_pb(request.filter)
        limit, offset = page_bounds(request.page_size, request.page_token)

        def query() -> tuple[results_pb2.Table, str]:
            table = self._store.query_view(view, view_filter)
            return convert.table_page(
                table, offset, limit if request.page_size else None, self._budget
            )

        table, token = await asyncio.to_thread(query)
        return results_pb2.QueryViewResponse(table=table, next_page_token=token)

    async def ExportView(  # noqa: D102
        self, request: results_pb2.ExportViewRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.ExportViewResponse:
        view = _view_name(request.view)
        fmt = convert.EXPORT_FORMATS.get(request.format)
        if fmt is None:
            raise InvalidArgumentError(
                "format", "must be EXPORT_FORMAT_CSV or EXPORT_FORMAT_PARQUET"
            )
        offset, fingerprint = convert.parse_export_token(request.page_token)
        view_filter = convert.view_filter_from_pb(request.filter)

        chunk = await asyncio.to_thread(
            self._store.export_chunk,
            view,
            view_filter,
            fmt,
            self._budget - convert.EXPORT_CHUNK_ROOM,
            offset,
            fingerprint,
        )
        return results_pb2.ExportViewResponse(
            data=chunk.data,
            media_type=EXPORT_MEDIA_TYPES[fmt],
            filename=f"{view}.{fmt}",
            next_page_token=convert.export_token(chunk.next_offset, chunk.fingerprint),
        )
