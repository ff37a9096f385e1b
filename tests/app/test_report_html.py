"""``greenprune report --html`` and ``--figures``, and ``greenprune checkpoint card``.

One ResultsService on port 0 holds a small study from ``tests/samples.py`` (no job runs): three
width ratios, a depth checkpoint of the same size as one of them (so methods compare) and an
interleaved profile of them all. The report is written through the command line, read back as
text and in Chromium with the network cut; the figures are compared with the app's charts.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from greenprune import Client
from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.client import cli, html_report
from greenprune.core import checkpoint, model_card
from greenprune.rpc.server_thread import ServerThread
from results_app import charts, frames
from tests import samples
from tests.app.report_check import open_offline
from tests.app.test_browser import artifacts_dir, browser  # noqa: F401 - the fixture
from tests.rpc.conftest import start_service

EXPERIMENT = "study"
DEPTH = "ckpt-0-d20"
COSTS = {"ckpt-0-000": 1e-3, "ckpt-0-020": 0.9e-3, "ckpt-0-040": 0.8e-3, DEPTH: 0.85e-3}


def _depth_runs() -> tuple[results_pb2.PruneRun, list[results_pb2.EvalRun]]:
    run = samples.prune_run(
        f"{EXPERIMENT}-prune-{DEPTH}",
        model="reference:tiny-llama",
        ratio=0.2,
        checkpoint_id=DEPTH,
        experiment=EXPERIMENT,
    )
    run.result.method_family = "depth"
    evals = [
        samples.eval_run(
            f"{EXPERIMENT}-eval-{DEPTH}-{task}",
            task=task,
            metrics={"acc": 0.78},
            net_joules=85.0,
            items=samples.nested_items(0.78, 100),
            model="reference:tiny-llama",
            checkpoint_id=DEPTH,
            experiment=EXPERIMENT,
        )
        for task in ("greenprune_facts", "greenprune_arith")
    ]
    return run, evals


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    server = start_service("results", tmp_path_factory.mktemp("report-html"))
    prune_runs, eval_runs = samples.demo_study(experiment=EXPERIMENT, perplexity_task=None)
    depth, depth_evals = _depth_runs()
    profile = samples.profile_run(
        f"{EXPERIMENT}-profile",
        model="reference:tiny-llama",
        costs=COSTS,
        experiment=EXPERIMENT,
        round_noise=(1.0, 1.1, 0.95, 1.2, 1.05, 0.9),
    )
    with grpc.insecure_channel(server.address) as channel:
        stub = results_pb2_grpc.ResultsServiceStub(channel)
        for run in [*prune_runs, depth]:
            stub.RecordPruneRun(results_pb2.RecordPruneRunRequest(run=run))
        stub.BatchRecordEvalRuns(
            results_pb2.BatchRecordEvalRunsRequest(runs=eval_runs + depth_evals)
        )
        stub.RecordProfileRun(results_pb2.RecordProfileRunRequest(run=profile))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def written(results: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("written")
    paths = {"html": folder / "report.html", "figures": folder / "figures"}
    code = cli.main(
        [
            "report",
            "--experiment",
            EXPERIMENT,
            "--results",
            results.address,
            "--html",
            str(paths["html"]),
            "--figures",
            str(paths["figures"]),
        ]
    )
    assert code == cli.EXIT_OK
    return paths


@pytest.fixture(scope="module")
def tables(results: ServerThread) -> list[Any]:
    with Client(results=results.address) as client:
        return cli._tables(client, EXPERIMENT)


def test_the_html_holds_every_table_of_report_with_its_verdicts(
    written: dict[str, Path], tables: list[Any]
) -> None:
    document = written["html"].read_text(encoding="utf-8")
    titles = [str(table.title) for table in tables]
    assert titles == [
        EXPERIMENT,
        f"{EXPERIMENT} energy profile",
        f"{EXPERIMENT} compression methods of equal size",
        f"{EXPERIMENT} payback",
        f"{EXPERIMENT} payback per phase and batch size",
    ]
    for table in tables:
        _, rows = html_report.table_cells(table)
        assert rows
        for row in rows:
            for cell in row:
                # A cell that leads with its verdict has the word marked up, the rest escaped.
                assert html.escape(cell.split(":", 1)[-1]) in document
        assert html.escape(html_report._cell_text(table.caption)) in document
    for word in ("lower", "primary family of", "margin \u00b1", "pairwise"):
        assert word in document
    # Nothing to fetch: no script, and no link out (the SVG namespace is a name, not a fetch).
    assert "<script" not in document
    assert re.search(r"(src|href)\s*=\s*[\"']?\w+:|url\((?!#)", document) is None
    assert html.escape("Energy figures are readings of the CPU package's energy") in document
    assert "lm_eval" in document and "0.4.13" in document  # the versions the runs recorded


def test_the_figures_are_the_apps_charts_as_svg_and_png(
    results: ServerThread, written: dict[str, Path]
) -> None:
    with Client(results=results.address) as client:
        figures = client.figures(EXPERIMENT)
        view = client.results("tradeoff", experiment=EXPERIMENT)
    assert set(figures) == {"tradeoff", "accuracy_change", "energy_change"}
    plottable, title = frames.tradeoff_points(view)
    app_chart = charts.tradeoff_chart(plottable, energy_title=title).properties(width=640)
    assert figures["tradeoff"].spec() == app_chart.to_dict()
    drawn = next(iter(figures["tradeoff"].spec()["datasets"].values()))
    assert sorted(round(p["energy"], 12) for p in drawn) == sorted(
        round(e, 12) for e in plottable["energy"]
    )
    assert len(drawn) == len(COSTS)
    for name in figures:
        svg = (written["figures"] / f"{name}.svg").read_text(encoding="utf-8")
        assert svg.lstrip().startswith("<svg") and "<path" in svg
        png = (written["figures"] / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG")


def test_the_report_opens_offline_in_chromium_with_its_chart_drawn(
    browser: Any,  # noqa: F811 - the fixture
    written: dict[str, Path],
    tables: list[Any],
) -> None:
    shown = open_offline(browser, written["html"], artifacts_dir() / "report-html-tradeoff.png")
    assert shown.requests == [] and shown.errors == []
    assert shown.figures == ["tradeoff", "accuracy_change", "energy_change"]
    assert shown.chart_marks >= len(COSTS)
    assert shown.chart_ink > 0.03 and shown.chart_colours > 16
    assert [t["title"] for t in shown.tables] == [str(t.title) for t in tables]
    for seen, table in zip(shown.tables, tables, strict=True):
        headers, rows = html_report.table_cells(table)
        assert seen["headers"] == headers
        assert seen["rows"] == rows


def test_html_needs_one_experiment(results: ServerThread, tmp_path: Path) -> None:
    code = cli.main(["report", "--results", results.address, "--html", str(tmp_path / "r.html")])
    assert code == cli.EXIT_USAGE
    assert not (tmp_path / "r.html").exists()


def _manifest(run: results_pb2.PruneRun) -> dict[str, Any]:
    result = run.result
    return {
        "format": checkpoint.FORMAT_NAME,
        "checkpoint_id": result.checkpoint_id,
        "source": {"model": run.spec.model},
        "method": "taylor",
        "method_family": result.method_family or "width",
        "target_ratio": run.spec.ratio,
        "achieved_ratio": result.achieved_ratio,
        "uniform": result.uniform,
        "kept_layers": [0, 3],
        "parameters_before": result.parameters_before,
        "parameters_after": result.parameters_after,
        "content_hash": result.content_hash,
    }


def test_checkpoint_card_writes_the_verdicts_the_store_recorded(
    results: ServerThread, tmp_path: Path
) -> None:
    prune_runs, _ = samples.demo_study(experiment=EXPERIMENT, perplexity_task=None)
    for run in prune_runs:
        folder = tmp_path / run.result.checkpoint_id
        folder.mkdir()
        (folder / checkpoint.MANIFEST_NAME).write_text(json.dumps(_manifest(run)))
    args = ["--results", results.address, "--checkpoints-dir", str(tmp_path)]
    assert cli.main(["checkpoint", "card", "ckpt-0-040", *args]) == cli.EXIT_OK
    header = model_card.parse_card((tmp_path / "ckpt-0-040" / "README.md").read_text())
    with Client(results=results.address) as client:
        found = client.results("findings", experiment=EXPERIMENT)
    mine = found[found["checkpoint_id"] == "ckpt-0-040"]
    recorded = header["greenprune"]["verdicts"]
    assert len(recorded) == len(mine) > 0
    assert {r["kind"] for r in recorded} == {"accuracy", "energy"}
    expected = {
        (r["kind"], r["task"], r["phase"], r["batch_size"]): r
        for r in model_card.verdict_records(mine.to_dict("records"))
    }
    for record in recorded:
        row = expected[(record["kind"], record["task"], record["phase"], record["batch_size"])]
        assert record == row
    assert header["greenprune"]["parameters"]["after"] == prune_runs[2].result.parameters_after
    assert header["greenprune"]["loads_with_plain_from_pretrained"] is False
    # Every checkpoint of the experiment at once, as `greenprune run` does when it ends.
    with Client(results=results.address, checkpoints_dir=tmp_path) as client:
        assert len(client.refresh_cards(EXPERIMENT)) == len(prune_runs)  # the depth one is not here
    assert cli.main(["checkpoint", "card", "nope", *args]) == cli.EXIT_FAILED
