"""The app's pages with an energy profile recorded: J/token from the profile, with intervals.

A second ResultsService holds the app study of ``conftest.py`` plus a profile of its three
configurations measured in interleaved rounds, the pruned ones consistently cheaper.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.core import findings
from greenprune.rpc.client import sync_channel
from tests import samples
from tests.app.conftest import EXPERIMENT, MODEL, ResultsServer, checkpoint_id

MAIN = Path(__file__).resolve().parents[2] / "results_app" / "main.py"
COSTS = {checkpoint_id(0.0): 1e-3, checkpoint_id(0.2): 0.85e-3, checkpoint_id(0.4): 0.7e-3}
BATCHES = (1, 8)


@pytest.fixture(scope="module")
def profiled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResultsServer]:
    server = ResultsServer(tmp_path_factory.mktemp("profiled"))
    server.seed()
    run = samples.profile_run(
        "profile-study",
        model=MODEL,
        costs=COSTS,
        experiment=EXPERIMENT,
        batch_sizes=BATCHES,
        round_noise=(1.0, 1.2, 0.9, 1.1, 1.3, 0.95),
    )
    for point in run.result.points:  # the 20% checkpoint skips 30% of the baseline's MACs
        point.kernel_path = "dense float32"
        point.macs_skipped_share = {checkpoint_id(0.2): 0.3, checkpoint_id(0.4): 0.5}.get(
            point.checkpoint_id, 0.0
        )
    channel = sync_channel(server.address, server.token)
    try:
        stub = results_pb2_grpc.ResultsServiceStub(channel)
        assert stub.RecordProfileRun(results_pb2.RecordProfileRunRequest(run=run)).created
    finally:
        channel.close()
    yield server
    server.stop()


@pytest.fixture
def profiled_env(monkeypatch: pytest.MonkeyPatch, profiled_server: ResultsServer) -> None:
    monkeypatch.setenv("GREENPRUNE_APP_RESULTS_ADDRESS", profiled_server.address)
    monkeypatch.setenv("GREENPRUNE_TOKEN", profiled_server.token)


def _run(page: str | None = None) -> AppTest:
    app = AppTest.from_file(str(MAIN), default_timeout=30)
    app.session_state["greenprune_signed_in"] = True
    app.run()
    if page is not None:
        app.switch_page(f"app_pages/{page}.py").run()
    assert not app.exception, [item.value for item in app.exception]
    assert not app.error, [item.value for item in app.error]
    return app


def test_overview_leads_with_the_profile_change_and_its_interval(profiled_env: None) -> None:
    app = _run()
    headline = next(m.value for m in app.markdown if "prunable parameters" in m.value)
    assert "of all parameters" in headline
    assert f"profile J/token, {findings.PROFILE_PHASE} at batch {max(BATCHES)}: " in headline
    assert "\u221215.0% [\u221215.0, \u221215.0]" in headline


def test_overview_shows_each_kernel_path_and_its_realization_ratio(profiled_env: None) -> None:
    app = _run()
    table = next(
        frame.value for frame in app.dataframe if "realization_ratio" in frame.value.columns
    )
    by_checkpoint = table.set_index("label")
    realized = {
        label.split("[")[1][:8]: value
        for label, value in by_checkpoint["realization_ratio"].items()
    }
    # 15% saved of 30% skipped; 30% saved of 50% skipped
    assert realized[checkpoint_id(0.2)[:8]] == pytest.approx(0.5)
    assert realized[checkpoint_id(0.4)[:8]] == pytest.approx(0.6)
    assert set(by_checkpoint["kernel_path"]) == {"dense float32"}
    assert not any(findings.NO_SAVING in warning.value for warning in app.warning)


def test_tradeoff_puts_profile_joules_per_token_on_the_energy_axis(profiled_env: None) -> None:
    app = _run("tradeoff")
    (chart,) = list(app.get("vega_lite_chart"))
    frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets]
    points = max(frames, key=len).set_index("ratio")
    for ratio in (0.0, 0.2, 0.4):
        expected = COSTS[checkpoint_id(ratio)] / max(BATCHES) ** 0.5
        assert points.at[ratio, "energy"] == pytest.approx(expected, rel=0.2)
    assert "J/token" in chart.proto.spec
    # The front's table names its energy by its unit (not "net_joules" holding J/token).
    front = app.dataframe[0]
    assert "energy" in front.value.columns and "net_joules" not in front.value.columns


def test_compare_shows_every_change_with_its_interval(profiled_env: None) -> None:
    app = _run("compare")
    table = app.dataframe[0].value
    for text in list(table["energy_change_text"]) + list(table["accuracy_change_text"]):
        assert "[" in text
        assert not text[0].isdigit()
