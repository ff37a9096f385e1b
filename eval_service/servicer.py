"""The EvalService servicer: converts messages and hands plain data to the job runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from eval_service.convert import COLLECTION, job_to_pb, spec_from_pb, stored_spec
from eval_service.evaluator import validate_config
from eval_service.task_index import TaskIndex
from greenprune import checkpoint
from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc
from greenprune.errors import InvalidArgumentError
from greenprune.models import check_model_source
from greenprune.rpc.convert import (
    job_id_from_name,
    next_page_token,
    page_bounds,
    require_request_id,
)
from greenprune.rpc.jobs import JobRunner


class EvalServicer(eval_pb2_grpc.EvalServiceServicer):
    """Serves eval jobs.

    Args:
        runner: The job runner whose worker evaluates.
        tasks: The task index used to validate task names.
        checkpoints_dir: The folder the pruning service writes checkpoints to.
        models_root: The folder local models must live under.
        default_batch_size: The batch size when a request leaves it unset.
        default_repeats: The repeats when a request leaves them unset.
    """

    def __init__(
        self,
        runner: JobRunner,
        tasks: TaskIndex,
        checkpoints_dir: Path,
        models_root: Path,
        default_batch_size: int = 8,
        default_repeats: int = 3,
    ) -> None:
        self._runner = runner
        self._tasks = tasks
        self._checkpoints_dir = checkpoints_dir
        self._models_root = models_root
        self._default_batch_size = default_batch_size
        self._default_repeats = default_repeats

    async def CreateEvalJob(
        self, request: eval_pb2.CreateEvalJobRequest, context: grpc.aio.ServicerContext
    ) -> eval_pb2.CreateEvalJobResponse:
        """Validates the spec and queues a job (or returns the job of the same request_id)."""
        request_id = require_request_id(request.request_id)
        subject = spec_from_pb(request.spec, self._default_batch_size, self._default_repeats)
        if subject["checkpoint_id"]:
            checkpoint.checkpoint_dir(self._checkpoints_dir, subject["checkpoint_id"])
        elif subject["model"]:
            check_model_source(subject["model"], self._models_root)
        else:
            raise InvalidArgumentError("spec.subject", "set checkpoint_id or model")
        config = subject["config"]
        if not config.tasks:
            raise InvalidArgumentError("spec.tasks", "name at least one task")
        validate_config(config, await self._tasks.manager_for(config.tasks, config.task_paths))
        job = await self._runner.submit(request_id, stored_spec(subject), request.experiment)
        return eval_pb2.CreateEvalJobResponse(job=job_to_pb(job))

    async def GetEvalJob(
        self, request: eval_pb2.GetEvalJobRequest, context: grpc.aio.ServicerContext
    ) -> eval_pb2.GetEvalJobResponse:
        """Returns one job."""
        job = self._runner.get(job_id_from_name(request.name, COLLECTION))
        return eval_pb2.GetEvalJobResponse(job=job_to_pb(job))

    async def ListEvalJobs(
        self, request: eval_pb2.ListEvalJobsRequest, context: grpc.aio.ServicerContext
    ) -> eval_pb2.ListEvalJobsResponse:
        """Returns a page of jobs, newest first."""
        limit, offset = page_bounds(request.page_size, request.page_token)
        jobs = self._runner.list(request.experiment, limit, offset)
        return eval_pb2.ListEvalJobsResponse(
            jobs=[job_to_pb(job) for job in jobs],
            next_page_token=next_page_token(offset, limit, len(jobs)),
        )

    async def CancelEvalJob(
        self, request: eval_pb2.CancelEvalJobRequest, context: grpc.aio.ServicerContext
    ) -> eval_pb2.CancelEvalJobResponse:
        """Cancels a job."""
        job = await self._runner.cancel(job_id_from_name(request.name, COLLECTION))
        return eval_pb2.CancelEvalJobResponse(job=job_to_pb(job))

    async def WatchEvalJob(
        self, request: eval_pb2.WatchEvalJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[eval_pb2.WatchEvalJobResponse]:
        """Streams the job on every change until it is done."""
        async for job in self._runner.watch(job_id_from_name(request.name, COLLECTION)):
            yield eval_pb2.WatchEvalJobResponse(job=job_to_pb(job))
