"""The Ray job backend: the same jobs and job table as local children, on a local Ray (2 CPUs)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from greenprune.api.common.v1 import jobs_pb2
from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc
from greenprune.api.pruning.v1 import pruning_pb2, pruning_pb2_grpc
from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.core.errors import FailedPreconditionError
from greenprune.core.jobs import CANCELLED, FAILED, INTERRUPTED, SUCCEEDED, JobRunner
from greenprune.core.jobs.ray_backend import RayBackend, RayOptions, annotate_hardware
from greenprune.core.settings import EvalSettings, PruningSettings
from greenprune.rpc.job_api import EVAL_JOBS, PRUNE_JOBS, JobApi
from greenprune.rpc.server_thread import ServerThread

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow(minutes=2)


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A local Ray on 2 CPUs (no GPU) for this module; its GCS address."""
    context = ray.init(
        address="local", num_cpus=2, num_gpus=0, include_dashboard=False, namespace="greenprune"
    )
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


def _runner(state_dir: Path, worker: str, **kwargs: object) -> JobRunner:
    return JobRunner(
        state_dir=state_dir,
        worker=f"tests.rpc.workers:{worker}",
        backend=RayBackend(RayOptions(**kwargs.pop("options", {}))),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


async def _wait_done(runner: JobRunner, job_id: str, timeout: float = 60) -> None:
    async def wait() -> None:
        async for job in runner.watch(job_id):
            if job.done:
                return

    await asyncio.wait_for(wait(), timeout)


async def _wait_for_file(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.05)
    return path.read_text()


def _gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_settings_choose_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PruningSettings().backend == "local" and EvalSettings().backend == "local"
    monkeypatch.setenv("GREENPRUNE_EVAL_BACKEND", "ray")
    monkeypatch.setenv("GREENPRUNE_EVAL_RAY_ADDRESS", "ray://head:10001")
    monkeypatch.setenv("GREENPRUNE_EVAL_RAY_NUM_GPUS", "0.5")
    settings = EvalSettings()
    assert (settings.backend, settings.ray_address, settings.ray_num_gpus) == (
        "ray",
        "ray://head:10001",
        0.5,
    )
    assert PruningSettings().backend == "local"


def test_hardware_lines_name_the_node_and_devices() -> None:
    result = {"tasks": [{"energy": {"hardware": "2 CPU threads"}}], "energy": {"hardware": ""}}
    annotate_hardware(result, "ray node abc (host h), CUDA_VISIBLE_DEVICES=3")
    assert result["tasks"][0]["energy"]["hardware"].endswith("CUDA_VISIBLE_DEVICES=3")
    assert result["energy"]["hardware"].startswith("ray node abc")


def test_job_runs_on_ray_with_progress_and_names_its_node(ray_address: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        runner = _runner(tmp_path, "echo")
        await runner.start()
        job = await runner.submit("r1", {"x": 1, "energy": {"hardware": "cpu"}})
        stages = [seen.stage async for seen in runner.watch(job.id)]
        done = runner.get(job.id)
        assert done.state == SUCCEEDED, done.error_message
        assert done.result["echo"]["x"] == 1 and done.result["pid"] != os.getpid()
        assert "second" in stages and stages[-1] == "done"
        hardware = done.result["echo"]["energy"]["hardware"]
        assert "ray node" in hardware and "CUDA_VISIBLE_DEVICES=" in hardware
        again = await runner.submit("r1", {"x": 1})
        assert again.id == job.id and runner.counts() == {SUCCEEDED: 1}
        await runner.stop()

    asyncio.run(scenario())


def test_cancel_kills_the_ray_job(ray_address: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        runner = _runner(tmp_path, "slow")
        await runner.start()
        job = await runner.submit("long", {"seconds": 60})
        pid = int(await _wait_for_file(tmp_path / "jobs" / job.id / "pid"))
        cancelled = await runner.cancel(job.id)
        assert cancelled.state == CANCELLED
        assert await asyncio.to_thread(_gone, pid), "the job's Ray worker still runs"
        await asyncio.sleep(0.3)
        assert runner.get(job.id).state == CANCELLED
        await runner.stop()

    asyncio.run(scenario())


def test_gpu_job_on_a_cluster_without_gpus_is_refused_at_once(
    ray_address: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        runner = _runner(tmp_path, "echo", lane_of=lambda spec: spec.get("device", "cpu"))
        await runner.start()
        with pytest.raises(FailedPreconditionError, match="asks Ray for 1 GPU.*has 0 GPU"):
            await runner.submit("gpu", {"device": "cuda:0"})
        assert runner.counts() == {}  # refused at submit: no job queued or running
        await runner.stop()

    asyncio.run(scenario())


def test_a_checkpoint_the_node_cannot_see_fails_naming_path_and_node(
    ray_address: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        root = tmp_path / "checkpoints"
        root.mkdir()
        runner = _runner(tmp_path / "state", "echo", context={"checkpoints_dir": str(root)})
        await runner.start()
        job = await runner.submit("missing", {"checkpoint_id": "ckpt-elsewhere"})
        await _wait_done(runner, job.id)
        failed = runner.get(job.id)
        assert failed.state == FAILED and failed.error_code == "NOT_FOUND"
        assert str(root / "ckpt-elsewhere") in failed.error_message
        assert "ray node" in failed.error_message and "shared storage" in failed.error_message
        await runner.stop()

    asyncio.run(scenario())


_SERVICE = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from greenprune.core.jobs import JobRunner
    from greenprune.core.jobs.ray_backend import RayBackend, RayOptions

    async def main():
        runner = JobRunner(
            state_dir=Path(sys.argv[1]),
            worker="tests.rpc.workers:slow",
            backend=RayBackend(RayOptions(address=sys.argv[2])),
        )
        await runner.start()
        job = await runner.submit("step", {"seconds": 2})
        print(job.id, flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
    """
)


def test_killed_service_marks_the_ray_job_interrupted_and_a_rerun_finishes(
    ray_address: str, tmp_path: Path
) -> None:
    service = subprocess.Popen(
        [sys.executable, "-c", _SERVICE, str(tmp_path), ray_address],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert service.stdout is not None
        job_id = service.stdout.readline().strip()
        pid = int(asyncio.run(_wait_for_file(tmp_path / "jobs" / job_id / "pid")))
        service.send_signal(signal.SIGKILL)
        service.wait(10)
    finally:
        if service.poll() is None:
            service.kill()
    assert _gone(pid), "the job outlived its service's Ray driver"

    async def restart() -> None:
        runner = _runner(tmp_path, "slow")
        await runner.start()
        interrupted = runner.get(job_id)
        assert interrupted.state == FAILED and interrupted.error_message == INTERRUPTED
        rerun = await runner.submit("step", {"seconds": 0.3})
        assert rerun.id != job_id
        await _wait_done(runner, rerun.id)
        assert runner.get(rerun.id).state == SUCCEEDED
        await runner.stop()

    asyncio.run(restart())


def _services(home: Path, results: str, backend: str, checkpoints: Path) -> list[ServerThread]:
    from eval_service.server import build as build_eval
    from pruning_service.server import build as build_pruning

    common = {
        "port": 0,
        "state_dir": home,
        "grace_seconds": 1.0,
        "results_address": results,
        "models_root": home / "models",
        "checkpoints_dir": checkpoints,
        "warm_job_process": False,
        "backend": backend,
    }
    pruning, evaluation = PruningSettings(**common), EvalSettings(**common)
    return [
        ServerThread(lambda: build_pruning(pruning), pruning).start(),
        ServerThread(lambda: build_eval(evaluation), evaluation).start(),
    ]


def _run_everywhere(api: JobApi, stubs: dict[str, Any], requests: dict[str, Any]) -> dict:
    """Submits one job per backend at once (so they overlap), waits for all, returns them."""
    names = {b: api.create(stubs[b])(requests[b], timeout=60).job.name for b in stubs}
    for b, stub in stubs.items():
        for _ in api.watch(stub)(api.watch_request(name=names[b]), timeout=300):
            pass
    jobs = {b: api.get(stub)(api.get_request(name=names[b])).job for b, stub in stubs.items()}
    for job in jobs.values():
        assert job.status.state == jobs_pb2.JOB_STATE_SUCCEEDED, job.status
    return jobs


def test_prune_and_eval_on_ray_match_local_and_are_recorded_once(
    ray_address: str,
    tmp_path: Path,
    reference_model_dir: Path,
    service_factory: Callable[..., ServerThread],
) -> None:
    results = service_factory("results")
    checkpoints = tmp_path / "checkpoints"
    backends = ("local", "ray")
    servers = {b: _services(tmp_path / b, results.address, b, checkpoints) for b in backends}
    channels = [grpc.insecure_channel(s.address) for pair in servers.values() for s in pair]
    try:
        prune = {
            b: pruning_pb2_grpc.PruningServiceStub(channels[2 * i]) for i, b in enumerate(backends)
        }
        evaluate = {
            b: eval_pb2_grpc.EvalServiceStub(channels[2 * i + 1]) for i, b in enumerate(backends)
        }
        spec = pruning_pb2.PruneSpec(
            model="reference:tiny-llama",
            method=pruning_pb2.PRUNING_METHOD_MAGNITUDE_L2,
            ratio=0.4,
            prune_attention_heads=True,
            prune_mlp=True,
        )
        # Both backends at once: the jobs overlap, their results must not differ.
        pruned = _run_everywhere(
            PRUNE_JOBS,
            prune,
            {
                b: pruning_pb2.CreatePruneJobRequest(
                    request_id=f"p-{b}", spec=spec, experiment="ray-vs-local"
                )
                for b in backends
            },
        )
        espec = eval_pb2.EvalSpec(
            checkpoint_id=pruned["ray"].result.checkpoint_id,
            tasks=["greenprune_facts"],
            limit=16,
            batch_size=16,
            device="cpu",
            repeats=1,
            warmup_batches=1,
            idle_seconds=0.2,
        )
        evaluated = _run_everywhere(
            EVAL_JOBS,
            evaluate,
            {
                b: eval_pb2.CreateEvalJobRequest(
                    request_id=f"e-{b}", spec=espec, experiment="ray-vs-local"
                )
                for b in backends
            },
        )
        outcomes = {b: (pruned[b].result, evaluated[b].result) for b in backends}
    finally:
        for channel in channels:
            channel.close()
        for pair in servers.values():
            for server in pair:
                server.stop()
    (local_prune, local_eval), (ray_prune, ray_eval) = outcomes["local"], outcomes["ray"]
    assert ray_prune.content_hash == local_prune.content_hash
    assert ray_prune.parameters_after == local_prune.parameters_after
    assert ray_prune.checkpoint_id != local_prune.checkpoint_id
    accuracy = [
        next(m.value for m in result.tasks[0].metrics if m.metric == "acc")
        for result in (local_eval, ray_eval)
    ]
    assert accuracy[0] == pytest.approx(accuracy[1])
    assert "ray node" in ray_eval.tasks[0].energy.hardware
    assert "ray node" in ray_prune.energy.hardware
    assert "ray node" not in local_eval.tasks[0].energy.hardware
    with grpc.insecure_channel(results.address) as rchan:
        stub = results_pb2_grpc.ResultsServiceStub(rchan)
        prunes = stub.ListPruneRuns(
            results_pb2.ListPruneRunsRequest(experiment="ray-vs-local", page_size=100)
        ).runs
        evals = stub.ListEvalRuns(
            results_pb2.ListEvalRunsRequest(experiment="ray-vs-local", page_size=100)
        ).runs
    assert sorted(r.request_id for r in prunes) == ["p-local", "p-ray"]
    assert sorted(r.request_id for r in evals) == [
        "e-local/greenprune_facts",
        "e-ray/greenprune_facts",
    ]
