"""Task sources over gRPC, validate_only, and the runner's check before the first job."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from greenprune.api.common.v1 import jobs_pb2
from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc
from greenprune.api.pruning.v1 import pruning_pb2, pruning_pb2_grpc
from greenprune.client import cli
from greenprune.client.plan import plan_experiment
from greenprune.client.preflight import PlanRefusedError
from greenprune.client.runner import Addresses, Runner
from greenprune.client.spec import load_experiment
from greenprune.rpc.server_thread import ServerThread
from tests.unit.test_task_sources import EVIL, facts_source


def _source(files: list[tuple[str, bytes]]) -> eval_pb2.CreateTaskSourceRequest:
    source = eval_pb2.TaskSource(files=[eval_pb2.TaskFile(path=p, content=c) for p, c in files])
    return eval_pb2.CreateTaskSourceRequest(task_source=source)


def _code(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), raised.value.details()


def test_a_task_sent_as_content_is_evaluated(
    service_factory: Callable[..., ServerThread], reference_model_dir: Path, tmp_path: Path
) -> None:
    results = service_factory("results")
    evaluation = service_factory("eval", results=results.address)
    marker = tmp_path / "MARKER"
    evil = EVIL + "process_docs: !function evil.docs\n"
    with grpc.insecure_channel(evaluation.address) as chan:
        stub = eval_pb2_grpc.EvalServiceStub(chan)
        stored = stub.CreateTaskSource(_source(facts_source()), timeout=60).task_source
        assert stored.name.startswith("taskSources/") and list(stored.tasks) == ["my_facts"]
        assert not stored.files, "the files are not sent back"
        code, details = _code(
            lambda: stub.CreateTaskSource(
                _source([("evil.yaml", evil.encode()), ("evil.txt", str(marker).encode())]),
                timeout=60,
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "!function" in details
        spec = eval_pb2.EvalSpec(
            model="reference:tiny-llama",
            tasks=["my_facts"],
            task_sources=[stored.name],
            limit=8,
            batch_size=8,
            device="cpu",
            repeats=1,
            warmup_batches=0,
            idle_seconds=0.0,
        )
        request = eval_pb2.CreateEvalJobRequest(request_id="src", spec=spec)
        job = stub.CreateEvalJob(request, timeout=60).job
        for _ in stub.WatchEvalJob(eval_pb2.WatchEvalJobRequest(name=job.name), timeout=300):
            pass
        job = stub.GetEvalJob(eval_pb2.GetEvalJobRequest(name=job.name), timeout=10).job
        assert job.status.state == jobs_pb2.JOB_STATE_SUCCEEDED, job.status.error.message
        (task,) = job.result.tasks
        assert task.task == "my_facts" and task.samples == 8
        missing = eval_pb2.EvalSpec()
        missing.CopyFrom(spec)
        missing.task_sources[:] = ["taskSources/" + "0" * 32]
        code, details = _code(
            lambda: stub.CreateEvalJob(
                eval_pb2.CreateEvalJobRequest(request_id="gone", spec=missing), timeout=60
            )
        )
        assert code == grpc.StatusCode.NOT_FOUND and "spec.task_sources[0]" in details
    assert not marker.exists()


def test_validate_only_checks_without_creating_a_job(
    service_factory: Callable[..., ServerThread], reference_model_dir: Path
) -> None:
    pruning, evaluation = service_factory("pruning"), service_factory("eval")
    with (
        grpc.insecure_channel(pruning.address) as pchan,
        grpc.insecure_channel(evaluation.address) as echan,
    ):
        prune = pruning_pb2_grpc.PruningServiceStub(pchan)
        spec = pruning_pb2.PruneSpec(
            model="reference:tiny-llama", ratio=0.2, method=pruning_pb2.PRUNING_METHOD_MAGNITUDE_L2
        )
        checked = prune.CreatePruneJob(
            pruning_pb2.CreatePruneJobRequest(spec=spec, validate_only=True), timeout=60
        ).job
        assert checked.name == "" and checked.spec.model == "reference:tiny-llama"
        spec.model = "reference:nope"
        code, details = _code(
            lambda: prune.CreatePruneJob(
                pruning_pb2.CreatePruneJobRequest(spec=spec, validate_only=True), timeout=60
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("spec.model")
        assert "no reference model 'nope'" in details, details
        jobs = prune.ListPruneJobs(pruning_pb2.ListPruneJobsRequest(), timeout=10).jobs
        assert not jobs

        stub = eval_pb2_grpc.EvalServiceStub(echan)
        spec_e = eval_pb2.EvalSpec(checkpoint_id="not-pruned-yet", tasks=["greenprune_facts"])
        checked_e = stub.CreateEvalJob(
            eval_pb2.CreateEvalJobRequest(spec=spec_e, validate_only=True), timeout=60
        ).job
        assert checked_e.name == "" and checked_e.spec.repeats > 0, "defaults are filled"
        spec_e.tasks[:] = ["greenprune_factz"]
        code, details = _code(
            lambda: stub.CreateEvalJob(
                eval_pb2.CreateEvalJobRequest(spec=spec_e, validate_only=True), timeout=60
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert details.startswith("spec.tasks"), details
        assert "greenprune_factz" in details and "greenprune_facts" in details  # the near name
        assert not stub.ListEvalJobs(eval_pb2.ListEvalJobsRequest(), timeout=10).jobs


EXPERIMENT = """\
name: preflight
models: [{model}]
pruning: {{method: magnitude-l2, ratios: [0.0, 0.2]}}
eval: {{tasks: [{tasks}], task_paths: [mytasks], limit: 8, repeats: 1}}
"""


def _run(tmp_path: Path, addresses: Addresses, model: str, tasks: str) -> PlanRefusedError:
    (tmp_path / "exp.yaml").write_text(EXPERIMENT.format(model=model, tasks=tasks))
    plan = plan_experiment(load_experiment(tmp_path / "exp.yaml"))
    with pytest.raises(PlanRefusedError) as raised:
        asyncio.run(Runner(plan, addresses).run())
    return raised.value


def test_the_runner_refuses_a_plan_before_the_first_job(
    service_factory: Callable[..., ServerThread],
    reference_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = service_factory("results")
    pruning = service_factory("pruning", results=results.address)
    evaluation = service_factory("eval", results=results.address)
    addresses = Addresses(pruning.address, evaluation.address, results.address)
    for path, content in facts_source():
        (tmp_path / "mytasks" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "mytasks" / path).write_bytes(content)

    error = _run(tmp_path, addresses, "reference:tiny-llama", "my_facts, greenprune_nope")
    assert "greenprune_nope" in str(error) and "nothing was submitted" in str(error)
    error = _run(tmp_path, addresses, str(tmp_path / "no-such-model"), "my_facts")
    assert "spec.model" in str(error)
    (tmp_path / "mytasks" / "evil.yaml").write_text(EVIL + "class: evil.Task\n")
    error = _run(tmp_path, addresses, "reference:tiny-llama", "my_facts")
    assert "'class'" in str(error) and "mytasks" in str(error)
    # --dry-run asks the services too, and says so when they refuse.
    services = (
        f"services: {{pruning: '{pruning.address}', eval: '{evaluation.address}',"
        f" results: '{results.address}'}}\n"
    )
    dry = tmp_path / "dry.yaml"
    dry.write_text(EXPERIMENT.format(model="reference:tiny-llama", tasks="my_facts") + services)
    assert cli.main(["run", str(dry), "--dry-run"]) == cli.EXIT_FAILED
    assert "'class'" in capsys.readouterr().err
    (tmp_path / "mytasks" / "evil.yaml").unlink()
    assert cli.main(["run", str(dry), "--dry-run"]) == cli.EXIT_OK
    assert "the services accept every step" in capsys.readouterr().out
    with grpc.insecure_channel(pruning.address) as chan:
        stub = pruning_pb2_grpc.PruningServiceStub(chan)
        assert not stub.ListPruneJobs(pruning_pb2.ListPruneJobsRequest(), timeout=10).jobs


def test_the_sdk_uploads_a_folder(
    service_factory: Callable[..., ServerThread], tmp_path: Path
) -> None:
    from greenprune.client.sdk import Client, RpcError

    evaluation = service_factory("eval")
    for path, content in facts_source():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(content)
    with Client(results="127.0.0.1:1", pruning="127.0.0.1:1", eval=evaluation.address) as client:
        stored = client.upload_tasks(tmp_path)
        assert stored.name.startswith("taskSources/") and list(stored.tasks) == ["my_facts"]
        (tmp_path / "tasks" / "evil.yaml").write_text(EVIL + "x: !!python/name:os.system\n")
        with pytest.raises(RpcError) as refused:
            client.upload_tasks(tmp_path)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.field is not None and refused.value.field.startswith("task_source")
