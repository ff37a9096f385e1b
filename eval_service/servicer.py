"""The EvalService servicer: converts messages and hands plain data to the job runner."""

from __future__ import annotations

from pathlib import Path

import grpc

from eval_service.eval_messages import (
    COLLECTION,
    config_from_spec,
    job_to_pb,
    normalized_spec,
    recorded_run_ids,
)
from eval_service.evaluator import validate_config, validate_profile
from eval_service.task_index import TaskIndex
from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc
from greenprune.core import checkpoint
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.jobs import JobRunner
from greenprune.core.message_records import to_json_dict
from greenprune.core.models import check_model_source
from greenprune.rpc.common_messages import check_submission, require_request_id
from greenprune.rpc.job_api import JobRpcs, job_rpc_methods


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
        self._jobs = JobRpcs(runner, COLLECTION, job_to_pb)
        self._tasks = tasks
        self._checkpoints_dir = checkpoints_dir
        self._models_root = models_root
        self._default_batch_size = default_batch_size
        self._default_repeats = default_repeats

    async def CreateEvalJob(
        self, request: eval_pb2.CreateEvalJobRequest, context: grpc.aio.ServicerContext
    ) -> eval_pb2.CreateEvalJobResponse:
        """Validates the spec and queues a job (or returns the job of the same request_id).

        With ``validate_only`` the spec is checked as for a job (a checkpoint_id need not exist
        yet) and the normalized spec comes back in a job without a name.
        """
        check_submission(request, recorded_run_ids(request.request_id, request.spec))
        if not request.validate_only:
            request_id = require_request_id(request.request_id)
        spec = normalized_spec(request.spec, self._default_batch_size, self._default_repeats)
        await self._validate(spec, request.validate_only)
        if request.validate_only:
            self._runner.check_lane(to_json_dict(spec))
            return eval_pb2.CreateEvalJobResponse(job=eval_pb2.EvalJob(spec=spec))
        job = await self._runner.submit(request_id, to_json_dict(spec), request.experiment)
        return eval_pb2.CreateEvalJobResponse(job=job_to_pb(job))

    async def _validate(self, spec: eval_pb2.EvalSpec, validate_only: bool) -> None:
        if spec.HasField("profile"):
            validate_profile(spec, self._checkpoints_dir, check_exists=not validate_only)
            return
        if spec.checkpoint_id:
            field = "spec.checkpoint_id"
            if validate_only:  # a checkpoint that is not written yet: its id's form only
                checkpoint.validate_checkpoint_id(spec.checkpoint_id, field)
            else:
                checkpoint.checkpoint_dir(self._checkpoints_dir, spec.checkpoint_id, field)
        elif spec.model:
            check_model_source(spec.model, self._models_root)
        else:
            raise InvalidArgumentError("spec.subject", "set checkpoint_id or model")
        config = config_from_spec(spec)
        if not config.tasks:
            raise InvalidArgumentError("spec.tasks", "name at least one task")
        sources = self._tasks.source_folders(config.task_sources)
        manager = await self._tasks.manager_for(config.tasks, config.task_paths, sources)
        validate_config(config, manager)

    async def CreateTaskSource(
        self, request: eval_pb2.CreateTaskSourceRequest, context: grpc.aio.ServicerContext
    ) -> eval_pb2.CreateTaskSourceResponse:
        """Checks a task source sent as content and stores it in the service's folder."""
        files = [(f.path, f.content) for f in request.task_source.files]
        stored, tasks = await self._tasks.store_source(files)
        return eval_pb2.CreateTaskSourceResponse(
            task_source=eval_pb2.TaskSource(name=stored.name, tasks=tasks)
        )

    GetEvalJob, ListEvalJobs, CancelEvalJob, WatchEvalJob = job_rpc_methods(
        eval_pb2.GetEvalJobResponse,
        eval_pb2.ListEvalJobsResponse,
        eval_pb2.CancelEvalJobResponse,
        eval_pb2.WatchEvalJobResponse,
    )
