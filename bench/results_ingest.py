"""Ingestion through the ResultsService against DuckDB used directly.

Records 100 eval runs x 100 metrics (10,000 metric rows, plus 200 energy component rows)
through BatchRecordEvalRuns in several RPCs, against a real server process, and inserts the same
rows into a fresh DuckDB file with the same schema as pandas DataFrames in one transaction.
Prints the times of every trial and the ratio of the best and of the median times (target: at
most 2). The best-of-trials ratio is the headline: on a shared machine it is the least disturbed
by other processes.

The service time runs from the first RPC to the last response: the client already holds the runs
as messages, as the eval service does. The direct time runs from the rows of each table (the
records, their derived columns and child rows, made from the messages beforehand) to the
commit: building the DataFrames, inserting, committing. Schema creation is left out of both
(the server migrates at start-up).

Run: ``python bench/results_ingest.py [--runs 100] [--metrics 100] [--batch 50] [--trials 3]
[--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.figures import Figure, add_arguments, at_most, parse, report  # noqa: E402
from greenprune.api.results.v1 import results_pb2, results_pb2_grpc  # noqa: E402
from greenprune.rpc.client import channel  # noqa: E402
from results_service import columns  # noqa: E402
from results_service.columns import RUN_TABLES  # noqa: E402
from results_service.migrations import derive, migrate  # noqa: E402
from tests import samples  # noqa: E402

TARGET = at_most(2.0)


def make_runs(trial: int, runs: int, metrics: int) -> list[results_pb2.EvalRun]:
    """Returns ``runs`` eval runs of ``metrics`` metrics each, ids unique to the trial."""
    made = []
    for index in range(runs):
        values = {f"metric_{m:03d}": (index * metrics + m) % 997 / 997 for m in range(metrics)}
        made.append(
            samples.eval_run(
                f"bench-{trial}-{index:04d}",
                task=f"task_{index % 10}",
                metrics=values,
                net_joules=50.0 + index,
                model="bench-model",
                checkpoint_id=f"ckpt-{index % 5}",
                experiment="bench",
            )
        )
    return made


def start_server(home: Path) -> tuple[subprocess.Popen[str], str]:
    """Starts ``python -m results_service.server`` on a free port and returns it and its address."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "GREENPRUNE_RESULTS_PORT": "0",
        "GREENPRUNE_RESULTS_STATE_DIR": str(home),
    }
    env.pop("GREENPRUNE_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "results_service.server"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(r"listening on (\S+)", line)
        if found:
            return process, found.group(1)
    raise RuntimeError("the results server did not start")


async def through_service(
    address: str, runs: list[results_pb2.EvalRun], batch: int
) -> tuple[float, int]:
    """Returns the seconds the batched RPCs took and the runs they created."""
    async with channel(address) as chan:
        stub = results_pb2_grpc.ResultsServiceStub(chan)
        await stub.ListPruneRuns(results_pb2.ListPruneRunsRequest(page_size=1))  # connect
        requests = [
            results_pb2.BatchRecordEvalRunsRequest(runs=runs[i : i + batch])
            for i in range(0, len(runs), batch)
        ]
        start = time.perf_counter()
        created = 0
        for request in requests:
            created += (await stub.BatchRecordEvalRuns(request, timeout=120)).created_count
        return time.perf_counter() - start, created


def table_rows(runs: list[results_pb2.EvalRun]) -> dict[str, list[dict]]:
    """The rows of each table the store writes for these eval runs."""
    table = RUN_TABLES["eval_runs"]
    rows: dict[str, list[dict]] = {"eval_runs": []}
    for run in runs:
        rows["eval_runs"].append({**columns.record(run), **columns.derived(run)})
        for child in table.children:
            rows.setdefault(child.name, []).extend(columns.child_rows(run, table, child))
    return rows


def direct(path: Path, rows: dict[str, list[dict]]) -> float:
    """Returns the seconds a DataFrame insert of the same rows into a fresh file took."""
    connection = duckdb.connect(str(path))
    migrate(connection)
    derive(connection, list(RUN_TABLES.values()))
    start = time.perf_counter()
    frames = {}
    for name, table_rows_ in rows.items():
        frame = pd.DataFrame(table_rows_)
        if name == "eval_runs":
            frame["create_time"] = pd.Timestamp.now()
        frames[name] = frame
    connection.execute("BEGIN TRANSACTION")
    for name, frame in frames.items():
        if len(frame):
            connection.register("_frame", frame)
            connection.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _frame")
            connection.unregister("_frame")
    connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    stored = connection.execute("SELECT count(*) FROM metrics").fetchone()
    connection.close()
    assert stored is not None and stored[0] == len(rows["metrics"])
    return elapsed


def main() -> None:
    """Runs the benchmark and prints the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--metrics", type=int, default=100)
    parser.add_argument("--batch", type=int, default=50, help="runs per RPC")
    parser.add_argument("--trials", type=int, default=3)
    add_arguments(parser)
    args = parse(parser, {"runs": 10, "metrics": 10, "batch": 5, "trials": 1})

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        server, address = start_server(home / "service")
        service_times, direct_times = [], []
        try:
            for trial in range(args.trials):
                runs = make_runs(trial, args.runs, args.metrics)
                rows = table_rows(runs)
                seconds, created = asyncio.run(through_service(address, runs, args.batch))
                assert created == args.runs, created
                service_times.append(seconds)
                direct_times.append(direct(home / f"direct-{trial}.duckdb", rows))
        finally:
            server.terminate()
            server.wait(30)

    rows_total = args.runs * args.metrics
    print(f"metric rows per trial: {rows_total} ({args.runs} runs x {args.metrics} metrics)")
    print(f"RPCs per trial: {-(-args.runs // args.batch)} BatchRecordEvalRuns of {args.batch}")
    print(f"service  trials (ms): {_ms(service_times)}")
    print(f"direct   trials (ms): {_ms(direct_times)}")
    best = min(service_times) / min(direct_times)
    median = statistics.median(service_times) / statistics.median(direct_times)
    figures = [
        Figure("ingest: service / direct DuckDB, best of trials", best, TARGET),
        Figure("ingest: service / direct DuckDB, median of trials", median, TARGET),
    ]
    details = {"metric_rows": rows_total, "service_s": service_times, "direct_s": direct_times}
    report("results_ingest", figures, args, details)


def _ms(values: list[float]) -> str:
    return ", ".join(f"{value * 1000:.0f}" for value in values)


if __name__ == "__main__":
    main()
