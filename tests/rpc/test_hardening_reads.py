"""Hardening of the ResultsService's reads: stored data never makes a read fail.

A legacy store holds strings far larger than the service accepts today (written before the
checks, here straight into the DuckDB file). Every read still answers: lists and views are
paged under ``MAX_RESPONSE_BYTES`` with an oversized string cut and marked, exports come in
chunks that concatenate into the whole file. On a normal store, paging returns exactly the rows
of a single call.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import duckdb
import grpc
import pandas as pd
import pytest

from greenprune.api.eval.v1 import eval_pb2
from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.client.sdk import Client
from greenprune.core.errors import FailedPreconditionError
from greenprune.core.limits import MAX_RESPONSE_BYTES, MAX_TEXT_CHARS
from greenprune.core.settings import ResultsSettings
from greenprune.rpc.client import decode_table, read_pages, sync_channel
from greenprune.rpc.server_thread import ServerThread
from results_app import data
from results_app.settings import AppSettings
from results_service import pages
from results_service.server import build
from results_service.store import EXPORT_SNAPSHOTS, ResultsStore
from tests import samples

pb = results_pb2
HUGE_BYTES = 35_000_000
"""The size of each oversized legacy string (md5 hex digits, which do not compress)."""
HUGE_RUNS = ("huge-0", "huge-1")
HUGE_PRUNE_RUN = "huge-prune"
TIMEOUT = 60


def _huge_sql(prefix: str) -> str:
    """SQL for ``prefix`` followed by HUGE_BYTES hex digits."""
    digits = f"(SELECT string_agg(md5(i::VARCHAR), '') FROM range({HUGE_BYTES // 32}) t(i))"
    return f"'{prefix}' || {digits}"


def _legacy_store(path: Path) -> tuple[int, int]:
    """Writes a study plus oversized runs the RPCs would refuse; returns (eval, prune) counts."""
    prune_runs, eval_runs = samples.demo_study(experiment="legacy")
    prune_runs.append(
        samples.prune_run(HUGE_PRUNE_RUN, model="m", ratio=0.1, checkpoint_id="ckpt-huge")
    )
    eval_runs += [
        samples.eval_run(
            request_id,
            task="greenprune_facts",
            metrics={"acc": 0.5},
            net_joules=10.0,
            model=f"huge-model-{index}",
            experiment="legacy",
        )
        for index, request_id in enumerate(HUGE_RUNS)
    ]
    with ResultsStore(path) as store:
        for run in prune_runs:
            store.record_prune_run(run)
        store.record_eval_runs(eval_runs)
    connection = duckdb.connect(str(path))
    try:
        for index, request_id in enumerate(HUGE_RUNS):
            connection.execute(
                f"UPDATE eval_runs SET model = {_huge_sql(f'huge-model-{index}:')}"
                " WHERE request_id = ?",
                [request_id],
            )
        connection.execute(
            f"UPDATE prune_runs SET job_name = {_huge_sql('job:')} WHERE request_id = ?",
            [HUGE_PRUNE_RUN],
        )
    finally:
        connection.close()
    return len(eval_runs), len(prune_runs)


def _serve(home: Path) -> ServerThread:
    settings = ResultsSettings(port=0, state_dir=home, grace_seconds=1.0)
    return ServerThread(lambda: build(settings), settings).start()


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, int, int]]:
    home = tmp_path_factory.mktemp("legacy")
    eval_count, prune_count = _legacy_store(home / "results" / "results.duckdb")
    running = _serve(home)
    yield running, eval_count, prune_count
    running.stop()


@pytest.fixture(scope="module")
def legacy_stub(
    legacy: tuple[ServerThread, int, int],
) -> Iterator[results_pb2_grpc.ResultsServiceStub]:
    channel = sync_channel(legacy[0].address, None)
    yield results_pb2_grpc.ResultsServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def normal_stub(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[results_pb2_grpc.ResultsServiceStub]:
    running = _serve(tmp_path_factory.mktemp("normal"))
    channel = sync_channel(running.address, None)
    stub = results_pb2_grpc.ResultsServiceStub(channel)
    prune_runs, eval_runs = samples.demo_study(experiment="normal")
    for run in prune_runs:
        stub.RecordPruneRun(pb.RecordPruneRunRequest(run=run), timeout=TIMEOUT)
    stub.BatchRecordEvalRuns(pb.BatchRecordEvalRunsRequest(runs=eval_runs), timeout=TIMEOUT)
    yield stub
    channel.close()
    running.stop()


def _pages(call: object, request: object) -> list:
    pages = list(read_pages(lambda r: call(r, timeout=TIMEOUT), request))  # type: ignore[operator]
    assert all(page.ByteSize() <= MAX_RESPONSE_BYTES for page in pages)
    return pages


def _cut(prefix: str) -> str:
    """What a huge string starting with ``prefix`` reads as once cut."""
    removed = len(prefix) + HUGE_BYTES - MAX_TEXT_CHARS
    return f"…[truncated {removed} bytes]"


def _assert_cut(value: str, prefix: str) -> None:
    assert value.startswith(prefix)
    assert value.endswith(_cut(prefix))
    assert len(value.encode()) == MAX_TEXT_CHARS + len(_cut(prefix).encode())


def _refused(call: object, request: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=TIMEOUT)  # type: ignore[operator]
    return caught.value


# A legacy store of oversized rows --------------------------------------------------------------


def test_query_view_pages_oversized_rows_and_cuts_their_strings(
    legacy: tuple[ServerThread, int, int], legacy_stub: results_pb2_grpc.ResultsServiceStub
) -> None:
    pages = _pages(legacy_stub.QueryView, pb.QueryViewRequest(view=pb.VIEW_RUNS))
    assert len(pages) >= 2
    table = pb.Table(columns=pages[0].table.columns)
    for page in pages:
        table.rows.extend(page.table.rows)
    names, _, rows = decode_table(table)
    assert len(rows) == legacy[1]
    models = {row[names.index("run_id")]: row[names.index("model")] for row in rows}
    for index, request_id in enumerate(HUGE_RUNS):
        _assert_cut(models[request_id], f"huge-model-{index}:")


def test_list_runs_page_oversized_runs_and_cut_their_strings(
    legacy: tuple[ServerThread, int, int], legacy_stub: results_pb2_grpc.ResultsServiceStub
) -> None:
    pages = _pages(legacy_stub.ListEvalRuns, pb.ListEvalRunsRequest())
    assert len(pages) >= 3  # each oversized run on a page of its own
    runs = {run.request_id: run for page in pages for run in page.runs}
    assert len(runs) == legacy[1]
    for index, request_id in enumerate(HUGE_RUNS):
        _assert_cut(runs[request_id].model, f"huge-model-{index}:")
    assert runs["legacy-eval-ckpt-0-020-greenprune_facts"].model == "reference:tiny-llama"

    pages = _pages(legacy_stub.ListPruneRuns, pb.ListPruneRunsRequest(page_size=1000))
    prune_runs = {run.request_id: run for page in pages for run in page.runs}
    assert len(prune_runs) == legacy[2]
    _assert_cut(prune_runs[HUGE_PRUNE_RUN].job_name, "job:")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_view_of_oversized_rows_comes_in_chunks_of_the_whole_file(
    legacy: tuple[ServerThread, int, int],
    legacy_stub: results_pb2_grpc.ResultsServiceStub,
    tmp_path: Path,
    fmt: str,
) -> None:
    request = pb.ExportViewRequest(view=pb.VIEW_RUNS, format=_format(fmt))
    pages = _pages(legacy_stub.ExportView, request)
    assert len(pages) > 2 * HUGE_BYTES // MAX_RESPONSE_BYTES
    assert {page.filename for page in pages} == {f"runs.{fmt}"}
    path = tmp_path / f"runs.{fmt}"
    path.write_bytes(b"".join(page.data for page in pages))
    if fmt == "csv":
        frame = pd.read_csv(path)
    else:
        frame = duckdb.sql(f"SELECT * FROM read_parquet('{path}')").df()
    assert len(frame) == legacy[1]
    models = frame.set_index("run_id")["model"]
    for index, request_id in enumerate(HUGE_RUNS):  # the file is whole: nothing is cut
        assert models[request_id].startswith(f"huge-model-{index}:")
        assert len(models[request_id]) == len(f"huge-model-{index}:") + HUGE_BYTES


def _format(fmt: str) -> int:
    return {name: value for value, name in pages.EXPORT_FORMATS.items()}[fmt]


def test_sdk_report_and_app_read_the_legacy_store(legacy: tuple[ServerThread, int, int]) -> None:
    server, eval_count, _ = legacy
    with Client(results=server.address, token="") as client:
        frame = client.results("runs", experiment="legacy")
        assert len(frame) == eval_count
        rows = client.report_rows("legacy")
    assert {row.model[:12] for row in rows} >= {"huge-model-0", "huge-model-1"}

    settings = AppSettings(results_address=server.address, token=None, timeout_seconds=TIMEOUT)
    view = data._query_view(settings, "runs", data.Filter())
    assert len(view) == eval_count
    assert view.set_index("run_id").loc["huge-1", "model"].endswith(_cut("huge-model-1:"))
    exported = data._export_view(settings, "runs", data.Filter(), "csv")
    assert len(pd.read_csv(io.BytesIO(exported))) == eval_count


# A normal store ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "view", [v for v in pb.View.values() if v != pb.VIEW_UNSPECIFIED], ids=pb.View.Name
)
def test_query_view_pages_are_the_rows_of_one_call(
    normal_stub: results_pb2_grpc.ResultsServiceStub, view: int
) -> None:
    single = normal_stub.QueryView(pb.QueryViewRequest(view=view), timeout=TIMEOUT)
    assert single.next_page_token == ""
    pages = _pages(normal_stub.QueryView, pb.QueryViewRequest(view=view, page_size=2))
    assert len(pages) == max(1, -(-len(single.table.rows) // 2))
    assert all(page.table.columns == single.table.columns for page in pages)
    assert [row for page in pages for row in page.table.rows] == list(single.table.rows)


def test_list_pages_are_the_runs_of_one_call(
    normal_stub: results_pb2_grpc.ResultsServiceStub,
) -> None:
    single = normal_stub.ListEvalRuns(pb.ListEvalRunsRequest(page_size=1000), timeout=TIMEOUT)
    assert single.next_page_token == "" and len(single.runs) > 4
    pages = _pages(normal_stub.ListEvalRuns, pb.ListEvalRunsRequest(page_size=4))
    assert len(pages) == -(-len(single.runs) // 4)
    assert [run for page in pages for run in page.runs] == list(single.runs)
    single = normal_stub.ListPruneRuns(pb.ListPruneRunsRequest(), timeout=TIMEOUT)
    pages = _pages(normal_stub.ListPruneRuns, pb.ListPruneRunsRequest(page_size=1))
    assert [run for page in pages for run in page.runs] == list(single.runs)


def test_a_small_export_is_one_chunk(normal_stub: results_pb2_grpc.ResultsServiceStub) -> None:
    request = pb.ExportViewRequest(view=pb.VIEW_RUNS, format=pb.EXPORT_FORMAT_PARQUET)
    response = normal_stub.ExportView(request, timeout=TIMEOUT)
    assert response.next_page_token == ""
    assert len(pd.read_parquet(io.BytesIO(response.data))) == 9


@pytest.mark.parametrize("token", ["x", "-1", "1e3", "٣", "9" * 30, "x" * 100_000])
def test_bad_view_tokens_are_invalid_argument(
    normal_stub: results_pb2_grpc.ResultsServiceStub, token: str
) -> None:
    error = _refused(normal_stub.QueryView, pb.QueryViewRequest(view=1, page_token=token))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("page_token")
    request = pb.ExportViewRequest(view=1, format=pb.EXPORT_FORMAT_CSV, page_token=token)
    error = _refused(normal_stub.ExportView, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("page_token") and len(error.details()) < 200


@pytest.mark.parametrize(
    "token", ["12", "12-", "12-ABCDEF01", "12-0000000g", "99999999999999999-0"]
)
def test_malformed_export_tokens_are_invalid_argument(
    normal_stub: results_pb2_grpc.ResultsServiceStub, token: str
) -> None:
    request = pb.ExportViewRequest(view=1, format=pb.EXPORT_FORMAT_CSV, page_token=token)
    error = _refused(normal_stub.ExportView, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("page_token")


def test_an_export_token_of_another_file_is_failed_precondition(
    normal_stub: results_pb2_grpc.ResultsServiceStub,
) -> None:
    request = pb.ExportViewRequest(view=1, format=pb.EXPORT_FORMAT_CSV, page_token="10-00000000")
    error = _refused(normal_stub.ExportView, request)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details().startswith("page_token: the view changed"), error.details()


# The store and the converter -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_chunks_are_one_file_while_runs_are_recorded(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "results.duckdb"
    prune_runs, eval_runs = samples.demo_study(experiment="chunks")
    with ResultsStore(path) as store:
        store.record_eval_runs(eval_runs)
        whole = store.export_view("runs", None, fmt)
        chunk = store.export_chunk("runs", None, fmt, size=500)
        chunks, chunks_fingerprint = [chunk.data], chunk.fingerprint
        extra = samples.eval_run("late", task="t", metrics={"acc": 0.1}, net_joules=1.0, model="x")
        store.record_eval_run(extra)
        while chunk.next_offset is not None:
            chunk = store.export_chunk("runs", None, fmt, 500, chunk.next_offset, chunk.fingerprint)
            chunks.append(chunk.data)
        assert len(chunks) > 2 and b"".join(chunks) == whole
        file = tmp_path / f"runs.{fmt}"
        file.write_bytes(b"".join(chunks))
        read = pd.read_csv(file) if fmt == "csv" else pd.read_parquet(file)
        assert sorted(read["run_id"]) == sorted(run.request_id for run in eval_runs)
    with ResultsStore(path) as reopened:  # the kept file is gone, and the view has changed
        with pytest.raises(FailedPreconditionError, match="the view changed"):
            reopened.export_chunk("runs", None, fmt, 500, 500, chunks_fingerprint)
        current = reopened.export_chunk("runs", None, fmt, size=500)
        now = reopened.export_view("runs", None, fmt)
    with ResultsStore(path) as reopened:  # not kept, rendered again, unchanged: served
        later = reopened.export_chunk("runs", None, fmt, 500, 500, current.fingerprint)
        assert later.data == now[500:1000]


def test_the_store_keeps_a_bounded_number_of_exports(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "results.duckdb") as store:
        _, eval_runs = samples.demo_study()
        store.record_eval_runs(eval_runs)
        for view in ("runs", "accuracy_vs_sparsity", "energy_vs_sparsity", "energy_components"):
            for fmt in ("csv", "parquet"):
                store.export_chunk(view, None, fmt, size=100)
        assert len(store._exports) == EXPORT_SNAPSHOTS


def test_cap_strings_cuts_every_kind_of_string_field() -> None:
    big = "é" * 5000  # 10,000 bytes: the cut never splits a character
    run = pb.EvalRun(
        request_id="r",
        model=big,
        versions={"lm_eval": big, big: "1"},
        spec=eval_pb2.EvalSpec(tasks=["short", big]),
    )
    cell = pb.Table().rows.add()
    cell.extend([big, 1.0, None])
    pages.cap_strings(run)
    pages.cap_strings(cell)
    marker = f"…[truncated {10_000 - MAX_TEXT_CHARS} bytes]"
    assert run.model == "é" * (MAX_TEXT_CHARS // 2) + marker
    assert run.request_id == "r"
    assert run.versions["lm_eval"] == run.model
    assert run.versions[run.model] == "1" and len(run.versions) == 2
    assert list(run.spec.tasks) == ["short", run.model]
    assert cell.values[0].string_value == run.model and cell.values[1].number_value == 1.0


def test_take_page_always_takes_one_message_and_stops_at_the_budget() -> None:
    small = [pb.EvalRun(request_id=f"r{i}", model="m" * 100) for i in range(10)]
    assert len(pages.take_page(iter(small), 350)) == 3
    assert len(pages.take_page(iter(small), 10)) == 1
    huge = pb.EvalRun(request_id="h", model="m" * 100_000)
    page = pages.take_page(iter([huge, *small]), 50_000)
    assert page[0].model.endswith("…[truncated 95904 bytes]")
    assert sum(message.ByteSize() for message in page) <= 50_000
