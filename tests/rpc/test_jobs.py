"""The persisted job runner: children, cancel, idempotency, restart."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from greenprune.core.errors import NotFoundError, ResourceExhaustedError
from greenprune.core.jobs import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    JobRunner,
    JobTable,
)
from greenprune.core.jobs.local_backend import LocalBackend


async def _wait_done(runner: JobRunner, job_id: str, timeout: float = 60) -> None:
    async def wait() -> None:
        async for job in runner.watch(job_id):
            if job.done:
                return

    await asyncio.wait_for(wait(), timeout)


def test_job_runs_in_a_child_and_reports_progress(tmp_path: Path) -> None:
    async def scenario() -> None:
        runner = JobRunner(state_dir=tmp_path, worker="tests.rpc.workers:echo")
        await runner.start()
        job = await runner.submit("req-1", {"x": 1})
        assert job.state == QUEUED
        stages = []
        async for seen in runner.watch(job.id):
            stages.append(seen.stage)
        done = runner.get(job.id)
        assert done.state == SUCCEEDED and done.progress == 1.0
        assert done.result["echo"] == {"x": 1}
        assert done.result["pid"] != os.getpid()
        assert Path(done.result["workdir"]).is_dir()
        assert stages[-1] == "done"
        await runner.stop()

    asyncio.run(scenario())


def test_repeated_request_id_returns_the_same_job(tmp_path: Path) -> None:
    async def scenario() -> None:
        runner = JobRunner(state_dir=tmp_path, worker="tests.rpc.workers:echo")
        await runner.start()
        first = await runner.submit("same", {"x": 1})
        second = await runner.submit("same", {"x": 1})
        assert first.id == second.id
        await _wait_done(runner, first.id)
        third = await runner.submit("same", {"x": 1})
        assert third.id == first.id and third.state == SUCCEEDED
        assert runner.counts() == {SUCCEEDED: 1}
        await runner.stop()

    asyncio.run(scenario())


def test_domain_error_fails_the_job_with_its_code(tmp_path: Path) -> None:
    async def scenario() -> None:
        runner = JobRunner(state_dir=tmp_path, worker="tests.rpc.workers:invalid")
        await runner.start()
        job = await runner.submit("bad", {})
        await _wait_done(runner, job.id)
        failed = runner.get(job.id)
        assert failed.state == FAILED
        assert failed.error_code == "INVALID_ARGUMENT"
        assert failed.error_message == "spec.ratio: must be < 0.9"
        # A failed request_id gets a fresh attempt.
        retry = await runner.submit("bad", {})
        assert retry.id != job.id
        await _wait_done(runner, retry.id)
        await runner.stop()

    asyncio.run(scenario())


def test_a_crashing_child_fails_the_job_not_the_runner(tmp_path: Path) -> None:
    async def scenario() -> None:
        runner = JobRunner(state_dir=tmp_path, worker="tests.rpc.workers:crash")
        await runner.start()
        job = await runner.submit("crash", {})
        await _wait_done(runner, job.id)
        failed = runner.get(job.id)
        assert failed.state == FAILED and "exit code 137" in failed.error_message
        await runner.stop()

    asyncio.run(scenario())


def test_cancel_terminates_the_child(tmp_path: Path) -> None:
    async def scenario() -> None:
        runner = JobRunner(state_dir=tmp_path, worker="tests.rpc.workers:slow")
        await runner.start()
        job = await runner.submit("slow", {"seconds": 30})
        pid_file = tmp_path / "jobs" / job.id / "pid"
        async for seen in runner.watch(job.id):
            if seen.stage == "sleeping":
                break
        pid = int(pid_file.read_text())
        cancelled = await runner.cancel(job.id)
        assert cancelled.state == CANCELLED
        assert cancelled.error_message == "cancelled by a client"
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        await runner.stop()

    asyncio.run(scenario())


def test_warm_lane_runs_each_job_in_a_child_warmed_before_it_arrived(tmp_path: Path) -> None:
    async def scenario() -> None:
        runner = JobRunner(
            state_dir=tmp_path,
            worker="tests.rpc.workers:report_warm",
            warm="tests.rpc.workers:record_warm",
            warm_lanes=("default",),
        )
        await runner.start()  # returns once the warm child is ready
        submitted = time.time()
        first = await runner.submit("one", {})
        await _wait_done(runner, first.id)
        second = await runner.submit("two", {})
        await _wait_done(runner, second.id)
        results = [runner.get(job.id).result for job in (first, second)]
        assert results[0]["warmed"]["at"] < submitted
        for result in results:
            assert result["warmed"]["lane"] == "default"
            assert result["warmed"]["pid"] == result["pid"] != os.getpid()
        assert results[0]["pid"] != results[1]["pid"]  # one job per child
        await runner.stop()
        assert multiprocessing.active_children() == []

    asyncio.run(scenario())


@pytest.mark.parametrize("warm_lanes", [("default",), ()], ids=["warm lane", "cold lane"])
def test_a_reusing_backend_runs_the_next_job_in_the_child_that_ended_well(
    tmp_path: Path, warm_lanes: tuple[str, ...]
) -> None:
    async def scenario() -> None:
        runner = JobRunner(
            state_dir=tmp_path,
            worker="tests.rpc.workers:echo_or_refuse",
            warm="tests.rpc.workers:record_warm",
            warm_lanes=warm_lanes,
            backend=LocalBackend(reuse=True),
        )
        await runner.start()
        done = []
        for name, spec in [("a", {}), ("b", {}), ("refused", {"refuse": True}), ("c", {})]:
            job = await runner.submit(name, spec)
            await _wait_done(runner, job.id)
            done.append(runner.get(job.id))
        first, second, refused, third = done
        assert refused.state == FAILED and "refused on purpose" in refused.error_message
        # One child ran a and b, in that order; a child whose job failed is not reused.
        assert first.result["pid"] == second.result["pid"] != os.getpid()
        assert second.result["ran"] == [first.id, second.id]
        assert third.result["pid"] != first.result["pid"]
        assert third.result["ran"] == [third.id]
        await runner.stop()
        assert multiprocessing.active_children() == []

    asyncio.run(scenario())


def test_a_failed_warm_up_fails_the_job_with_its_message(tmp_path: Path) -> None:
    async def scenario() -> None:
        runner = JobRunner(
            state_dir=tmp_path,
            worker="tests.rpc.workers:echo",
            warm="tests.rpc.workers:broken_warm",
            warm_lanes=("default",),
        )
        await runner.start()
        job = await runner.submit("warm-broken", {})
        await _wait_done(runner, job.id)
        failed = runner.get(job.id)
        assert failed.state == FAILED
        assert failed.error_message == "ImportError: no module named 'missing_library'"
        await runner.stop()

    asyncio.run(scenario())


def test_cancel_terminates_a_warm_child_and_the_lane_warms_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        runner = JobRunner(
            state_dir=tmp_path,
            worker="tests.rpc.workers:slow",
            warm="tests.rpc.workers:record_warm",
            warm_lanes=("default",),
        )
        await runner.start()
        job = await runner.submit("slow", {"seconds": 30})
        async for seen in runner.watch(job.id):
            if seen.stage == "sleeping":
                break
        pid = int((tmp_path / "jobs" / job.id / "pid").read_text())
        assert (await runner.cancel(job.id)).state == CANCELLED
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        after = await runner.submit("after", {"seconds": 0.1})
        await _wait_done(runner, after.id)
        assert runner.get(after.id).state == SUCCEEDED
        await runner.stop()
        assert multiprocessing.active_children() == []

    asyncio.run(scenario())


def test_queue_limit_and_unknown_job(tmp_path: Path) -> None:
    async def scenario() -> None:
        runner = JobRunner(state_dir=tmp_path, worker="tests.rpc.workers:slow", max_queued=1)
        await runner.start()
        await runner.submit("a", {"seconds": 5})
        await asyncio.sleep(0)  # let "a" start so the queue is empty again
        await runner.submit("b", {"seconds": 5})
        with pytest.raises(ResourceExhaustedError, match=r"the job queue is full \(1 waiting\)"):
            await runner.submit("c", {"seconds": 5})
        with pytest.raises(NotFoundError, match="job 'nope' not found"):
            runner.get("nope")
        await runner.stop()

    asyncio.run(scenario())


def test_running_job_of_a_killed_process_is_failed_interrupted_after_restart(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, pathlib, sys
        sys.path.insert(0, {str(Path.cwd())!r})
        from greenprune.core.jobs import JobRunner

        async def main():
            state = pathlib.Path({str(tmp_path)!r})
            runner = JobRunner(state_dir=state, worker="tests.rpc.workers:slow")
            await runner.start()
            job = await runner.submit("long", {{"seconds": 60}})
            print(job.id, flush=True)
            await asyncio.sleep(3600)

        asyncio.run(main())
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    job_id = proc.stdout.readline().strip()
    table = JobTable(tmp_path / "jobs.sqlite")
    deadline = time.time() + 60
    while table.get(job_id).state != RUNNING and time.time() < deadline:
        time.sleep(0.1)
    assert table.get(job_id).state == RUNNING
    table.close()
    pid_file = tmp_path / "jobs" / job_id / "pid"
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The job's child dies with its server (parent-death signal), so no job outlives it.
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)

    async def restart() -> None:
        runner = JobRunner(state_dir=tmp_path, worker="tests.rpc.workers:slow")
        await runner.start()
        job = runner.get(job_id)
        assert job.state == FAILED
        assert job.error_message == INTERRUPTED
        await runner.stop()

    asyncio.run(restart())


def test_children_do_not_rerun_the_parents_main_script(tmp_path: Path) -> None:
    main_script = tmp_path / "main_script.py"
    marker = tmp_path / "main-ran"
    main_script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    module = types.ModuleType("__main__")
    module.__file__ = str(main_script)
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = module  # as Streamlit's AppTest leaves it
    try:

        async def scenario() -> None:
            runner = JobRunner(state_dir=tmp_path / "state", worker="tests.rpc.workers:echo")
            await runner.start()
            job = await runner.submit("main", {})
            await _wait_done(runner, job.id)
            assert runner.get(job.id).state == SUCCEEDED
            await runner.stop()

        asyncio.run(scenario())
    finally:
        sys.modules["__main__"] = saved
    assert not marker.exists()
