"""Every page of the app, run headless with AppTest against a real, seeded ResultsService.

Expected figures are computed here from the study in ``conftest.py``, not copied from the app.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from statistics import mean
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from results_app import data
from tests.app.conftest import (
    ACCURACY,
    ESTIMATED_RUN,
    LAYERS,
    NET_JOULES,
    PARAMETERS_BEFORE,
    RATIOS,
    SPREAD,
    TASKS,
    ResultsServer,
    kept_heads,
    mlp_width,
    prune_run_id,
)

MAIN = Path(__file__).resolve().parents[2] / "results_app" / "main.py"
ESTIMATE_TEXT = "Energy is an estimate (CPU-load model, no power counters)"


def _run(page: str | None = None, query: dict[str, str] | None = None) -> AppTest:
    app = AppTest.from_file(str(MAIN), default_timeout=30)
    app.session_state["greenprune_signed_in"] = True  # the sign-in: tests/app/test_hardening_app.py
    if query:
        app.query_params.update(query)
    app.run()
    if page is not None:
        app.switch_page(f"app_pages/{page}.py").run()
    return app


def _assert_clean(app: AppTest) -> None:
    assert not app.exception, [item.value for item in app.exception]
    assert not app.error, [item.value for item in app.error]


def _charts(app: AppTest) -> list[Any]:
    return list(app.get("vega_lite_chart"))


def _chart_frames(chart: Any) -> list[pd.DataFrame]:
    """The data sets a Vega-Lite chart element carries, as DataFrames."""
    return [
        pa.ipc.open_stream(dataset.data.data).read_all().to_pandas()
        for dataset in chart.proto.datasets
    ]


def _signed(fraction: float) -> str:
    return f"{fraction * 100:+.1f}%".replace("-", "\u2212")


def _warnings(app: AppTest) -> list[str]:
    return [item.value for item in app.warning]


def test_overview_shows_counts_and_the_headline(app_env: ResultsServer) -> None:
    app = _run()
    _assert_clean(app)
    tiles = {metric.label: metric.value for metric in app.metric}
    assert tiles["Experiments"] == "1"
    assert tiles["Models"] == "1"
    assert tiles["Runs"] == str(len(RATIOS) * len(TASKS) + len(RATIOS) - 1)

    base_accuracy = mean(ACCURACY[0.0].values())
    accuracy = mean(ACCURACY[0.2].values())
    base_energy = sum(NET_JOULES[0.0].values())
    energy = sum(NET_JOULES[0.2].values())
    energy_low = energy * (1 - SPREAD) / (base_energy * (1 + SPREAD)) - 1
    energy_high = energy * (1 + SPREAD) / (base_energy * (1 - SPREAD)) - 1
    headline = next(m.value for m in app.markdown if "prunable parameters" in m.value)
    removed = 1 - round(PARAMETERS_BEFORE * (1 - 0.2 * 0.9)) / PARAMETERS_BEFORE
    assert f"at 20% of prunable parameters = {removed:.1%} of all parameters" in headline
    # Paired by document over the three tasks (equal document counts: the mean's change).
    assert f"accuracy lower: {_signed(accuracy - base_accuracy)[:-1]} pt [" in headline
    assert f"({base_accuracy:.3f} \u2192 {accuracy:.3f})" in headline
    # Net energy of eval runs (not interleaved): its interval, without a verdict.
    expected = (
        f"per-task net energy: {_signed(energy / base_energy - 1)} "
        f"[{_signed(energy_low)[:-1]}, {_signed(energy_high)[:-1]}] (not interleaved: no verdict)"
    )
    assert expected in headline
    assert any(ESTIMATE_TEXT in text for text in _warnings(app))
    assert len(app.get("download_button")) == 4
    # No stray text: Streamlit writes a script's bare strings onto the page.
    assert not any("Session state" in item.value for item in app.markdown)


def test_tradeoff_plots_every_configuration_and_the_front(app_env: ResultsServer) -> None:
    app = _run("tradeoff")
    _assert_clean(app)
    charts = _charts(app)
    assert len(charts) == 1
    points = max(_chart_frames(charts[0]), key=len)
    by_ratio = points.set_index("ratio")
    for ratio in RATIOS:
        assert by_ratio.at[ratio, "energy"] == pytest.approx(sum(NET_JOULES[ratio].values()))
        assert by_ratio.at[ratio, "accuracy"] == pytest.approx(mean(ACCURACY[ratio].values()))
        assert by_ratio.at[ratio, "energy_low"] == pytest.approx(
            sum(NET_JOULES[ratio].values()) * (1 - SPREAD)
        )
    # The app's front agrees with the server's pareto_front view.
    front = app.dataframe[0].value
    server_front = data.query_view("pareto_front")
    assert sorted(front["ratio"]) == sorted(server_front["ratio"])
    spec = json.loads(charts[0].proto.spec)
    assert {layer["mark"]["type"] for layer in spec["layer"]} >= {"rule", "point", "text"}
    # The legend lists the study's ratios only.
    colors = [layer["encoding"].get("color", {}) for layer in spec["layer"]]
    domains = [c["scale"]["domain"] for c in colors if "scale" in c and "domain" in c["scale"]]
    assert domains and all(domain == list(RATIOS) for domain in domains)


def test_tradeoff_per_task_and_log_scale(app_env: ResultsServer) -> None:
    app = _run("tradeoff")
    app.selectbox(key="tradeoff_task").select("greenprune_facts").run()
    app.toggle(key="tradeoff_log").set_value(True).run()
    _assert_clean(app)
    chart = _charts(app)[0]
    points = max(_chart_frames(chart), key=len)
    assert sorted(points["energy"]) == sorted(
        NET_JOULES[ratio]["greenprune_facts"] for ratio in RATIOS
    )
    assert '"type": "log"' in chart.proto.spec


def test_sparsity_curves_draw_every_measure(app_env: ResultsServer) -> None:
    app = _run("sparsity")
    _assert_clean(app)
    charts = _charts(app)
    assert len(charts) == 5
    accuracy = max(_chart_frames(charts[0]), key=len)
    assert set(accuracy["measure"]) == {"accuracy"}
    for row in accuracy.itertuples():
        assert row.value == pytest.approx(ACCURACY[row.ratio][row.task])
    assert any(ESTIMATE_TEXT in text for text in _warnings(app))


def test_tasks_page_shows_the_change_per_task(app_env: ResultsServer) -> None:
    app = _run("tasks")
    _assert_clean(app)
    assert len(_charts(app)) == 2
    table = app.dataframe[0].value
    row = table[(table["task"] == "greenprune_arith") & (table["ratio"] == 0.2)].iloc[0]
    base, pruned = ACCURACY[0.0]["greenprune_arith"], ACCURACY[0.2]["greenprune_arith"]
    assert row["relative_delta_value"] == pytest.approx(pruned / base - 1)
    assert row["relative_delta_net_joules"] == pytest.approx(
        NET_JOULES[0.2]["greenprune_arith"] / NET_JOULES[0.0]["greenprune_arith"] - 1
    )
    assert len(table) == (len(RATIOS) - 1) * len(TASKS)


def test_run_detail_of_an_estimated_run_warns_and_shows_layers(app_env: ResultsServer) -> None:
    app = _run("run_detail", query={"run": ESTIMATED_RUN})
    _assert_clean(app)
    assert any(ESTIMATE_TEXT in text for text in _warnings(app))
    assert any("cpu-load-estimate" in item.value for item in app.markdown)
    charts = _charts(app)
    assert len(charts) == 2
    layers = next(f for chart in charts for f in _chart_frames(chart) if "layer" in f.columns)
    ratio = 0.4
    assert list(layers["attention_heads"]) == [kept_heads(ratio, i) for i in range(LAYERS)]
    assert list(layers["intermediate_size"]) == [mlp_width(ratio, i) for i in range(LAYERS)]


def test_run_detail_of_a_measured_run_does_not_warn(app_env: ResultsServer) -> None:
    app = _run("run_detail", query={"run": "eval-020-greenprune_facts"})
    _assert_clean(app)
    assert not any(ESTIMATE_TEXT in text for text in _warnings(app))
    assert any("**rapl**" in item.value for item in app.markdown)


def test_run_detail_of_a_prune_run(app_env: ResultsServer) -> None:
    app = _run("run_detail", query={"run": prune_run_id(0.2)})
    _assert_clean(app)
    assert app.radio(key="detail_kind").value == "Prune run"
    tiles = {metric.label: metric.value for metric in app.metric}
    assert tiles["Parameters removed"] == "18.0%"
    assert len(_charts(app)) == 2


def test_compare_puts_two_configurations_side_by_side(app_env: ResultsServer) -> None:
    app = _run("compare")
    _assert_clean(app)
    assert len(_charts(app)) == 1
    table = app.dataframe[0].value.set_index("task")
    for task in TASKS:
        assert table.at[task, "value_a"] == pytest.approx(ACCURACY[0.0][task])
        assert table.at[task, "value_b"] == pytest.approx(ACCURACY[0.4][task])
        assert table.at[task, "energy_change"] == pytest.approx(
            NET_JOULES[0.4][task] / NET_JOULES[0.0][task] - 1
        )


def test_exports_come_from_the_service(app_env: ResultsServer) -> None:
    csv = pd.read_csv(io.BytesIO(data.export_view("runs", fmt="csv")))
    assert len(csv) == len(RATIOS) * len(TASKS)
    parquet = pq.read_table(io.BytesIO(data.export_view("runs", fmt="parquet"))).to_pandas()
    assert sorted(parquet["run_id"]) == sorted(csv["run_id"])
    filtered = data.export_view("runs", data.Filter(task="greenprune_logic"), "csv")
    assert len(pd.read_csv(io.BytesIO(filtered))) == len(RATIOS)


@pytest.mark.parametrize("page", [None, "tradeoff", "run_detail"])
def test_empty_store_says_what_to_run(
    monkeypatch: pytest.MonkeyPatch, empty_results_server: ResultsServer, page: str | None
) -> None:
    monkeypatch.setenv("GREENPRUNE_APP_RESULTS_ADDRESS", empty_results_server.address)
    monkeypatch.setenv("GREENPRUNE_TOKEN", empty_results_server.token)
    app = _run(page)
    _assert_clean(app)
    assert any("No runs yet: run `make demo`" in item.value for item in app.info)
    assert not _charts(app)


def test_service_down_shows_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, unused_address: str
) -> None:
    monkeypatch.setenv("GREENPRUNE_APP_RESULTS_ADDRESS", unused_address)
    app = _run()
    assert not app.exception
    assert len(app.error) == 1
    assert f"The results service at {unused_address} is not reachable" in app.error[0].value


def test_wrong_token_shows_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, results_server: ResultsServer
) -> None:
    monkeypatch.setenv("GREENPRUNE_APP_RESULTS_ADDRESS", results_server.address)
    monkeypatch.setenv("GREENPRUNE_TOKEN", "not-the-token")
    app = _run("tasks")
    assert not app.exception
    assert len(app.error) == 1
    assert "refused the app's token" in app.error[0].value


def test_sidebar_filter_narrows_the_views(app_env: ResultsServer) -> None:
    app = _run("tasks")
    app.selectbox(key="filter_experiment").select("study").run()
    app.selectbox(key="filter_model").select("reference:tiny-llama").run()
    _assert_clean(app)
    assert len(app.dataframe[0].value) == (len(RATIOS) - 1) * len(TASKS)
    assert app.selectbox(key="filter_model").options == ["(all)", "reference:tiny-llama"]


def test_one_pair_reads_the_same_accuracy_interval_on_every_surface(
    app_env: ResultsServer,
) -> None:
    from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
    from greenprune.client import report
    from greenprune.rpc.client import sync_channel

    channel = sync_channel(app_env.address, app_env.token)
    try:
        stub = results_pb2_grpc.ResultsServiceStub(channel)
        tables = {
            view: stub.QueryView(results_pb2.QueryViewRequest(view=number)).table
            for view, number in (
                ("findings", results_pb2.VIEW_FINDINGS),
                ("task_breakdown", results_pb2.VIEW_TASK_BREAKDOWN),
            )
        }
    finally:
        channel.close()
    found = data.table_to_frame(tables["findings"])
    pruned = found[(found["kind"] == "accuracy") & (found["checkpoint_id"] == "ckpt-040")]
    by_task = dict(zip(pruned["task"].fillna("*"), pruned["text"], strict=True))
    assert set(by_task) == {*TASKS, "*"}  # each task, and the mean over tasks
    assert all(text.startswith("lower: ") for text in by_task.values())
    # The report: the task_breakdown view's headline rows.
    breakdown = tables["task_breakdown"]
    rows = report.rows_from_view([c.name for c in breakdown.columns], breakdown.rows)
    reported = {r.task: r.delta_value_text for r in rows if r.checkpoint_id == "ckpt-040"}
    # Compare: the baseline first and the largest ratio second, by default.
    compare = _run("compare")
    _assert_clean(compare)
    table = next(
        d.value for d in compare.dataframe if "accuracy_change_text" in d.value.columns
    ).set_index("task")
    # Overview: every compressed configuration over the tasks it shares with the baseline.
    overview = _run()
    shown = next(d.value for d in overview.dataframe if "accuracy_change_text" in d.value.columns)
    combined = shown[shown["ratio_b"] == 0.4]["accuracy_change_text"]
    for task in TASKS:
        assert by_task[task] == reported[task] == table.loc[task, "accuracy_change_text"]
    assert list(combined) == [by_task["*"]]
