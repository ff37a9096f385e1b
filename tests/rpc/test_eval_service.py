"""The EvalService end to end: a real server, a real child, the reference model, local tasks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from greenprune.api.common.v1 import jobs_pb2
from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc
from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.rpc.server_thread import ServerThread


def _spec(**fields: object) -> eval_pb2.EvalSpec:
    base: dict[str, object] = {
        "model": "reference:tiny-llama",
        "tasks": ["greenprune_facts"],
        "limit": 16,
        "batch_size": 16,
        "device": "cpu",
        "repeats": 2,
        "warmup_batches": 1,
        "idle_seconds": 0.3,
    }
    base.update(fields)
    return eval_pb2.EvalSpec(**base)


def _invalid(stub: eval_pb2_grpc.EvalServiceStub, spec: eval_pb2.EvalSpec) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        stub.CreateEvalJob(eval_pb2.CreateEvalJobRequest(request_id="bad", spec=spec), timeout=60)
    return raised.value


def test_eval_job_measures_and_reports_each_task(
    service_factory: Callable[..., ServerThread], reference_model_dir: Path
) -> None:
    results = service_factory("results")
    evaluation = service_factory("eval", results=results.address, warm=True)
    with (
        grpc.insecure_channel(evaluation.address) as chan,
        grpc.insecure_channel(results.address) as rchan,
    ):
        stub = eval_pb2_grpc.EvalServiceStub(chan)
        request = eval_pb2.CreateEvalJobRequest(request_id="e1", spec=_spec(), experiment="t")
        job = stub.CreateEvalJob(request, timeout=60).job
        assert stub.CreateEvalJob(request, timeout=60).job.name == job.name
        stages = [
            u.job.status.stage
            for u in stub.WatchEvalJob(eval_pb2.WatchEvalJobRequest(name=job.name), timeout=300)
        ]
        job = stub.GetEvalJob(eval_pb2.GetEvalJobRequest(name=job.name), timeout=10).job
        assert job.status.state == jobs_pb2.JOB_STATE_SUCCEEDED, job.status.error.message
        assert any(stage.startswith("evaluating greenprune_facts") for stage in stages)
        (task,) = job.result.tasks
        acc = next(m for m in task.metrics if m.metric == "acc")
        assert task.samples == 16 and acc.samples == 16 and acc.HasField("stderr")
        energy = task.energy
        assert energy.repeats == 2 and len(energy.repeat_net_joules) == 2
        assert energy.net_joules.median <= energy.gross_joules.median
        assert energy.joules_per_token > 0 and energy.tokens > 0
        assert {c.component for c in energy.components} >= {"cpu", "ram"}
        recorded = (
            results_pb2_grpc.ResultsServiceStub(rchan)
            .GetEvalRun(results_pb2.GetEvalRunRequest(request_id="e1/greenprune_facts"), timeout=10)
            .run
        )
        assert recorded.model == "reference:tiny-llama"
        assert recorded.result.metrics[0].value == pytest.approx(task.metrics[0].value)


def test_eval_bad_input(service_factory: Callable[..., ServerThread]) -> None:
    evaluation = service_factory("eval")
    with grpc.insecure_channel(evaluation.address) as chan:
        stub = eval_pb2_grpc.EvalServiceStub(chan)
        unknown = _invalid(stub, _spec(tasks=["greenprune_fact"]))
        assert unknown.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "spec.tasks[0]" in unknown.details() and "greenprune_facts" in unknown.details()
        missing = _invalid(stub, _spec(model="", checkpoint_id="ckpt-missing"))
        assert missing.code() == grpc.StatusCode.NOT_FOUND
        for field, spec in (
            ("spec.repeats", _spec(repeats=-1)),
            ("spec.limit", _spec(limit=0)),
            ("spec.batch_size", _spec(batch_size=-4)),
            ("spec.device", _spec(device="tpu")),
        ):
            error = _invalid(stub, spec)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            assert field in error.details()
