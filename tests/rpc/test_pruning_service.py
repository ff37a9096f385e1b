"""The PruningService end to end: a real server, a real child process, a real checkpoint."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from greenprune.api.common.v1 import jobs_pb2
from greenprune.api.pruning.v1 import pruning_pb2, pruning_pb2_grpc
from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.rpc.server_thread import ServerThread
from tests.unit.tiny_models import save_tiny_model, tiny_config, tiny_tokenizer

TERMINAL = {
    jobs_pb2.JOB_STATE_SUCCEEDED,
    jobs_pb2.JOB_STATE_FAILED,
    jobs_pb2.JOB_STATE_CANCELLED,
}


@pytest.fixture(scope="module")
def tiny_llama_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(
        tmp_path_factory.mktemp("tiny") / "tiny-llama", tiny_config("llama"), tiny_tokenizer()
    )


def _stack(
    service_factory: Callable[..., ServerThread], tiny: Path, warm: bool = False
) -> tuple[ServerThread, ServerThread]:
    results = service_factory("results")
    pruning = service_factory("pruning", results=results.address, warm=warm)
    models_root = Path(pruning.settings.models_root)
    models_root.mkdir(parents=True, exist_ok=True)
    target = models_root / "tiny-llama"
    if not target.exists():
        shutil.copytree(tiny, target)
    return results, pruning


def _spec(ratio: float = 0.4, **extra: object) -> pruning_pb2.PruneSpec:
    return pruning_pb2.PruneSpec(
        model="tiny-llama",
        method=pruning_pb2.PRUNING_METHOD_MAGNITUDE_L2,
        ratio=ratio,
        prune_attention_heads=True,
        prune_mlp=True,
        **extra,
    )


def _wait(stub: pruning_pb2_grpc.PruningServiceStub, name: str) -> pruning_pb2.PruneJob:
    stream = stub.WatchPruneJob(pruning_pb2.WatchPruneJobRequest(name=name), timeout=180)
    last = None
    for update in stream:
        last = update.job
    assert last is not None and last.status.state in TERMINAL
    return last


def test_prune_job_writes_a_checkpoint_and_reports_it(
    service_factory: Callable[..., ServerThread], tiny_llama_files: Path
) -> None:
    results, pruning = _stack(service_factory, tiny_llama_files, warm=True)
    with (
        grpc.insecure_channel(pruning.address) as chan,
        grpc.insecure_channel(results.address) as rchan,
    ):
        stub = pruning_pb2_grpc.PruningServiceStub(chan)
        request = pruning_pb2.CreatePruneJobRequest(request_id="p1", spec=_spec(), experiment="t")
        created = stub.CreatePruneJob(request, timeout=10).job
        assert created.name.startswith("pruneJobs/")
        assert stub.CreatePruneJob(request, timeout=10).job.name == created.name
        stages = [u.job.status.stage for u in stub.WatchPruneJob(
            pruning_pb2.WatchPruneJobRequest(name=created.name), timeout=180
        )]  # fmt: skip
        job = stub.GetPruneJob(pruning_pb2.GetPruneJobRequest(name=created.name), timeout=10).job
        assert job.status.state == jobs_pb2.JOB_STATE_SUCCEEDED, job.status.error.message
        assert {"pruning", "saving"} <= set(stages)
        result = job.result
        assert abs(result.achieved_ratio - 0.4) <= 0.03
        assert result.parameters_after < result.parameters_before
        assert result.macs_after < result.macs_before
        assert len(result.layers) == 4 and result.energy.net_joules.count == 1
        assert result.energy.components and result.energy.headline_component in ("cpu", "cpu-time")
        assert result.energy.energy_method and result.energy.cpu_seconds.median > 0
        manifest = json.loads(
            stub.GetCheckpoint(
                pruning_pb2.GetCheckpointRequest(checkpoint_id=result.checkpoint_id), timeout=10
            ).manifest_json
        )
        assert manifest["content_hash"] == result.content_hash
        recorded = results_pb2_grpc.ResultsServiceStub(rchan).GetPruneRun(
            results_pb2.GetPruneRunRequest(request_id="p1"), timeout=10
        )
        assert recorded.run.result.checkpoint_id == result.checkpoint_id
        assert recorded.run.experiment == "t"
        listed = stub.ListPruneJobs(pruning_pb2.ListPruneJobsRequest(experiment="t"), timeout=10)
        assert [j.name for j in listed.jobs] == [created.name]


def test_unknown_checkpoint_is_not_found(service_factory: Callable[..., ServerThread]) -> None:
    pruning = service_factory("pruning")
    with grpc.insecure_channel(pruning.address) as chan:
        stub = pruning_pb2_grpc.PruningServiceStub(chan)
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetCheckpoint(
                pruning_pb2.GetCheckpointRequest(checkpoint_id="ckpt-nope"), timeout=5
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert missing.value.details() == "no checkpoint 'ckpt-nope'"


def _checkpoint_entries(server: ServerThread) -> list[str]:
    folder = Path(server.settings.checkpoints_dir)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_cancel_and_restart_mid_job_leave_no_checkpoint(
    service_factory: Callable[..., ServerThread], tiny_llama_files: Path
) -> None:
    results, pruning = _stack(service_factory, tiny_llama_files)
    with grpc.insecure_channel(pruning.address) as chan:
        stub = pruning_pb2_grpc.PruningServiceStub(chan)
        job = stub.CreatePruneJob(
            pruning_pb2.CreatePruneJobRequest(request_id="c1", spec=_spec()), timeout=10
        ).job
        for update in stub.WatchPruneJob(
            pruning_pb2.WatchPruneJobRequest(name=job.name), timeout=60
        ):
            if update.job.status.state == jobs_pb2.JOB_STATE_RUNNING:
                break
        cancelled = stub.CancelPruneJob(
            pruning_pb2.CancelPruneJobRequest(name=job.name), timeout=30
        ).job
        assert cancelled.status.state == jobs_pb2.JOB_STATE_CANCELLED
        assert _checkpoint_entries(pruning) == []

        second = stub.CreatePruneJob(
            pruning_pb2.CreatePruneJobRequest(request_id="c2", spec=_spec()), timeout=10
        ).job
        for update in stub.WatchPruneJob(
            pruning_pb2.WatchPruneJobRequest(name=second.name), timeout=60
        ):
            if update.job.status.state == jobs_pb2.JOB_STATE_RUNNING:
                break
    pruning.stop()
    restarted = ServerThread(pruning.build, pruning.settings).start()
    try:
        with grpc.insecure_channel(restarted.address) as chan:
            stub = pruning_pb2_grpc.PruningServiceStub(chan)
            job = stub.GetPruneJob(pruning_pb2.GetPruneJobRequest(name=second.name), timeout=10).job
            assert job.status.state == jobs_pb2.JOB_STATE_FAILED
            assert job.status.error.message == "interrupted"
            time.sleep(0.5)
            assert _checkpoint_entries(restarted) == []
    finally:
        restarted.stop()


@pytest.mark.slow(minutes=1)
def test_two_calibration_draws_are_two_checkpoints(
    service_factory: Callable[..., ServerThread], tiny_llama_files: Path
) -> None:
    # pruning.seeds: the planner sends one job per draw, seeded seed + k; each is its own
    # job, checkpoint and record, and a repeated request returns the draw's own job (resume).
    results, pruning = _stack(service_factory, tiny_llama_files)
    calibration = pruning_pb2.CalibrationSpec(samples=4, sequence_length=32)
    with (
        grpc.insecure_channel(pruning.address) as chan,
        grpc.insecure_channel(results.address) as rchan,
    ):
        stub = pruning_pb2_grpc.PruningServiceStub(chan)
        jobs = {}
        for seed in (3, 4):
            spec = _spec(calibration=calibration, seed=seed)
            spec.method = pruning_pb2.PRUNING_METHOD_TAYLOR
            request = pruning_pb2.CreatePruneJobRequest(
                request_id=f"draw-{seed}", spec=spec, experiment="draws"
            )
            jobs[seed] = stub.CreatePruneJob(request, timeout=10).job.name
            assert stub.CreatePruneJob(request, timeout=10).job.name == jobs[seed]
        done = {seed: _wait(stub, name) for seed, name in jobs.items()}
        for job in done.values():
            assert job.status.state == jobs_pb2.JOB_STATE_SUCCEEDED, job.status.error.message
        first, second = (done[seed].result for seed in (3, 4))
        assert first.checkpoint_id != second.checkpoint_id
        assert first.content_hash != second.content_hash  # other calibration text, other scores
        store = results_pb2_grpc.ResultsServiceStub(rchan)
        for seed in (3, 4):
            run = store.GetPruneRun(
                results_pb2.GetPruneRunRequest(request_id=f"draw-{seed}"), timeout=10
            ).run
            assert run.spec.seed == seed
