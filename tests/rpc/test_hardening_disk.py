"""A full disk, for real: a small tmpfs filled to the last byte under each writer.

Wherever the disk fills (the job table, a checkpoint's weights, the results store) the answer
is RESOURCE_EXHAUSTED, the job ends FAILED (never left RUNNING), nothing partial is kept, and
the service goes on serving once space is back. The tests mount a tmpfs of a few MiB (they run
as root in this project's containers) and skip, saying why, where mounting is not permitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.core.errors import ResourceExhaustedError, code_name
from greenprune.core.jobs import JobRunner
from greenprune.core.jobs.table import FAILED, RUNNING, Job, JobTable
from greenprune.core.settings import ResultsSettings
from greenprune.rpc.client import sync_channel
from greenprune.rpc.server_thread import ServerThread
from results_service.server import build
from tests import samples

FILLER = "filler"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> None:
    """Writes a file until the disk has not a byte left."""
    with (disk / FILLER).open("ab", buffering=0) as handle:
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * size)
    probe = os.statvfs(disk)
    assert probe.f_bavail == 0, "the disk is not full"


def free(disk: Path) -> None:
    (disk / FILLER).unlink()


def test_the_job_table_refuses_with_resource_exhausted_and_holds_the_row(
    small_disk: Path,
) -> None:
    table = JobTable(small_disk / "jobs.sqlite")
    job = Job(id="a", request_id="r", spec={"x": 1})
    table.save(job)
    fill(small_disk)
    job.state, job.spec = FAILED, {"x": "y" * 200_000}
    with pytest.raises(ResourceExhaustedError, match="no space left"):
        table.save(job)
    assert table.get("a").state == FAILED  # held in memory: no reader sees it RUNNING
    assert table.counts() == {FAILED: 1} and [j.id for j in table.in_state(FAILED)] == ["a"]
    free(small_disk)
    table.save(Job(id="b", request_id="r2", spec={}))  # writes the held row too
    table.close()
    reopened = JobTable(small_disk / "jobs.sqlite")
    assert reopened.get("a").state == FAILED and reopened.get("b") is not None
    reopened.close()


def test_a_job_whose_table_fills_fails_with_resource_exhausted(small_disk: Path) -> None:
    async def scenario() -> None:
        runner = JobRunner(state_dir=small_disk, worker="tests.rpc.workers:slow")
        await runner.start()
        job = await runner.submit("r-1", {"seconds": 60})
        async for seen in runner.watch(job.id):
            if seen.state == RUNNING and seen.stage == "sleeping":
                break
        fill(small_disk)
        async for last in runner.watch(job.id):
            seen = last
        assert seen.state == FAILED and seen.error_code == "RESOURCE_EXHAUSTED", seen
        with pytest.raises(ResourceExhaustedError):  # 0 bytes free: refused, nothing queued
            await runner.submit("r-2", {"seconds": 1})
        assert runner.table.latest_for_request("r-2") is None
        free(small_disk)
        await runner.stop()

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_a_weights_file_the_disk_cannot_hold_is_resource_exhausted(small_disk: Path) -> None:
    import torch
    from safetensors.torch import save_file

    fill(small_disk)
    with pytest.raises(Exception) as caught:  # safetensors' own error, not an OSError
        save_file({"weight": torch.zeros(1 << 16)}, str(small_disk / "model.safetensors"))
    assert not isinstance(caught.value, OSError)
    assert code_name(caught.value) == "RESOURCE_EXHAUSTED", repr(caught.value)


def test_a_full_store_is_resource_exhausted_and_the_service_serves_on(
    small_disk: Path, tmp_path: Path
) -> None:
    settings = ResultsSettings(
        port=0,
        state_dir=tmp_path / "home",
        db_path=small_disk / "results.duckdb",
        grace_seconds=1.0,
    )
    server = ServerThread(lambda: build(settings), settings).start()
    try:
        with sync_channel(server.address, None) as channel:
            stub = results_pb2_grpc.ResultsServiceStub(channel)
            prune_runs, eval_runs = samples.demo_study()
            stub.RecordPruneRun(results_pb2.RecordPruneRunRequest(run=prune_runs[0]), timeout=30)
            fill(small_disk)
            request = results_pb2.BatchRecordEvalRunsRequest(runs=eval_runs)
            with pytest.raises(grpc.RpcError) as caught:
                stub.BatchRecordEvalRuns(request, timeout=30)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value
            listed = stub.ListEvalRuns(results_pb2.ListEvalRunsRequest(), timeout=30)
            assert not listed.runs, "nothing partial"
            free(small_disk)
            created = stub.BatchRecordEvalRuns(request, timeout=30).created_count
            assert created == len(eval_runs)
    finally:
        server.stop()


def test_is_disk_full_reads_sqlite_and_errno() -> None:
    import sqlite3

    assert code_name(sqlite3.OperationalError("database or disk is full")) == "RESOURCE_EXHAUSTED"
    assert code_name(OSError(errno.ENOSPC, "No space left on device")) == "RESOURCE_EXHAUSTED"
    assert code_name(ValueError("disk")) == "INTERNAL"
