"""Computed views under concurrent readers: p50 and p99 of QueryView per view (target p99 < 2 s).

Starts a real ResultsService process on port 0 over a demo-sized store (the demo's sweep: 3
ratios x 3 tasks with per-document scores and a perplexity task, its interleaved profile of 8
rounds at batch sizes 1, 8, 32, plus the legacy version-2 store of ``tests/data``), then runs
``--readers`` client threads, each with its own channel, that read every computed view
(``findings``, ``payback``, ...) in a shuffled order ``--rounds`` times, every page of each.
The time of a read runs from its first request to its last page. One reader reads every view
once before them (its cold reads, each view's first computation, are reported apart): the
figures are of the steady state readers meet between records. With ``--writes-per-second``
a writer records an eval run at that rate meanwhile; each record invalidates every view, so
the readers after it wait for a fresh computation.

The store computes each view once per write and filter and concurrent readers share the
computation (``results_service.store.ViewCache``); before it, the probe of issue 26 measured
p50 4.3 s and p99 17.3 s with 30 clients (``VIEW_FINDINGS`` p50 17 s).

Run: ``python bench/results_views.py [--readers 30] [--rounds 5] [--writes-per-second 0]
[--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.figures import Figure, add_arguments, at_most, parse, report  # noqa: E402
from bench.results_ingest import start_server  # noqa: E402
from greenprune.api.results.v1 import results_pb2, results_pb2_grpc  # noqa: E402
from greenprune.rpc.client import read_pages, sync_channel  # noqa: E402
from results_service.store import ResultsStore  # noqa: E402
from results_service.views import COMPUTED_VIEWS  # noqa: E402
from tests import samples  # noqa: E402

TARGET = at_most(2.0)
TIMEOUT = 300.0
VIEWS = {name: results_pb2.View.Value(f"VIEW_{name.upper()}") for name in COMPUTED_VIEWS}


def demo_store(path: Path) -> None:
    """Writes the legacy store and the demo-sized study and profile into ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    samples.v2_store(path)
    with ResultsStore(path) as store:
        prune_runs, eval_runs = samples.demo_study(
            experiment="demo", tasks=("greenprune_facts", "greenprune_arith", "greenprune_heldout")
        )
        for run in prune_runs:
            store.record_prune_run(run)
        store.record_eval_runs(eval_runs)
        costs = {f"ckpt-0-{r:03d}": 1e-3 * (1 - 0.5 * r / 100) for r in (0, 20, 40)}
        store.record_profile_run(
            samples.profile_run(
                "demo-profile",
                model="reference:tiny-llama",
                costs=costs,
                experiment="demo",
                rounds=8,
                batch_sizes=(1, 8, 32),
            )
        )


def reader(
    address: str,
    rounds: int,
    seed: int,
    start: threading.Barrier,
    times: dict[str, list[float]],
    failures: list[str],
    lock: threading.Lock,
) -> None:
    """Reads every computed view ``rounds`` times in shuffled orders, timing each read."""
    rng = random.Random(seed)
    with sync_channel(address, None) as channel:
        stub = results_pb2_grpc.ResultsServiceStub(channel)
        start.wait()
        for _ in range(rounds):
            order = list(VIEWS)
            rng.shuffle(order)
            for name in order:
                request = results_pb2.QueryViewRequest(view=VIEWS[name])
                began = time.perf_counter()
                try:
                    for _page in read_pages(lambda r: stub.QueryView(r, timeout=TIMEOUT), request):
                        pass
                except Exception as exc:  # noqa: BLE001 - counted, the bench goes on
                    with lock:
                        failures.append(f"{name}: {exc}"[:300])
                    continue
                with lock:
                    times[name].append(time.perf_counter() - began)


def writer(address: str, rate: float, stop: threading.Event, written: list[int]) -> None:
    """Records an eval run every ``1 / rate`` seconds until ``stop``."""
    with sync_channel(address, None) as channel:
        stub = results_pb2_grpc.ResultsServiceStub(channel)
        index = 0
        while not stop.wait(1.0 / rate):
            run = samples.eval_run(
                f"bench-writer-{index}",
                task="greenprune_facts",
                metrics={"acc": 0.5},
                net_joules=80.0,
                model="reference:tiny-llama",
                checkpoint_id="ckpt-0-020",
                experiment="demo",
            )
            stub.RecordEvalRun(results_pb2.RecordEvalRunRequest(run=run), timeout=TIMEOUT)
            index += 1
    written.append(index)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of ``values`` (``share`` in (0, 1])."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-share * len(ordered) // 1)) - 1))]


def main() -> None:
    """Runs the benchmark and prints the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="reads of every view per reader")
    parser.add_argument("--writes-per-second", type=float, default=0.0)
    add_arguments(parser)
    args = parse(parser, {"readers": 10, "rounds": 1})

    times: dict[str, list[float]] = defaultdict(list)
    failures: list[str] = []
    written: list[int] = []
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "service"
        demo_store(home / "results" / "results.duckdb")
        server, address = start_server(home)
        try:
            cold: dict[str, list[float]] = defaultdict(list)
            reader(address, 1, 0, threading.Barrier(1), cold, failures, lock)
            start = threading.Barrier(args.readers)
            threads = [
                threading.Thread(
                    target=reader,
                    args=(address, args.rounds, seed, start, times, failures, lock),
                )
                for seed in range(args.readers)
            ]
            stop = threading.Event()
            writing = None
            if args.writes_per_second > 0:
                writing = threading.Thread(
                    target=writer, args=(address, args.writes_per_second, stop, written)
                )
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            if writing is not None:
                writing.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - began
            stop.set()
            if writing is not None:
                writing.join()
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()

    print("cold reads (one reader, each view computed for the first time):")
    print("  " + ", ".join(f"{name} {values[0]:.2f} s" for name, values in cold.items()))
    every = [value for values in times.values() for value in values]
    print(f"{args.readers} readers x {args.rounds} rounds x {len(VIEWS)} computed views")
    print(f"reads: {len(every)} in {elapsed:.1f} s ({len(every) / elapsed:.1f} reads/s)")
    if written:
        print(f"writer: {written[0]} records at {args.writes_per_second}/s")
    print(f"failed reads: {len(failures)}")
    for failure in failures[:5]:
        print(f"  {failure}")
    print(f"{'view':20} {'reads':>6} {'p50 s':>7} {'p99 s':>7}  p99 < 2 s")
    figures = []
    for name in VIEWS:
        values = times[name]
        if not values:
            continue
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        print(f"{name:20} {len(values):6d} {p50:7.3f} {p99:7.3f}  {p99 < 2.0}")
        figures.append(Figure(f"views: {name} p99", p99, TARGET, "s"))
    figures += [
        Figure("views: all reads p50", statistics.median(every), None, "s"),
        Figure("views: all reads p99", percentile(every, 0.99), TARGET, "s"),
        Figure("views: reads per second", len(every) / elapsed, None, "1/s"),
        Figure("views: failed reads", float(len(failures)), at_most(0.0)),
        Figure(
            "views: cold read of every view, summed", sum(sum(v) for v in cold.values()), None, "s"
        ),
    ]
    details = {
        "readers": args.readers,
        "rounds": args.rounds,
        "writes_per_second": args.writes_per_second,
        "records_written": written[0] if written else 0,
        "seconds": {name: values for name, values in times.items()},
        "cold_seconds": {name: values[0] for name, values in cold.items()},
        "failures": failures[:20],
    }
    report("results_views", figures, args, details)


if __name__ == "__main__":
    main()
