"""One hostile record never breaks a read: numbers beyond physical bounds and oversized runs.

The ResultsService refuses, at record time, a number no real run measures (``-1e308`` joules,
``2^63 - 1`` tokens) and a run too large for one page; a store that holds such a run anyway
(written before these rules) is still served, every page under ``MAX_RESPONSE_BYTES``, to a
client with gRPC's default 4 MiB receive limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from greenprune.api.eval.v1 import eval_pb2
from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.core.limits import MAX_RECORD_BYTES, MAX_RESPONSE_BYTES
from greenprune.rpc.client import read_pages, sync_channel
from greenprune.rpc.server_thread import ServerThread
from results_service import pages
from results_service.store import ResultsStore
from tests import samples

pb = results_pb2
TIMEOUT = 60
GRPC_DEFAULT_RECEIVE = 4 * 1024 * 1024
MODEL = "reference:tiny-llama"


@pytest.fixture
def server(service_factory: Callable[..., ServerThread]) -> ServerThread:
    return service_factory("results")


@pytest.fixture
def stub(server: ServerThread) -> Iterator[results_pb2_grpc.ResultsServiceStub]:
    """A client with gRPC's default receive limit (4 MiB)."""
    channel = sync_channel(server.address, None, max_message_bytes=GRPC_DEFAULT_RECEIVE)
    yield results_pb2_grpc.ResultsServiceStub(channel)
    channel.close()


def _extreme_profile() -> results_pb2.ProfileRun:
    run = samples.profile_run(
        "extreme-profile", model=MODEL, costs={"ckpt-x": 1e-3}, experiment="demo", rounds=3
    )
    point = run.result.points[0]
    point.net_joules, point.gross_joules, point.tokens = -1e308, 1e308, 2**63 - 1
    return run


def _many_metrics(request_id: str, count: int) -> results_pb2.EvalRun:
    """An eval run of ``count`` metrics named by 4 KB each."""
    run = samples.eval_run(request_id, task="t", metrics={"acc": 0.5}, net_joules=1.0, model=MODEL)
    run.result.metrics.extend(
        eval_pb2.MetricValue(task="t", metric=f"{index:05d}" + "m" * 4090, value=0.5)
        for index in range(count)
    )
    return run


def _code(call: Callable[..., object], request: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=TIMEOUT)
    return caught.value


def test_numbers_beyond_what_any_run_measures_are_refused_and_views_still_answer(
    stub: results_pb2_grpc.ResultsServiceStub,
) -> None:
    stub.RecordProfileRun(pb.RecordProfileRunRequest(run=samples.demo_profile()), timeout=TIMEOUT)
    error = _code(stub.RecordProfileRun, pb.RecordProfileRunRequest(run=_extreme_profile()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "run.result.points[0].net_joules" in error.details(), error.details()

    answer = stub.QueryView(pb.QueryViewRequest(view=pb.VIEW_PROFILE), timeout=TIMEOUT)
    assert answer.table.rows
    export = pb.ExportViewRequest(view=pb.VIEW_PROFILE, format=pb.EXPORT_FORMAT_CSV)
    assert stub.ExportView(export, timeout=TIMEOUT).data


def test_a_run_too_large_for_one_page_is_refused(
    server: ServerThread, stub: results_pb2_grpc.ResultsServiceStub
) -> None:
    run = _many_metrics("too-many", MAX_RECORD_BYTES // 4096 + 10)
    with sync_channel(server.address, None) as channel:  # the SDK's 64 MiB, to send it
        sender = results_pb2_grpc.ResultsServiceStub(channel)
        error = _code(sender.BatchRecordEvalRuns, pb.BatchRecordEvalRunsRequest(runs=[run]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "runs[0]" in error.details() and "bytes" in error.details(), error.details()
    missing = _code(stub.GetEvalRun, pb.GetEvalRunRequest(request_id="too-many"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


def test_a_stored_run_larger_than_a_page_is_served_cut_to_fit(
    tmp_path: Path, service_factory: Callable[..., ServerThread]
) -> None:
    """A store holding an eval run of 5,000 metrics of 4 KB names (20 MB), from before."""
    path = tmp_path / "results" / "results" / "results.duckdb"  # where service_factory serves
    with ResultsStore(path) as store:
        small = samples.eval_run(
            "small", task="t", metrics={"acc": 0.5}, net_joules=1.0, model=MODEL
        )
        store.record_eval_runs([small])
        store.record_eval_run(_many_metrics("huge", 5000))
    server = service_factory("results")
    with sync_channel(server.address, None, max_message_bytes=GRPC_DEFAULT_RECEIVE) as channel:
        stub = results_pb2_grpc.ResultsServiceStub(channel)
        request = pb.ListEvalRunsRequest()
        pages = list(read_pages(lambda r: stub.ListEvalRuns(r, timeout=TIMEOUT), request))
        got = stub.GetEvalRun(pb.GetEvalRunRequest(request_id="huge"), timeout=TIMEOUT)
    assert all(page.ByteSize() <= MAX_RESPONSE_BYTES for page in pages)
    runs = {run.request_id: run for page in pages for run in page.runs}
    assert set(runs) == {"small", "huge"}
    assert [metric.metric for metric in runs["small"].result.metrics] == ["acc"]
    huge = runs["huge"].result.metrics
    assert len(huge) == 5001 and huge[1].metric.startswith("00000m")  # every metric, names cut
    assert huge[1].metric.endswith("bytes]") and len(huge[1].metric) < 4096
    assert got.run.request_id == "huge" and got.ByteSize() <= MAX_RESPONSE_BYTES


def test_a_record_of_too_many_entries_loses_its_largest_lists_to_fit() -> None:
    run = _many_metrics("huge", 2000)
    cut = pages.fit(run, 100_000)
    assert cut.ByteSize() <= 100_000 and run.ByteSize() > 2000 * 4096  # a copy is cut
    assert cut.request_id == "huge" and cut.result.metrics[0].metric == "acc"
    assert 0 < len(cut.result.metrics) < 2001 and cut.result.energy == run.result.energy
