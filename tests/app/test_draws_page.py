"""The Trade-off page shows the spread of a point's pruning draws (``pruning.seeds``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from tests import samples
from tests.app.conftest import ResultsServer

MAIN = Path(__file__).resolve().parents[2] / "results_app" / "main.py"
DRAWS = {"base": (7, 90), "d0": (7, 80), "d1": (8, 60)}
"""Checkpoint: (pruning seed, documents right of 100); d0 and d1 are two draws of 0.4."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResultsServer]:
    running = ResultsServer(tmp_path_factory.mktemp("draws"))
    metadata = [("authorization", f"Bearer {running.token}")]
    with grpc.insecure_channel(running.address) as channel:
        stub = results_pb2_grpc.ResultsServiceStub(channel)
        for name, (seed, correct) in DRAWS.items():
            ratio = 0.0 if name == "base" else 0.4
            run = samples.prune_run(f"p-{name}", model="m", ratio=ratio, checkpoint_id=name)
            run.spec.seed = seed
            stub.RecordPruneRun(results_pb2.RecordPruneRunRequest(run=run), metadata=metadata)
            items = {doc: 1.0 if doc < correct else 0.0 for doc in range(100)}
            evaluated = samples.eval_run(
                f"e-{name}",
                task="arith",
                metrics={"acc": correct / 100},
                net_joules=2.0 - ratio,
                checkpoint_id=name,
                items=items,
            )
            stub.RecordEvalRun(results_pb2.RecordEvalRunRequest(run=evaluated), metadata=metadata)
        # The profile measures the first draw; the request mix prices a request.
        profile = samples.profile_run(
            "profile",
            model="m",
            costs={"base": 1e-3, "d0": 0.8e-3},
            round_noise=(1.0, 1.1, 0.9, 1.05, 0.95, 1.02),
        )
        profile.spec.analysis.workload.prompt_tokens = 96
        profile.spec.analysis.workload.output_tokens = 32
        stub.RecordProfileRun(results_pb2.RecordProfileRunRequest(run=profile), metadata=metadata)
    yield running
    running.stop()


def test_the_overview_pays_back_per_request_with_the_draws_cost(
    server: ResultsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENPRUNE_APP_RESULTS_ADDRESS", server.address)
    monkeypatch.setenv("GREENPRUNE_TOKEN", server.token)
    app = AppTest.from_file(str(MAIN), default_timeout=60)
    app.session_state["greenprune_signed_in"] = True
    app.run()
    assert not app.exception and not app.error
    lines = [item.value for item in app.markdown if "J spent" in str(item.value)]
    assert len(lines) == 1
    assert "(mean of 2 pruning draws)" in lines[0] and "per request" in lines[0]
    assert "requests [" in lines[0]
    captions = " ".join(str(item.value) for item in app.caption)
    assert "Request mix: 96 prompt + 32 output tokens" in captions


def test_the_tradeoff_page_shows_each_draw(
    server: ResultsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENPRUNE_APP_RESULTS_ADDRESS", server.address)
    monkeypatch.setenv("GREENPRUNE_TOKEN", server.token)
    app = AppTest.from_file(str(MAIN), default_timeout=60)
    app.session_state["greenprune_signed_in"] = True
    app.run()
    app.switch_page("app_pages/tradeoff.py").run()
    assert not app.exception and not app.error
    assert "Pruning draws" in [item.value for item in app.subheader]
    tables: list[pd.DataFrame] = [frame.value for frame in app.dataframe]
    combined = next(t for t in tables if "draws" in t.columns)
    assert set(combined["draws"]) == {2}
    assert set(combined["draw_low"].round(6)) == {0.6} and set(combined["draw_high"]) == {0.8}
    assert all(text.endswith("(mean of 2 pruning draws)") for text in combined["text"])
    charts = list(app.get("vega_lite_chart"))
    assert len(charts) == 2  # the trade-off and the draws
