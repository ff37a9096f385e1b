"""One baseline per model, everywhere: an int8 copy of the unpruned model is never one.

The study of ``tests/data/results_store_v2`` (ratios 0, 0.2 and 0.4, an int8 copy of the unpruned
model at ratio 0, a LoRA-recovered copy, the base model evaluated directly, and a profile) is
recorded into a real ResultsService and read through ``greenprune report``'s client, every view,
and the app's Overview page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.client import report
from greenprune.client.sdk import Client
from tests import samples
from tests.app.conftest import ResultsServer

MAIN = Path(__file__).resolve().parents[2] / "results_app" / "main.py"
BASELINE = "ckpt-0-000"
INT8 = "ckpt-int8"
BASELINE_ACCURACY = 0.9
"""The baseline's accuracy on both accuracy tasks of the study (the int8 copy's is 0.89)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResultsServer]:
    running = ResultsServer(tmp_path_factory.mktemp("one-baseline"))
    runs = samples.v2_runs()
    with grpc.insecure_channel(running.address) as channel:
        stub = results_pb2_grpc.ResultsServiceStub(channel)
        metadata = [("authorization", f"Bearer {running.token}")]
        for run in runs["prune_runs"]:
            stub.RecordPruneRun(results_pb2.RecordPruneRunRequest(run=run), metadata=metadata)
        stub.BatchRecordEvalRuns(
            results_pb2.BatchRecordEvalRunsRequest(runs=runs["eval_runs"]), metadata=metadata
        )
        for run in runs["profile_runs"]:
            stub.RecordProfileRun(results_pb2.RecordProfileRunRequest(run=run), metadata=metadata)
    yield running
    running.stop()


def test_the_report_has_one_baseline_per_model_and_task(server: ResultsServer) -> None:
    with Client(results=server.address, token=server.token) as client:
        rows = client.report_rows("old")
    baselines = [row for row in rows if row.delta_value_text == report.BASELINE_TEXT]
    assert {row.checkpoint_id for row in baselines} == {BASELINE}
    assert len(baselines) == len({row.task for row in rows})
    int8 = [row for row in rows if row.checkpoint_id == INT8]
    assert int8 and all(row.delta_value_text != report.BASELINE_TEXT for row in int8)
    assert all(row.delta_value == pytest.approx(0.89 - BASELINE_ACCURACY) for row in int8)


@pytest.mark.parametrize(
    "view", [name.removeprefix("VIEW_").lower() for name in results_pb2.View.keys()[1:]]
)
def test_every_view_has_one_baseline_per_model(server: ResultsServer, view: str) -> None:
    with Client(results=server.address, token=server.token) as client:
        frame = client.results(view, experiment="old")
    checkpoints = frame["checkpoint_id"] if "checkpoint_id" in frame.columns else None
    if "is_baseline" in frame.columns:
        baseline = frame[frame["is_baseline"].fillna(False).astype(bool)]
        assert set(baseline["checkpoint_id"]) == {BASELINE}, view
    for side in ("a", "b"):
        if f"is_baseline_{side}" in frame.columns:
            chosen = frame[frame[f"is_baseline_{side}"].fillna(False).astype(bool)]
            assert set(chosen[f"checkpoint_{side}"]) == {BASELINE}, view
    if "baseline_value" in frame.columns and checkpoints is not None:
        int8 = frame[(checkpoints == INT8) & frame["metric"].isin(["acc"])]
        assert (int8["baseline_value"] == BASELINE_ACCURACY).all(), view
    if view in ("findings", "payback"):
        assert INT8 in set(frame["checkpoint_id"]) and BASELINE not in set(frame["checkpoint_id"])


def test_the_overview_compares_with_the_baseline_alone(
    server: ResultsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENPRUNE_APP_RESULTS_ADDRESS", server.address)
    monkeypatch.setenv("GREENPRUNE_TOKEN", server.token)
    app = AppTest.from_file(str(MAIN), default_timeout=60)
    app.session_state["greenprune_signed_in"] = True
    app.run()
    assert not app.exception and not app.error
    table: pd.DataFrame = app.dataframe[0].value
    # Every compressed configuration, the int8 copy among them, against the one baseline.
    assert set(table["value_a"].round(6)) == {BASELINE_ACCURACY}
    assert "int8" in set(table["method_b"])
    assert len(table) == 4  # 0.2, 0.4, 0.4 + LoRA and int8; the baseline is not among them
