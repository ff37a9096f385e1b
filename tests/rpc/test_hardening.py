"""Hardening over real gRPC: Health.Watch, page tokens, and what the ResultsService stores."""

from __future__ import annotations

import math
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.settings import ResultsSettings
from greenprune.rpc.client import sync_channel
from greenprune.rpc.common_messages import page_bounds
from greenprune.rpc.server_thread import ServerThread
from results_service.server import build
from tests import samples

pb = results_pb2
BAD_TOKENS = ["²", "9" * 30, "9223372036854775808", "-1", "1e3", " 1", "٣", "x" * 100_000]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    home = tmp_path_factory.mktemp("hardening")
    settings = ResultsSettings(port=0, state_dir=home, grace_seconds=1.0)
    running = ServerThread(lambda: build(settings), settings).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    opened = sync_channel(server.address, None)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> results_pb2_grpc.ResultsServiceStub:
    stub = results_pb2_grpc.ResultsServiceStub(channel)
    prune_runs, eval_runs = samples.demo_study(experiment="hard")
    for run in prune_runs:
        stub.RecordPruneRun(pb.RecordPruneRunRequest(run=run), timeout=30)
    stub.BatchRecordEvalRuns(pb.BatchRecordEvalRunsRequest(runs=eval_runs), timeout=30)
    return stub


def _refused(call, request) -> grpc.RpcError:  # noqa: ANN001
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=60)
    return caught.value


def test_health_watch_streams_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    stream = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
    first = next(iter(stream))
    stream.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_bad_page_tokens_are_invalid_argument(stub, token: str) -> None:  # noqa: ANN001
    for call, request in (
        (stub.ListEvalRuns, pb.ListEvalRunsRequest(page_token=token)),
        (stub.ListPruneRuns, pb.ListPruneRunsRequest(page_token=token)),
    ):
        error = _refused(call, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert "page_token" in error.details() and len(error.details()) < 200


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_page_bounds_refuses_bad_tokens(token: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        page_bounds(10, token)
    assert caught.value.field == "page_token"
    assert "is not a token this server issued" in caught.value.message


def _eval_run(request_id: str) -> pb.EvalRun:
    run = pb.EvalRun()
    run.CopyFrom(samples.demo_study(experiment="hard")[1][0])
    run.request_id = request_id
    return run


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda run: setattr(run, "model", "m" * (35 * 1024 * 1024)), "run.model"),
        (lambda run: setattr(run, "model", "m" * 300), "run.model"),
        (lambda run: setattr(run, "model", "bad\x00name"), "run.model"),
        (lambda run: setattr(run, "experiment", "e" * 5000), "run.experiment"),
        (lambda run: run.versions.__setitem__("lm_eval", "v" * 5000), "run.versions"),
        (lambda run: run.versions.__setitem__("k" * 300, "1"), "run.versions"),
        (lambda run: setattr(run.result.metrics[0], "value", math.inf), "run.result.metrics[0]"),
        (lambda run: setattr(run.result.metrics[0], "value", math.nan), "run.result.metrics[0]"),
        (lambda run: setattr(run.result.metrics[0], "stderr", -math.inf), "run.result.metrics[0]"),
    ],
)
def test_record_eval_run_refuses_oversized_and_non_finite(stub, mutate, field: str) -> None:  # noqa: ANN001
    run = _eval_run("hard/bad")
    mutate(run)
    error = _refused(stub.RecordEvalRun, pb.RecordEvalRunRequest(run=run))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().startswith(field) and len(error.details()) < 400
    batch = _refused(stub.BatchRecordEvalRuns, pb.BatchRecordEvalRunsRequest(runs=[run]))
    assert batch.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert batch.details().startswith(field.replace("run.", "runs[0].", 1)), batch.details()
    # The read paths still answer.
    listed = stub.ListEvalRuns(pb.ListEvalRunsRequest(), timeout=60)
    assert listed.runs and all(len(r.model) <= 256 for r in listed.runs)
    stub.QueryView(pb.QueryViewRequest(view=pb.VIEW_RUNS), timeout=60)


def test_record_prune_run_refuses_a_huge_string(stub) -> None:  # noqa: ANN001
    run = pb.PruneRun()
    run.CopyFrom(samples.demo_study(experiment="hard")[0][0])
    run.request_id = "hard/big-prune"
    run.experiment = "x" * (10 * 1024 * 1024)
    error = _refused(stub.RecordPruneRun, pb.RecordPruneRunRequest(run=run))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("run.experiment") and len(error.details()) < 400


def test_a_full_disk_is_resource_exhausted_with_the_path() -> None:
    import errno

    from greenprune.core.errors import code_name
    from greenprune.rpc.errors import status_for

    full = OSError(
        errno.ENOSPC, "No space left on device", "/state/checkpoints/c1/model.safetensors"
    )
    code, message = status_for(full)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and code_name(full) == "RESOURCE_EXHAUSTED"
    assert "/state/checkpoints/c1/model.safetensors" in message
