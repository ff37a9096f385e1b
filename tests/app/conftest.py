"""A real ResultsService for the app's tests, seeded with one small pruning study.

The server runs on port 0 in a background thread with its own event loop; tests talk to it
over loopback exactly as the app does in production. ``STUDY`` holds every figure seeded, so
tests compute what the app must show from it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenprune.api.common.v1 import energy_pb2
from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.core.settings import ResultsSettings
from greenprune.rpc.client import sync_channel
from greenprune.rpc.server_thread import ServerThread
from results_service.server import build
from tests import samples

TOKEN = "app-test-token"
EXPERIMENT = "study"
MODEL = "reference:tiny-llama"
TASKS = ("greenprune_arith", "greenprune_facts", "greenprune_logic")
RATIOS = (0.0, 0.2, 0.4)
LAYERS = 4
SPREAD = 0.05
"""Energy intervals are the median +- 5%."""

ACCURACY = {
    0.0: {"greenprune_arith": 0.80, "greenprune_facts": 0.90, "greenprune_logic": 0.70},
    0.2: {"greenprune_arith": 0.72, "greenprune_facts": 0.85, "greenprune_logic": 0.66},
    0.4: {"greenprune_arith": 0.50, "greenprune_facts": 0.60, "greenprune_logic": 0.55},
}
STDERR = 0.02
DOCUMENTS = 100
"""Documents per task; each run's per-document scores are nested (``samples.nested_items``)."""
NET_JOULES = {
    0.0: {"greenprune_arith": 80.0, "greenprune_facts": 100.0, "greenprune_logic": 60.0},
    0.2: {"greenprune_arith": 70.0, "greenprune_facts": 90.0, "greenprune_logic": 52.0},
    0.4: {"greenprune_arith": 60.0, "greenprune_facts": 75.0, "greenprune_logic": 45.0},
}
ESTIMATED_RUN = "eval-040-greenprune_arith"
"""The one eval run whose energy is a CPU-load estimate; every other run reads RAPL."""

PARAMETERS_BEFORE = 2_400_000


def checkpoint_id(ratio: float) -> str:
    """The checkpoint of a pruned ratio ("" for the unpruned model)."""
    return "" if ratio == 0 else f"ckpt-{round(ratio * 100):03d}"


def eval_run_id(ratio: float, task: str) -> str:
    """The request_id of the eval run of ``ratio`` on ``task``."""
    return f"eval-{round(ratio * 100):03d}-{task}"


def prune_run_id(ratio: float) -> str:
    """The request_id of the prune run of ``ratio``."""
    return f"prune-{round(ratio * 100):03d}"


def kept_heads(ratio: float, layer: int) -> int:
    """Query heads of ``layer`` after pruning ``ratio`` (first and last layers kept)."""
    return 8 if layer in (0, LAYERS - 1) else round(8 * (1 - ratio))


def mlp_width(ratio: float, layer: int) -> int:
    """MLP width of ``layer`` after pruning ``ratio`` (first and last layers kept)."""
    return 512 if layer in (0, LAYERS - 1) else round(512 * (1 - ratio))


def _interval(median: float) -> energy_pb2.Interval:
    return energy_pb2.Interval(
        median=median,
        low=median * (1 - SPREAD),
        high=median * (1 + SPREAD),
        count=3,
        method="bootstrap-percentile-95",
    )


def speedup(ratio: float) -> float:
    """How much faster the pruned model runs than the unpruned one (wall time divides by it)."""
    return 1 / (1 - 0.5 * ratio)


def _energy(
    net_joules: float, *, estimated: bool, samples: int, ratio: float = 0.0
) -> energy_pb2.EnergyReport:
    method = "cpu-load-estimate" if estimated else "rapl"
    return energy_pb2.EnergyReport(
        components=[
            energy_pb2.ComponentEnergy(
                component="cpu",
                method=method,
                estimated=estimated,
                gross_joules=_interval(net_joules + 10.0),
                net_joules=_interval(net_joules),
                idle_watts=1.0,
            ),
            energy_pb2.ComponentEnergy(
                component="ram",
                method="constant-estimate",
                estimated=True,
                gross_joules=_interval(200.0),
                net_joules=_interval(net_joules / 10),
                idle_watts=20.0,
            ),
        ],
        headline_component="cpu",
        net_joules=_interval(net_joules),
        gross_joules=_interval(net_joules + 10.0),
        wall_seconds=_interval(10.0 / speedup(ratio)),
        tokens_per_second=_interval(1000.0 * speedup(ratio)),
        tokens=10_000,
        samples=samples,
        joules_per_token=net_joules / 10_000,
        joules_per_sample=net_joules / samples,
        peak_rss_bytes=500_000_000,
        device_name="cpu",
        hardware="test CPU, 2 threads",
        estimated=estimated,
        repeats=3,
        repeat_net_joules=[net_joules * (1 - SPREAD), net_joules, net_joules * (1 + SPREAD)],
    )


