"""Entry point of the EvalService: ``python -m eval_service.server``."""

from __future__ import annotations

from typing import Any

from eval_service.eval_messages import COLLECTION, eval_run_id, spec_from_stored
from eval_service.evaluator import resolve_device
from eval_service.servicer import EvalServicer
from eval_service.task_index import TaskIndex
from eval_service.tasks.sources import FOLDER_NAME
from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc
from greenprune.api.results.v1 import results_pb2
from greenprune.core.jobs import Job, JobRunner
from greenprune.core.jobs.ray_backend import backend_from_settings
from greenprune.core.message_records import from_json_dict
from greenprune.core.settings import EvalSettings
from greenprune.rpc.reporting import ResultsReporter
from greenprune.rpc.server import Cleanup, ServiceBinding, serve

SERVICE_NAME = eval_pb2.DESCRIPTOR.services_by_name["EvalService"].full_name
WORKER = "eval_service.worker:run"
WARM = "eval_service.worker:warm"


def eval_runs_to_pb(job: Job) -> list[results_pb2.EvalRun]:
    """Returns one EvalRun per task of a finished job, keyed ``{request_id}/{task}``."""
    result = from_json_dict(job.result, eval_pb2.EvalResult)
    spec = spec_from_stored(job.spec)
    return [
        results_pb2.EvalRun(
            request_id=eval_run_id(job.request_id, task.task),
            experiment=job.experiment,
            checkpoint_id=spec.checkpoint_id,
            model=result.model,
            spec=spec,
            result=task,
            versions=result.versions,
            job_name=f"{COLLECTION}/{job.id}",
        )
        for task in result.tasks
    ]


def profile_run_to_pb(job: Job) -> results_pb2.ProfileRun | None:
    """The ProfileRun of a finished profile job (None for an lm-eval job)."""
    spec = spec_from_stored(job.spec)
    if not spec.HasField("profile"):
        return None
    result = from_json_dict(job.result, eval_pb2.EvalResult)
    return results_pb2.ProfileRun(
        request_id=job.request_id,
        experiment=job.experiment,
        model=result.model,
        spec=spec,
        result=result.profile,
        job_name=f"{COLLECTION}/{job.id}",
    )


def lane_of(spec: dict[str, Any]) -> str:
    """One job at a time per device, so no two energy windows overlap on one device."""
    return resolve_device(spec_from_stored(spec).device)


async def build(settings: EvalSettings) -> tuple[list[ServiceBinding], Cleanup]:
    """Starts the job runner and returns the service binding and its cleanup."""
    assert settings.checkpoints_dir is not None
    reporter = ResultsReporter(settings.results_address, settings.token)

    async def report(job: Job) -> None:
        profile = profile_run_to_pb(job)
        if profile is not None:
            request = results_pb2.RecordProfileRunRequest(run=profile)
            await reporter.call(lambda stub: stub.RecordProfileRun(request, timeout=30))
            return
        runs = results_pb2.BatchRecordEvalRunsRequest(runs=eval_runs_to_pb(job))
        await reporter.call(lambda stub: stub.BatchRecordEvalRuns(runs, timeout=30))

    runner = JobRunner(
        state_dir=settings.state_dir / "eval",
        worker=settings.job_worker or WORKER,
        context={
            "checkpoints_dir": str(settings.checkpoints_dir),
            "models_root": str(settings.models_root),
            "task_sources_dir": str(settings.state_dir / FOLDER_NAME),
        },
        lane_of=lane_of,
        max_queued=settings.max_queued_jobs,
        on_succeeded=report,
        warm=None if settings.job_worker else WARM,
        backend=backend_from_settings(settings),
        warm_lanes=(resolve_device("auto"),) if settings.warm_job_process else (),
    )
    tasks = TaskIndex(
        settings.task_roots, settings.allow_task_code, settings.state_dir / FOLDER_NAME
    )
    await tasks.warm()
    await runner.start()

    async def cleanup() -> None:
        await runner.stop()
        await reporter.close()

    servicer = EvalServicer(
        runner,
        tasks,
        settings.checkpoints_dir,
        settings.models_root,
        settings.default_batch_size,
        settings.default_repeats,
    )
    return [
        ServiceBinding(SERVICE_NAME, eval_pb2_grpc.add_EvalServiceServicer_to_server, servicer)
    ], cleanup


def main() -> None:
    """Runs the EvalService until SIGTERM or SIGINT."""
    settings = EvalSettings()

    async def factory() -> tuple[list[ServiceBinding], Cleanup]:
        return await build(settings)

    serve(factory, settings)


if __name__ == "__main__":
    main()
