"""Finished work is never thrown away: reporting retries until the ResultsService is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from greenprune.core.jobs import FAILED, RUNNING, SUCCEEDED, Job, JobRunner


class _Unavailable(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down"
        )


async def _wait_state(runner: JobRunner, job_id: str, state: str, timeout: float = 60) -> Job:
    async def wait() -> Job:
        async for job in runner.watch(job_id):
            if job.state == state:
                return job
        return runner.get(job_id)

    return await asyncio.wait_for(wait(), timeout)


def test_a_long_results_outage_delays_the_report_but_loses_nothing(tmp_path: Path) -> None:
    """Reporting fails for longer than any fixed window; the job retries, then succeeds once."""
    calls: list[str] = []
    outage = {"failures": 6}

    async def report(job: Job) -> None:
        calls.append(job.id)
        if outage["failures"] > 0:
            outage["failures"] -= 1
            raise _Unavailable()

    async def scenario() -> None:
        runner = JobRunner(
            state_dir=tmp_path,
            worker="tests.rpc.workers:echo",
            on_succeeded=report,
            report_backoff=(0.05, 0.1),
        )
        await runner.start()
        job = await runner.submit("r-1", {"x": 1})
        stages: list[str] = []
        async for seen in runner.watch(job.id):
            stages.append(seen.stage)
        done = runner.get(job.id)
        assert done.state == SUCCEEDED, (done.state, done.error_message)
        assert any(stage.startswith("reporting (retry") for stage in stages)
        assert done.result is not None and done.result["echo"] == {"x": 1}
        await runner.stop()

    asyncio.run(scenario())
    assert len(calls) == 7  # six refused attempts, then the one that was recorded


def test_a_report_pending_at_shutdown_is_resumed_on_start(tmp_path: Path) -> None:
    up = {"value": False}
    recorded: list[str] = []

    async def report(job: Job) -> None:
        if not up["value"]:
            raise _Unavailable()
        recorded.append(job.id)

    async def first() -> str:
        runner = JobRunner(
            state_dir=tmp_path,
            worker="tests.rpc.workers:echo",
            on_succeeded=report,
            report_backoff=(0.05, 0.1),
        )
        await runner.start()
        job = await runner.submit("r-2", {"x": 2})

        async def retrying() -> None:
            async for seen in runner.watch(job.id):
                if seen.stage.startswith("reporting (retry"):
                    return

        await asyncio.wait_for(retrying(), 60)
        await runner.stop()
        return job.id

    async def second(job_id: str) -> None:
        up["value"] = True
        runner = JobRunner(state_dir=tmp_path, worker="tests.rpc.workers:echo", on_succeeded=report)
        assert runner.table.get(job_id).state == RUNNING  # not FAILED "interrupted"
        await runner.start()
        done = await _wait_state(runner, job_id, SUCCEEDED)
        assert done.state == SUCCEEDED
        await runner.stop()

    job_id = asyncio.run(first())
    asyncio.run(second(job_id))
    assert recorded == [job_id]


def test_a_permanent_reporting_error_still_fails_the_job(tmp_path: Path) -> None:
    async def report(job: Job) -> None:
        raise ValueError("the record is malformed")

    async def scenario() -> None:
        runner = JobRunner(state_dir=tmp_path, worker="tests.rpc.workers:echo", on_succeeded=report)
        await runner.start()
        job = await runner.submit("r-3", {})
        done = await _wait_state(runner, job.id, FAILED)
        assert "malformed" in (done.error_message or "")
        await runner.stop()

    asyncio.run(scenario())


def test_resubmitting_a_succeeded_job_reports_it_again(tmp_path: Path) -> None:
    """The results database was lost: rerunning the experiment re-reports instead of failing."""
    recorded: list[str] = []

    async def report(job: Job) -> None:
        recorded.append(job.id)

    async def scenario() -> None:
        runner = JobRunner(state_dir=tmp_path, worker="tests.rpc.workers:echo", on_succeeded=report)
        await runner.start()
        job = await runner.submit("r-4", {"x": 4})
        await _wait_state(runner, job.id, SUCCEEDED)
        again = await runner.submit("r-4", {"x": 4})
        assert again.id == job.id
        done = await _wait_state(runner, job.id, SUCCEEDED)
        assert done.result is not None and done.result["echo"] == {"x": 4}
        await runner.stop()

    asyncio.run(scenario())
    assert len(recorded) == 2 and len(set(recorded)) == 1