def prune_runs() -> list[results_pb2.PruneRun]:
    """The prune runs of the study: one per pruned ratio (``samples.prune_run``'s, reshaped)."""
    runs = []
    for ratio in RATIOS[1:]:
        run = samples.prune_run(
            prune_run_id(ratio),
            model=MODEL,
            ratio=ratio,
            checkpoint_id=checkpoint_id(ratio),
            experiment=EXPERIMENT,
            parameters_before=PARAMETERS_BEFORE,
            layers=LAYERS,
        )
        for shape in run.result.layers:
            shape.attention_heads = kept_heads(ratio, shape.index)
            shape.intermediate_size = mlp_width(ratio, shape.index)
        after = round(PARAMETERS_BEFORE * (1 - ratio * 0.9))
        result = run.result
        result.parameters_after = result.prunable_parameters_after = after
        result.prunable_parameters_before = PARAMETERS_BEFORE
        result.achieved_ratio = 1 - after / PARAMETERS_BEFORE
        result.macs_after, result.bytes_on_disk = after * 64, after * 4
        result.energy.CopyFrom(_energy(30.0, estimated=False, samples=32))
        runs.append(run)
    return runs


def eval_runs() -> list[results_pb2.EvalRun]:
    """The eval runs of the study: every ratio on every task (``samples.eval_run``'s)."""
    runs = []
    for ratio in RATIOS:
        for task in TASKS:
            request_id = eval_run_id(ratio, task)
            run = samples.eval_run(
                request_id,
                task=task,
                metrics={"acc": ACCURACY[ratio][task]},
                net_joules=None,
                model=MODEL,
                checkpoint_id=checkpoint_id(ratio),
                experiment=EXPERIMENT,
                stderr=STDERR,
                items=samples.nested_items(ACCURACY[ratio][task], DOCUMENTS),
            )
            run.result.energy.CopyFrom(
                _energy(
                    NET_JOULES[ratio][task],
                    estimated=request_id == ESTIMATED_RUN,
                    samples=100,
                    ratio=ratio,
                )
            )
            runs.append(run)
    return runs


class ResultsServer:
    """A ResultsService on a free port, in a background thread (``greenprune.rpc.server_thread``).

    Args:
        state_dir: Where its DuckDB file lives.
        token: The bearer token it checks.
    """

    def __init__(self, state_dir: Path, token: str = TOKEN) -> None:
        settings = ResultsSettings(
            host="127.0.0.1",
            port=0,
            state_dir=state_dir,
            db_path=state_dir / "r.duckdb",
            token=token,
        )
        self.token = token
        self._thread = ServerThread(lambda: build(settings), settings).start()
        self.address = self._thread.address

    def seed(self) -> None:
        """Records the study's prune and eval runs through the RPCs."""
        channel = sync_channel(self.address, self.token)
        try:
            stub = results_pb2_grpc.ResultsServiceStub(channel)
            for run in prune_runs():
                stub.RecordPruneRun(results_pb2.RecordPruneRunRequest(run=run), timeout=30)
            stub.BatchRecordEvalRuns(
                results_pb2.BatchRecordEvalRunsRequest(runs=eval_runs()), timeout=30
            )
        finally:
            channel.close()

    def stop(self) -> None:
        """Stops serving and closes the store."""
        self._thread.stop(grace=0.5)


@pytest.fixture(scope="session")
def results_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResultsServer]:
    """A ResultsService seeded with the study."""
    server = ResultsServer(tmp_path_factory.mktemp("results"))
    server.seed()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def empty_results_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResultsServer]:
    """A ResultsService with nothing recorded."""
    server = ResultsServer(tmp_path_factory.mktemp("empty-results"))
    yield server
    server.stop()


@pytest.fixture
def unused_address() -> str:
    """An address on which nothing listens (a port bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, results_server: ResultsServer) -> ResultsServer:
    """Points the app at the seeded server."""
    monkeypatch.setenv("GREENPRUNE_APP_RESULTS_ADDRESS", results_server.address)
    monkeypatch.setenv("GREENPRUNE_TOKEN", results_server.token)
    return results_server
