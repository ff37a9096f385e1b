"""The PruningService servicer: converts messages and hands plain data to the job runner."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from greenprune.api.pruning.v1 import pruning_pb2, pruning_pb2_grpc
from greenprune.core import checkpoint
from greenprune.core.jobs import JobRunner
from greenprune.rpc.common_messages import check_submission, require_request_id, timestamp
from greenprune.rpc.job_api import JobRpcs, job_rpc_methods
from pruning_service import recovery
from pruning_service.prune_messages import (
    COLLECTION,
    config_from_spec,
    job_to_pb,
    normalized_spec,
    stored_spec,
)
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
        self._jobs = JobRpcs(runner, COLLECTION, job_to_pb)
        self._models_root = models_root
        self._checkpoints_dir = checkpoints_dir

    async def CreatePruneJob(
        self, request: pruning_pb2.CreatePruneJobRequest, context: grpc.aio.ServicerContext
    ) -> pruning_pb2.CreatePruneJobResponse:
        """Validates the spec and queues a job (or returns the job of the same request_id).

        With ``validate_only`` the spec is only checked, and comes back in a job without a name.
        """
        check_submission(request)
        if not request.validate_only:
            request_id = require_request_id(request.request_id)
        spec = normalized_spec(request.spec)
        skeleton = await asyncio.to_thread(
            validate_config, config_from_spec(spec), self._models_root
        )
        await asyncio.to_thread(recovery.validate_spec, spec, self._models_root, skeleton)
        if request.validate_only:
            self._runner.check_lane(stored_spec(spec))
            return pruning_pb2.CreatePruneJobResponse(job=pruning_pb2.PruneJob(spec=spec))
        job = await self._runner.submit(request_id, stored_spec(spec), request.experiment)
        return pruning_pb2.CreatePruneJobResponse(job=job_to_pb(job))

    GetPruneJob, ListPruneJobs, CancelPruneJob, WatchPruneJob = job_rpc_methods(
        pruning_pb2.GetPruneJobResponse,
        pruning_pb2.ListPruneJobsResponse,
        pruning_pb2.CancelPruneJobResponse,
        pruning_pb2.WatchPruneJobResponse,
    )

    async def GetCheckpoint(
        self, request: pruning_pb2.GetCheckpointRequest, context: grpc.aio.ServicerContext
    ) -> pruning_pb2.GetCheckpointResponse:
        """Returns a checkpoint's manifest."""
        path = checkpoint.checkpoint_dir(self._checkpoints_dir, request.checkpoint_id)
        manifest = await asyncio.to_thread(checkpoint.read_manifest_file, path)
        return pruning_pb2.GetCheckpointResponse(
            checkpoint_id=request.checkpoint_id,
            manifest_json=manifest.text,
            create_time=timestamp(manifest.modified),
        )
