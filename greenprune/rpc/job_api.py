"""The job RPCs of both job services, described once: callables for clients, one servicer core.

Both services expose Create/Get/List/Cancel/Watch for their job type (AIP-151). Clients hold a
:class:`JobApi` (the stub's callables and request types) instead of RPC names; servicers hand
Get/List/Cancel/Watch to :class:`JobRpcs`, which converts at the boundary once for both.
"""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc
from greenprune.api.pruning.v1 import pruning_pb2, pruning_pb2_grpc
from greenprune.core.jobs import Job, JobRunner
from greenprune.rpc.common_messages import job_id_from_name, next_page_token, page_bounds


@dataclass(frozen=True)
class JobApi:
    """The RPCs of one job type, as callables on a stub.

    Attributes:
        service: The service's short name (``pruning`` or ``eval``).
        stub: Builds the stub on a channel.
        create, get, list, cancel, watch: Take a stub, return its RPC.
        get_request, list_request, cancel_request, watch_request: The request types.
    """

    service: str
    stub: Callable[[grpc.aio.Channel], Any]
    create: Callable[[Any], Any]
    get: Callable[[Any], Any]
    list: Callable[[Any], Any]
    cancel: Callable[[Any], Any]
    watch: Callable[[Any], Any]
    get_request: Callable[..., Any]
    list_request: Callable[..., Any]
    cancel_request: Callable[..., Any]
    watch_request: Callable[..., Any]


def _job_api(
    service: str, stub: Callable[[grpc.aio.Channel], Any], messages: Any, kind: str
) -> JobApi:
    """The JobApi of the AIP-151 RPCs ``{Create,Get,Cancel,Watch}{kind}`` and ``List{kind}s``."""

    def rpc(name: str) -> Callable[[Any], Any]:
        return operator.attrgetter(name)

    def request(name: str) -> Callable[..., Any]:
        return getattr(messages, f"{name}Request")

    return JobApi(
        service,
        stub,
        create=rpc(f"Create{kind}"),
        get=rpc(f"Get{kind}"),
        list=rpc(f"List{kind}s"),
        cancel=rpc(f"Cancel{kind}"),
        watch=rpc(f"Watch{kind}"),
        get_request=request(f"Get{kind}"),
        list_request=request(f"List{kind}s"),
        cancel_request=request(f"Cancel{kind}"),
        watch_request=request(f"Watch{kind}"),
    )


PRUNE_JOBS = _job_api("pruning", pruning_pb2_grpc.PruningServiceStub, pruning_pb2, "PruneJob")
EVAL_JOBS = _job_api("eval", eval_pb2_grpc.EvalServiceStub, eval_pb2, "EvalJob")


class JobRpcs:
    """Get/List/Cancel/Watch of one job collection, returning job messages.

    Args:
        runner: The service's job runner.
        collection: The resource collection in job names (``pruneJobs``).
        to_pb: Converts a job record to the service's job message.
    """

    def __init__(self, runner: JobRunner, collection: str, to_pb: Callable[[Job], Any]) -> None:
        self._runner = runner
        self._collection = collection
        self._to_pb = to_pb

    def _id(self, name: str) -> str:
        return job_id_from_name(name, self._collection)

    def get(self, name: str) -> Any:
        """The job called ``name``."""
        return self._to_pb(self._runner.get(self._id(name)))

    def list(self, request: Any) -> tuple[list[Any], str]:
        """A page of jobs, newest first, and the next page's token."""
        limit, offset = page_bounds(request.page_size, request.page_token)
        jobs = self._runner.list(request.experiment, limit, offset)
        return [self._to_pb(job) for job in jobs], next_page_token(offset, limit, len(jobs))

    async def cancel(self, name: str) -> Any:
        """Cancels the job called ``name`` and returns it."""
        return self._to_pb(await self._runner.cancel(self._id(name)))

    async def watch(self, name: str) -> AsyncIterator[Any]:
        """The job on every change, until it is done."""
        async for job in self._runner.watch(self._id(name)):
            yield self._to_pb(job)


def job_rpc_methods(
    get_response: type, list_response: type, cancel_response: type, watch_response: type
) -> tuple[Callable[..., Any], ...]:
    """Get/List/Cancel/Watch servicer methods for a servicer whose ``_jobs`` is a JobRpcs.

    Usage, in a servicer class body::

        GetXJob, ListXJobs, CancelXJob, WatchXJob = job_rpc_methods(
            GetXJobResponse, ListXJobsResponse, CancelXJobResponse, WatchXJobResponse
        )
    """

    async def get(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Returns one job."""
        return get_response(job=self._jobs.get(request.name))

    async def list_jobs(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Returns a page of jobs, newest first."""
        jobs, next_token = self._jobs.list(request)
        return list_response(jobs=jobs, next_page_token=next_token)

    async def cancel(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Cancels a job (a cancelled job writes nothing) and returns it."""
        return cancel_response(job=await self._jobs.cancel(request.name))

    async def watch(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Streams the job on every change until it is done."""
        async for job in self._jobs.watch(request.name):
            yield watch_response(job=job)

    return get, list_jobs, cancel, watch
