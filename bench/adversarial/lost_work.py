"""Category 4, lost work: a long results outage during a prune, a restart, a lost database."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import grpc

from bench.adversarial.harness import REFERENCE, Campaign, free_port, start_results, start_worker
from bench.adversarial.verdicts import ACCEPTED, BAD


def category_lost_work(c: Campaign) -> None:
    """A long results outage during a real prune: the report retries until the service is back.

    The pruning service restarts during the outage; afterwards there is exactly one record.
    Then the database is lost, and a rerun of the same request reports the job again.
    """
    from greenprune.api.pruning.v1 import pruning_pb2
    from greenprune.api.results.v1 import results_pb2 as pb
    from greenprune.rpc.client import sync_channel

    outage = 15.0 if c.quick else 70.0
    home = c.home / "lost"
    port = free_port()
    address = f"127.0.0.1:{port}"
    spec = pruning_pb2.PruneSpec(
        model=REFERENCE, method=pruning_pb2.PRUNING_METHOD_MAGNITUDE_L1, ratio=0.2, prune_mlp=True
    )
    request = pruning_pb2.CreatePruneJobRequest(request_id="lost/1", spec=spec, experiment="lost")
    servers: list[Any] = []

    def pruning_server() -> Any:
        server = start_worker("pruning", home, c.token, address)
        servers.append(server)
        return server

    def prune_stub(server: Any) -> Any:
        from greenprune.api.pruning.v1 import pruning_pb2_grpc

        return pruning_pb2_grpc.PruningServiceStub(sync_channel(server.address, c.token))

    def wait(stub: Any, name: str, until: Callable[[Any], bool], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.RpcError):
                job = stub.GetPruneJob(pruning_pb2.GetPruneJobRequest(name=name), timeout=10).job
                if until(job):
                    return job
            time.sleep(0.5)
        return job

    def records(results: Any) -> list[Any]:
        from greenprune.api.results.v1 import results_pb2_grpc

        with contextlib.closing(sync_channel(results.address, c.token)) as chan:
            stub = results_pb2_grpc.ResultsServiceStub(chan)
            listed = stub.ListPruneRuns(
                pb.ListPruneRunsRequest(experiment="lost", page_size=1000), timeout=30
            )
        return [run for run in listed.runs if run.request_id == "lost/1"]

    results = None
    try:
        server = pruning_server()
        stub = prune_stub(server)
        job = stub.CreatePruneJob(request, timeout=60).job
        c.record("4", "CreatePruneJob while the ResultsService is down", ACCEPTED)
        job = wait(
            stub,
            job.name,
            lambda j: j.status.stage.startswith("reporting (retry") or j.status.state >= 3,
            180,
        )
        if job is None or not job.status.stage.startswith("reporting (retry"):
            state = "none" if job is None else f"{job.status.state} {job.status.stage!r}"
            c.record(
                "4",
                "prune finishes during the outage",
                BAD,
                f"never reached 'reporting (retry N)': {state} "
                f"{'' if job is None else job.status.error.message[:200]}",
            )
            return
        failed_at = time.monotonic()
        c.say(f"  [4] prune done, reporting retries; outage of {outage:.0f} s")
        server.stop()
        server = pruning_server()  # a restart of the pruning service during the outage
        stub = prune_stub(server)
        time.sleep(max(0.0, failed_at + outage - time.monotonic()))
        still = stub.GetPruneJob(pruning_pb2.GetPruneJobRequest(name=job.name), timeout=10).job
        if still.status.state >= 3:
            c.record(
                "4",
                f"job after a {outage:.0f} s outage and a restart",
                BAD,
                f"ended before the ResultsService came back: state {still.status.state}, "
                f"{still.status.error.message[:200]}",
            )
            return
        c.record("4", f"job still reporting after a {outage:.0f} s outage and a restart", ACCEPTED)
        results = start_results(home / "results", c.token, port)
        done = wait(stub, job.name, lambda j: j.status.state >= 3, 120)
        found = records(results)
        checkpoint = done.result.checkpoint_id if done is not None else ""
        if done is None or done.status.state != 3 or len(found) != 1:
            c.record(
                "4",
                "exactly one record after the outage",
                BAD,
                f"state {None if done is None else done.status.state}, {len(found)} records",
            )
            return
        on_disk = (home / "checkpoints" / checkpoint).is_dir()
        c.record(
            "4",
            "exactly one record after the outage",
            ACCEPTED if on_disk else BAD,
            "" if on_disk else f"record names checkpoint {checkpoint!r}, not on disk",
        )
        results.stop()
        db = results.settings.db_path
        for path in db.parent.glob(db.name + "*"):
            path.unlink()
        results = start_results(home / "results", c.token, port)
        again = stub.CreatePruneJob(request, timeout=60).job
        done = wait(stub, again.name, lambda j: j.status.state >= 3 and bool(records(results)), 120)
        found = records(results)
        ok = again.name == job.name and len(found) == 1
        c.record(
            "4",
            "rerun after a lost database re-reports the SUCCEEDED job",
            ACCEPTED if ok else BAD,
            ""
            if ok
            else f"job {again.name} (was {job.name}), {len(found)} records, state "
            f"{None if done is None else done.status.state}",
        )
    except Exception as exc:  # noqa: BLE001 - the scenario's own failure is a finding
        c.record("4", "lost-work scenario", BAD, f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        for server in reversed(servers):
            with contextlib.suppress(Exception):
                server.stop()
        if results is not None:
            with contextlib.suppress(Exception):
                results.stop()
