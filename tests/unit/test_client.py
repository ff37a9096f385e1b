"""greenprune.Client against real in-process services: jobs, typed errors, results, checkpoints."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pandas as pd
import pytest

from greenprune import Client
from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.client import cli, report, sdk
from greenprune.rpc.server_thread import ServerThread
from tests import samples
from tests.rpc import conftest as rpc_fixtures
from tests.unit.tiny_models import save_tiny_model, tiny_config, tiny_tokenizer

service_factory = rpc_fixtures.service_factory  # real services on port 0

SPEC = {
    "model": "tiny-llama",
    "method": "magnitude_l2",
    "ratio": 0.4,
    "prune_attention_heads": True,
    "prune_mlp": True,
    "calibration": {"source": "reference", "samples": 4, "sequence_length": 16},
}


@pytest.fixture(scope="module")
def tiny_llama_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(
        tmp_path_factory.mktemp("tiny") / "tiny-llama", tiny_config("llama"), tiny_tokenizer()
    )


def _pruning(
    service_factory: Callable[..., ServerThread], tiny: Path, token: str | None = None
) -> tuple[ServerThread, ServerThread]:
    results = service_factory("results", token=token)
    pruning = service_factory("pruning", token=token, results=results.address)
    models_root = Path(pruning.settings.models_root)
    models_root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tiny, models_root / "tiny-llama", dirs_exist_ok=True)
    return results, pruning


def _client(results: ServerThread, pruning: ServerThread, token: str | None = None) -> Client:
    return Client(
        results=results.address,
        pruning=pruning.address,
        eval="127.0.0.1:1",
        token=token,
        checkpoints_dir=pruning.settings.checkpoints_dir,
    )


@pytest.mark.slow
def test_prune_watch_wait_result_and_checkpoint(
    service_factory: Callable[..., ServerThread], tiny_llama_files: Path
) -> None:
    results, pruning = _pruning(service_factory, tiny_llama_files)
    with _client(results, pruning) as client:
        job = client.prune(SPEC, request_id="sdk-1", experiment="sdk")
        assert job.name.startswith("pruneJobs/")
        assert client.prune(SPEC, request_id="sdk-1", experiment="sdk").name == job.name
        updates = list(job.watch(timeout=180))
        assert updates[-1].state == "SUCCEEDED" and updates[-1].done
        assert all(0.0 <= u.progress <= 1.0 for u in updates)
        result = job.wait(timeout=5)
        assert isinstance(result, pruning_pb2.PruneResult)
        assert 0 < result.parameters_after < result.parameters_before
        assert client.job(job.name).result == result
        assert [h.name for h in client.jobs("prune", experiment="sdk")] == [job.name]

        ckpt = client.checkpoint(result.checkpoint_id)
        assert ckpt.manifest["checkpoint_id"] == result.checkpoint_id
        assert ckpt.manifest["content_hash"] == result.content_hash
        assert ckpt.path is not None and ckpt.path.is_dir()
        elsewhere = Client(pruning=pruning.address, checkpoints_dir=Path("/nonexistent"))
        assert elsewhere.checkpoint(result.checkpoint_id).path is None
        elsewhere.close()

        run = client.prune_run("sdk-1")
        assert run.result.checkpoint_id == result.checkpoint_id


@pytest.mark.slow
def test_cancel_ends_the_job_and_wait_raises_with_the_code(
    service_factory: Callable[..., ServerThread], tiny_llama_files: Path
) -> None:
    results, pruning = _pruning(service_factory, tiny_llama_files)
    with _client(results, pruning) as client:
        job = client.prune({**SPEC, "ratio": 0.2}, experiment="sdk")
        job.cancel()
        with pytest.raises(sdk.JobFailedError) as caught:
            job.wait(timeout=60)
        assert caught.value.code == grpc.StatusCode.CANCELLED
        assert job.state == "CANCELLED"
        assert caught.value.job.name == job.name


def test_errors_are_typed_with_code_and_field(
    service_factory: Callable[..., ServerThread], tiny_llama_files: Path
) -> None:
    results, pruning = _pruning(service_factory, tiny_llama_files, token="s3cret")
    with _client(results, pruning, token="s3cret") as client:
        with pytest.raises(sdk.InvalidArgumentError) as caught:
            client.prune({**SPEC, "ratio": 1.5})
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.field == "spec.ratio"
        with pytest.raises(sdk.InvalidArgumentError) as caught:
            client.prune({**SPEC, "model": ""})
        assert caught.value.field == "spec.model"
        with pytest.raises(sdk.NotFoundError) as not_found:
            client.job("pruneJobs/no-such-job")
        assert not_found.value.code == grpc.StatusCode.NOT_FOUND
        assert not_found.value.field is None
        with pytest.raises(sdk.NotFoundError) as no_checkpoint:
            client.checkpoint("no-such-checkpoint")
        assert no_checkpoint.value.details == "no checkpoint 'no-such-checkpoint'"
        with pytest.raises(ValueError, match="no view 'nope'"):
            client.results("nope")
    with _client(results, pruning, token="wrong") as intruder:
        with pytest.raises(sdk.UnauthenticatedError) as denied:
            intruder.results("runs")
        assert isinstance(denied.value, sdk.RpcError)
        assert denied.value.details == "missing or invalid bearer token"
    with pytest.raises(sdk.UnavailableError) as unavailable:
        Client(results="127.0.0.1:1").results("runs")
    assert unavailable.value.code == grpc.StatusCode.UNAVAILABLE
    assert "127.0.0.1:1" in str(unavailable.value), str(unavailable.value)


def _query_view_csv(address: str, experiment: str) -> str:
    """The report's CSV decoded independently of the client: QueryView's Value cells."""

    def value(cell: Any) -> Any:
        kind = cell.WhichOneof("kind")
        return None if kind in (None, "null_value") else getattr(cell, kind)

    def query(view: int) -> tuple[list[str], list[list[Any]]]:
        with grpc.insecure_channel(address) as chan:
            table = (
                results_pb2_grpc.ResultsServiceStub(chan)
                .QueryView(
                    results_pb2.QueryViewRequest(
                        view=view, filter=results_pb2.ViewFilter(experiment=experiment)
                    )
                )
                .table
            )
        return [c.name for c in table.columns], [[value(v) for v in r.values] for r in table.rows]

    columns, rows = query(results_pb2.VIEW_TASK_BREAKDOWN)
    return report.to_csv(report.rows_from_view(columns, rows))


def test_results_are_the_rows_of_report_csv(
    service_factory: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    results = service_factory("results")
    prune_runs, eval_runs = samples.demo_study(experiment="sdk")
    other_prune, other_eval = samples.demo_study(experiment="other", ratios=(0.0,))
    with grpc.insecure_channel(results.address) as chan:
        stub = results_pb2_grpc.ResultsServiceStub(chan)
        for run in prune_runs + other_prune:
            stub.RecordPruneRun(results_pb2.RecordPruneRunRequest(run=run))
        stub.BatchRecordEvalRuns(
            results_pb2.BatchRecordEvalRunsRequest(runs=eval_runs + other_eval)
        )

    assert (
        cli.main(["report", "--format", "csv", "--results", results.address, "--experiment", "sdk"])
        == 0
    )
    printed = capsys.readouterr().out
    expected = _query_view_csv(results.address, "sdk")
    assert printed == expected

    with Client(results=results.address) as client:
        frame = client.results("runs", experiment="sdk")
        assert len(frame) == len(eval_runs)
        assert set(frame["run_id"]) == {run.request_id for run in eval_runs}
        assert set(frame["experiment"]) == {"sdk"}
        assert len(client.results("runs")) == len(eval_runs) + len(other_eval)

        csv_frame = pd.read_csv(io.StringIO(printed))
        mine = client.report("sdk")
        assert list(mine.columns) == list(csv_frame.columns)
        assert mine.to_csv(index=False) == csv_frame.to_csv(index=False)
        assert report.to_csv(client.report_rows("sdk")) == printed

        by_run = frame.set_index("run_id")
        for row in csv_frame.itertuples():
            assert by_run.loc[row.run_id, "net_joules"] == pytest.approx(row.net_joules)
        assert not client.results("accuracy_vs_sparsity", experiment="sdk").empty


def test_specs_from_dicts_and_view_names() -> None:
    spec = sdk.prune_spec({"model": "reference:tiny-llama", "method": "taylor", "ratio": 0.2})
    assert spec.method == pruning_pb2.PRUNING_METHOD_TAYLOR and spec.ratio == 0.2
    assert sdk.prune_spec(spec) is spec
    ev = sdk.eval_spec({"checkpoint_id": "c", "tasks": "greenprune_facts", "limit": 5})
    assert list(ev.tasks) == ["greenprune_facts"] and ev.limit == 5 and ev.HasField("limit")
    assert sdk._view("runs") == results_pb2.VIEW_RUNS
    assert sdk._view("pareto-front") == results_pb2.VIEW_PARETO_FRONT
    assert sdk._view("VIEW_LAYERS") == results_pb2.VIEW_LAYERS


def test_the_field_comes_from_the_error_maps_message() -> None:
    class Fake(grpc.RpcError):
        def __init__(self, code: grpc.StatusCode, details: str) -> None:
            self._code, self._details = code, details

        def code(self) -> grpc.StatusCode:
            return self._code

        def details(self) -> str:
            return self._details

    error = sdk.error_from_rpc(
        Fake(grpc.StatusCode.INVALID_ARGUMENT, "spec.calibration.samples: must be at most 4096")
    )
    assert isinstance(error, sdk.InvalidArgumentError)
    assert error.field == "spec.calibration.samples"
    plain = sdk.error_from_rpc(Fake(grpc.StatusCode.INTERNAL, "x: y"))
    assert type(plain) is sdk.RpcError and plain.field is None
