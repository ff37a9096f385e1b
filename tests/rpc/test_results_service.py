"""ResultsService over real gRPC: a server on port 0 with a real DuckDB file."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import grpc
import pandas as pd
import pytest
from google.protobuf import json_format

from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.core.settings import ResultsSettings
from greenprune.rpc.client import sync_channel
from greenprune.rpc.server_thread import ServerThread
from results_service.server import build
from tests import samples

TOKEN = "results-test-token"
pb = results_pb2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    home = tmp_path_factory.mktemp("results")
    settings = ResultsSettings(port=0, state_dir=home, token=TOKEN, grace_seconds=1.0)
    running = ServerThread(lambda: build(settings), settings).start()
    yield running
    running.stop()
    assert (home / "results" / "results.duckdb").is_file()


@pytest.fixture(scope="module")
def stub(server: ServerThread) -> Iterator[results_pb2_grpc.ResultsServiceStub]:
    channel = sync_channel(server.address, TOKEN)
    yield results_pb2_grpc.ResultsServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def study(stub: results_pb2_grpc.ResultsServiceStub) -> tuple[list, list]:
    prune_runs, eval_runs = samples.demo_study(experiment="rpc")
    for run in prune_runs:
        assert stub.RecordPruneRun(pb.RecordPruneRunRequest(run=run)).created
    response = stub.BatchRecordEvalRuns(pb.BatchRecordEvalRunsRequest(runs=eval_runs))
    assert response.created_count == len(eval_runs)
    return prune_runs, eval_runs


def _error(call: object, request: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)  # type: ignore[operator]
    return caught.value


def _frame(table: pb.Table) -> pd.DataFrame:
    rows = [json_format.MessageToDict(row) for row in table.rows]
    return pd.DataFrame(rows, columns=[column.name for column in table.columns])


def test_record_is_idempotent_and_returns_the_stored_run(
    stub: results_pb2_grpc.ResultsServiceStub,
) -> None:
    run = samples.eval_run("single", task="t1", metrics={"acc": 0.5}, net_joules=12.0, model="m")
    first = stub.RecordEvalRun(pb.RecordEvalRunRequest(run=run))
    assert first.created is True
    assert first.run.create_time.seconds > 0
    changed = pb.EvalRun()
    changed.CopyFrom(run)
    changed.result.metrics[0].value = 0.9
    second = stub.RecordEvalRun(pb.RecordEvalRunRequest(run=changed))
    assert second.created is False
    assert second.run == first.run
    assert second.run.result.metrics[0].value == 0.5
    fetched = stub.GetEvalRun(pb.GetEvalRunRequest(request_id="single")).run
    assert fetched == first.run
    expected = pb.EvalRun()
    expected.CopyFrom(run)
    expected.create_time.CopyFrom(fetched.create_time)
    assert fetched == expected


def test_prune_run_round_trips(stub: results_pb2_grpc.ResultsServiceStub, study: tuple) -> None:
    prune_runs, _ = study
    first = stub.RecordPruneRun(pb.RecordPruneRunRequest(run=prune_runs[2]))
    assert first.created is False
    fetched = stub.GetPruneRun(pb.GetPruneRunRequest(request_id=prune_runs[2].request_id)).run
    assert fetched.result.layers == prune_runs[2].result.layers
    assert fetched.spec == prune_runs[2].spec
    assert fetched.result.energy == prune_runs[2].result.energy


def test_batch_twice_stores_once(stub: results_pb2_grpc.ResultsServiceStub, study: tuple) -> None:
    _, eval_runs = study
    again = stub.BatchRecordEvalRuns(pb.BatchRecordEvalRunsRequest(runs=eval_runs))
    assert again.created_count == 0
    runs = stub.QueryView(pb.QueryViewRequest(view=pb.VIEW_RUNS, filter={"experiment": "rpc"}))
    assert len(runs.table.rows) == len(eval_runs)


def test_unknown_runs_are_not_found(stub: results_pb2_grpc.ResultsServiceStub) -> None:
    error = _error(stub.GetEvalRun, pb.GetEvalRunRequest(request_id="missing"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "eval run 'missing' not found"
    error = _error(stub.GetPruneRun, pb.GetPruneRunRequest(request_id="missing"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "prune run 'missing' not found"


def test_bad_input_is_invalid_argument_naming_the_field(
    stub: results_pb2_grpc.ResultsServiceStub,
) -> None:
    cases = [
        (stub.RecordEvalRun, pb.RecordEvalRunRequest(run=pb.EvalRun()), "run.request_id"),
        (stub.RecordPruneRun, pb.RecordPruneRunRequest(run=pb.PruneRun()), "run.request_id"),
        (
            stub.BatchRecordEvalRuns,
            pb.BatchRecordEvalRunsRequest(
                runs=[
                    samples.eval_run("ok", task="t", metrics={}, net_joules=None),
                    pb.EvalRun(),
                ]
            ),
            "runs[1].request_id",
        ),
        (
            stub.RecordEvalRun,
            pb.RecordEvalRunRequest(run=pb.EvalRun(request_id="no-task")),
            "run.result.task",
        ),
        (stub.QueryView, pb.QueryViewRequest(), "view"),
        (stub.QueryView, pb.QueryViewRequest(view=99), "view"),
        (stub.ExportView, pb.ExportViewRequest(view=pb.VIEW_RUNS), "format"),
        (stub.ListEvalRuns, pb.ListEvalRunsRequest(page_token="garbage"), "page_token"),
        (stub.ListPruneRuns, pb.ListPruneRunsRequest(page_size=-1), "page_size"),
    ]
    for call, request, field in cases:
        error = _error(call, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert error.details().startswith(f"{field}:"), (field, error.details())
    stored = _error(stub.GetEvalRun, pb.GetEvalRunRequest(request_id="ok"))  # the batch stored none
    assert stored.code() == grpc.StatusCode.NOT_FOUND
    assert stored.details() == "eval run 'ok' not found"


def test_views_return_friendly_columns(
    stub: results_pb2_grpc.ResultsServiceStub, study: tuple
) -> None:
    request = pb.QueryViewRequest(
        view=pb.VIEW_ACCURACY_VS_SPARSITY,
        filter=pb.ViewFilter(experiment="rpc", task="greenprune_facts"),
    )
    table = stub.QueryView(request).table
    types = {column.name: column.type for column in table.columns}
    assert types["ratio"] == "double" and types["accuracy"] == "double"
    assert types["parameters_after"] == "int64" and types["model"] == "string"
    frame = _frame(table)
    acc = frame[frame.metric == "acc"].sort_values("ratio")
    assert acc["accuracy"].tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert set(frame["task"]) == {"greenprune_facts"}
    front_request = pb.QueryViewRequest(view=pb.VIEW_PARETO_FRONT, filter={"experiment": "rpc"})
    front = _frame(stub.QueryView(front_request).table)
    assert front["net_joules"].tolist() == pytest.approx([160.0, 180.0, 200.0])
    experiments = stub.QueryView(pb.QueryViewRequest(view=pb.VIEW_EXPERIMENTS)).table
    columns = [column.name for column in experiments.columns]
    assert experiments.columns[columns.index("last_updated")].type == "timestamp"
    rpc_row = next(row for row in experiments.rows if row.values[0].string_value == "rpc")
    assert rpc_row.values[columns.index("last_updated")].string_value.endswith("Z")
    for view in pb.View.values():
        if view != pb.VIEW_UNSPECIFIED:
            assert stub.QueryView(pb.QueryViewRequest(view=view)).table.columns


def test_export_csv_and_parquet_parse_back(
    stub: results_pb2_grpc.ResultsServiceStub, study: tuple
) -> None:
    view_filter = pb.ViewFilter(experiment="rpc")
    request = pb.QueryViewRequest(view=pb.VIEW_ENERGY_VS_SPARSITY, filter=view_filter)
    table = stub.QueryView(request).table
    names = [column.name for column in table.columns]
    csv = stub.ExportView(
        pb.ExportViewRequest(
            view=pb.VIEW_ENERGY_VS_SPARSITY, filter=view_filter, format=pb.EXPORT_FORMAT_CSV
        )
    )
    parquet = stub.ExportView(
        pb.ExportViewRequest(
            view=pb.VIEW_ENERGY_VS_SPARSITY, filter=view_filter, format=pb.EXPORT_FORMAT_PARQUET
        )
    )
    assert csv.media_type == "text/csv" and csv.filename == "energy_vs_sparsity.csv"
    assert parquet.filename == "energy_vs_sparsity.parquet"
    from_csv = pd.read_csv(io.BytesIO(csv.data))
    from_parquet = pd.read_parquet(io.BytesIO(parquet.data))
    for frame in (from_csv, from_parquet):
        assert list(frame.columns) == names
        assert len(frame) == len(table.rows)
        assert sorted(frame["net_joules"]) == pytest.approx(
            sorted(row.values[names.index("net_joules")].number_value for row in table.rows)
        )


def test_lists_page_newest_first(stub: results_pb2_grpc.ResultsServiceStub, study: tuple) -> None:
    prune_runs, eval_runs = study
    first = stub.ListEvalRuns(pb.ListEvalRunsRequest(experiment="rpc", page_size=4))
    assert [run.request_id for run in first.runs] == [r.request_id for r in eval_runs[::-1][:4]]
    seen = [run.request_id for run in first.runs]
    token = first.next_page_token
    while token:
        page = stub.ListEvalRuns(
            pb.ListEvalRunsRequest(experiment="rpc", page_size=4, page_token=token)
        )
        seen.extend(run.request_id for run in page.runs)
        token = page.next_page_token
    assert seen == [run.request_id for run in eval_runs[::-1]]
    pruned = stub.ListPruneRuns(pb.ListPruneRunsRequest(experiment="rpc"))
    assert [run.request_id for run in pruned.runs] == [r.request_id for r in prune_runs[::-1]]
    assert pruned.next_page_token == ""


def test_calls_without_the_token_are_unauthenticated(server: ServerThread) -> None:
    channel = sync_channel(server.address)
    try:
        anonymous = results_pb2_grpc.ResultsServiceStub(channel)
        error = _error(anonymous.ListPruneRuns, pb.ListPruneRunsRequest())
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == "missing or invalid bearer token"
    finally:
        channel.close()


def test_store_path_follows_settings(tmp_path: Path) -> None:
    settings = ResultsSettings(port=0, state_dir=tmp_path, db_path=tmp_path / "x" / "r.duckdb")
    running = ServerThread(lambda: build(settings), settings).start()
    try:
        channel = sync_channel(running.address)
        stub = results_pb2_grpc.ResultsServiceStub(channel)
        run = samples.eval_run("p", task="t", metrics={"acc": 1.0}, net_joules=1.0, model="m")
        assert stub.RecordEvalRun(pb.RecordEvalRunRequest(run=run)).created
        channel.close()
    finally:
        running.stop()
    assert (tmp_path / "x" / "r.duckdb").is_file()


def test_profile_runs_are_recorded_once_and_found_by_views(
    stub: results_pb2_grpc.ResultsServiceStub, study: tuple
) -> None:
    run = samples.demo_profile(experiment="rpc")
    first = stub.RecordProfileRun(pb.RecordProfileRunRequest(run=run))
    assert first.created and first.run.result == run.result
    changed = pb.ProfileRun()
    changed.CopyFrom(run)
    changed.result.points[0].net_joules = 1e6
    again = stub.RecordProfileRun(pb.RecordProfileRunRequest(run=changed))
    assert not again.created and again.run.result == run.result
    fetched = stub.GetProfileRun(pb.GetProfileRunRequest(request_id=run.request_id)).run
    assert fetched.result == run.result
    error = _error(stub.GetProfileRun, pb.GetProfileRunRequest(request_id="missing"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "profile run 'missing' not found"
    rpc = pb.ViewFilter(experiment="rpc")
    profile = _frame(stub.QueryView(pb.QueryViewRequest(view=pb.VIEW_PROFILE, filter=rpc)).table)
    assert len(profile) == 3 * 2 * 2  # checkpoints x phases x batch sizes
    table = stub.QueryView(pb.QueryViewRequest(view=pb.VIEW_FINDINGS, filter=rpc)).table
    findings = _frame(table)
    assert set(findings["kind"]) == {"energy", "accuracy"}
    types = {column.name: column.type for column in table.columns}
    assert types["verdict"] == "string" and types["estimate"] == "double"
    assert types["family_size"] == "int64" and types["margin"] == "double"
    energy = findings[findings["kind"] == "energy"]
    assert energy["verdict"].isin(["lower", "higher"]).all()
    assert energy["text"].str.contains(r"\[").all() and energy["family"].notna().all()
