"""``greenprune status`` lists checkpoints on disk that no prune run in the results store names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.client.cli import orphaned_checkpoints
from greenprune.core.checkpoint import MANIFEST_NAME
from greenprune.rpc.client import sync_channel
from greenprune.rpc.server_thread import ServerThread
from tests import samples


def test_orphaned_checkpoints_are_listed(
    tmp_path: Path, service_factory: Callable[..., ServerThread]
) -> None:
    server = service_factory("results")
    prune_runs, _ = samples.demo_study(experiment="orphans")
    with sync_channel(server.address, None) as channel:
        stub = results_pb2_grpc.ResultsServiceStub(channel)
        stub.RecordPruneRun(results_pb2.RecordPruneRunRequest(run=prune_runs[0]), timeout=30)
    reported = prune_runs[0].result.checkpoint_id
    assert reported
    checkpoints = tmp_path / "checkpoints"
    for name in (reported, "orphan-1", ".staging-x"):
        (checkpoints / name).mkdir(parents=True)
        (checkpoints / name / MANIFEST_NAME).write_text("{}")
    (checkpoints / "no-manifest").mkdir()
    orphans = orphaned_checkpoints(checkpoints, server.address, None)
    assert [path.name for path in orphans] == ["orphan-1"]
    assert orphaned_checkpoints(tmp_path / "missing", server.address, None) == []
