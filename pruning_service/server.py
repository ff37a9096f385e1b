"""Entry point of the PruningService: ``python -m pruning_service.server``."""

from __future__ import annotations

import asyncio

from greenprune.api.pruning.v1 import pruning_pb2, pruning_pb2_grpc
from greenprune.api.results.v1 import results_pb2
from greenprune.core import checkpoint
from greenprune.core.jobs import Job, JobRunner
from greenprune.core.jobs.ray_backend import backend_from_settings
from greenprune.core.message_records import from_json_dict
from greenprune.core.settings import PruningSettings
from greenprune.rpc.reporting import ResultsReporter
from greenprune.rpc.server import Cleanup, ServiceBinding, serve
from pruning_service.prune_messages import COLLECTION, spec_from_stored
from pruning_service.pruner import warm_validation
from pruning_service.servicer import PruningServicer

SERVICE_NAME = pruning_pb2.DESCRIPTOR.services_by_name["PruningService"].full_name
WORKER = "pruning_service.worker:run"
WARM = "pruning_service.worker:warm"


def prune_run_to_pb(job: Job) -> results_pb2.PruneRun:
    """Returns the PruneRun the ResultsService records for a finished job."""
    return results_pb2.PruneRun(
        request_id=job.request_id,
        experiment=job.experiment,
        spec=spec_from_stored(job.spec),
        result=from_json_dict(job.result, pruning_pb2.PruneResult),
        job_name=f"{COLLECTION}/{job.id}",
    )


async def build(settings: PruningSettings) -> tuple[list[ServiceBinding], Cleanup]:
    """Starts the job runner and returns the service binding and its cleanup."""
    assert settings.checkpoints_dir is not None
    settings.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.remove_stale_temporaries(settings.checkpoints_dir)
    reporter = ResultsReporter(settings.results_address, settings.token)

    async def report(job: Job) -> None:
        run = prune_run_to_pb(job)
        await reporter.call(
            lambda stub: stub.RecordPruneRun(results_pb2.RecordPruneRunRequest(run=run), timeout=30)
        )

    runner = JobRunner(
        state_dir=settings.state_dir / "pruning",
        worker=settings.job_worker or WORKER,
        context={
            "checkpoints_dir": str(settings.checkpoints_dir),
            "models_root": str(settings.models_root),
        },
        max_queued=settings.max_queued_jobs,
        on_succeeded=report,
        warm=None if settings.job_worker else WARM,
        backend=backend_from_settings(settings),
        warm_lanes=("default",) if settings.warm_job_process else (),
    )
    if settings.warm_job_process:
        await asyncio.gather(runner.start(), asyncio.to_thread(warm_validation))
    else:
        await runner.start()

    async def cleanup() -> None:
        await runner.stop()
        await reporter.close()

    servicer = PruningServicer(runner, settings.models_root, settings.checkpoints_dir)
    binding = ServiceBinding(
        SERVICE_NAME, pruning_pb2_grpc.add_PruningServiceServicer_to_server, servicer
    )
    return [binding], cleanup


def main() -> None:
    """Runs the PruningService until SIGTERM or SIGINT."""
    settings = PruningSettings()

    async def factory() -> tuple[list[ServiceBinding], Cleanup]:
        return await build(settings)

    serve(factory, settings)


if __name__ == "__main__":
    main()
