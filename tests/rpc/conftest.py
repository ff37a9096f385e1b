"""Fixtures that start each greenprune service for real, on port 0."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from greenprune.core.settings import EvalSettings, PruningSettings, ResultsSettings
from greenprune.rpc.server_thread import ServerThread

SERVICES = ("results", "pruning", "eval")


def start_service(
    kind: str, home: Path, token: str | None = None, results: str = "", warm: bool = False
) -> ServerThread:
    """Starts one service with its state under ``home``.

    ``warm`` keeps a warm job process as a deployed service does; off by default, since each
    warm process imports torch and lm-eval on the two cores the tests share.
    """
    common = {"port": 0, "state_dir": home, "token": token, "grace_seconds": 1.0}
    if kind == "results":
        from results_service.server import build as build_results

        settings = ResultsSettings(**common)
        return ServerThread(lambda: build_results(settings), settings).start()
    worker_common = {
        **common,
        "results_address": results or "127.0.0.1:1",
        "models_root": home / "models",
        "warm_job_process": warm,
    }
    if kind == "pruning":
        from pruning_service.server import build as build_pruning

        settings = PruningSettings(**worker_common)
        return ServerThread(lambda: build_pruning(settings), settings).start()
    from eval_service.server import build as build_eval

    settings = EvalSettings(**worker_common)
    return ServerThread(lambda: build_eval(settings), settings).start()


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., ServerThread]]:
    """Starts services on demand and stops them after the test."""
    started: list[ServerThread] = []

    def factory(
        kind: str, token: str | None = None, results: str = "", warm: bool = False
    ) -> ServerThread:
        server = start_service(kind, tmp_path / kind, token, results, warm)
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        server.stop()
