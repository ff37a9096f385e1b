"""The PruningService servicer: converts messages and hands plain data to the job runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from greenprune import checkpoint
from greenprune.api.pruning.v1 import pruning_pb2, pruning_pb2_grpc
from greenprune.rpc.convert import (
    job_id_from_name,
    next_page_token,
    page_bounds,
    require_request_id,
    timestamp,
)
from greenprune.rpc.jobs import JobRunner
from pruning_service.convert import COLLECTION, config_to_dict, job_to_pb, spec_from_pb
from pruning_service.pruner import validate_config


class PruningServicer(pruning_pb2_grpc.PruningServiceServicer):
    """Serves prune jobs.

    Args:
        runner: The job runner whose worker prunes.
        models_root: The folder local models must live under.
        checkpoints_dir: The folder checkpoints are written to.
    """

    def __init__(self, runner: JobRunner, models_root: Path, checkpoints_dir: Path) -> None:
        self._runner = runner
        self._models_root = models_root
        self._checkpoints_dir = checkpoints_dir

    async def CreatePruneJob(
        self, request: pruning_pb2.CreatePruneJobRequest, context: grpc.aio.ServicerContext
    ) -> pruning_pb2.CreatePruneJobResponse:
        """Validates the spec and queues a job (or returns the job of the same request_id)."""
        request_id = require_request_id(request.request_id)
        config = spec_from_pb(request.spec)
        await asyncio.to_thread(validate_config, config, self._models_root)
        job = await self._runner.submit(request_id, config_to_dict(config), request.experiment)
        return pruning_pb2.CreatePruneJobResponse(job=job_to_pb(job))

    async def GetPruneJob(
        self, request: pruning_pb2.GetPruneJobRequest, context: grpc.aio.ServicerContext
    ) -> pruning_pb2.GetPruneJobResponse:
        """Returns one job."""
        job = self._runner.get(job_id_from_name(request.name, COLLECTION))
        return pruning_pb2.GetPruneJobResponse(job=job_to_pb(job))

    async def ListPruneJobs(
        self, request: pruning_pb2.ListPruneJobsRequest, context: grpc.aio.ServicerContext
    ) -> pruning_pb2.ListPruneJobsResponse:
        """Returns a page of jobs, newest first."""
        limit, offset = page_bounds(request.page_size, request.page_token)
        jobs = self._runner.list(request.experiment, limit, offset)
        return pruning_pb2.ListPruneJobsResponse(
            jobs=[job_to_pb(job) for job in jobs],
            next_page_token=next_page_token(offset, limit, len(jobs)),
        )

    async def CancelPruneJob(
        self, request: pruning_pb2.CancelPruneJobRequest, context: grpc.aio.ServicerContext
    ) -> pruning_pb2.CancelPruneJobResponse:
        """Cancels a job; its checkpoint is never written."""
        job = await self._runner.cancel(job_id_from_name(request.name, COLLECTION))
        return pruning_pb2.CancelPruneJobResponse(job=job_to_pb(job))

    async def WatchPruneJob(
        self, request: pruning_pb2.WatchPruneJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pruning_pb2.WatchPruneJobResponse]:
        """Streams the job on every change until it is done."""
        async for job in self._runner.watch(job_id_from_name(request.name, COLLECTION)):
            yield pruning_pb2.WatchPruneJobResponse(job=job_to_pb(job))

    async def GetCheckpoint(
        self, request: pruning_pb2.GetCheckpointRequest, context: grpc.aio.ServicerContext
    ) -> pruning_pb2.GetCheckpointResponse:
        """Returns a checkpoint's manifest."""
        path = checkpoint.checkpoint_dir(self._checkpoints_dir, request.checkpoint_id)
        manifest_path = path / checkpoint.MANIFEST_NAME
        return pruning_pb2.GetCheckpointResponse(
            checkpoint_id=request.checkpoint_id,
            manifest_json=manifest_path.read_text(),
            create_time=timestamp(manifest_path.stat().st_mtime),
        )
