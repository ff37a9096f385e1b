"""Every view and export of the results store answers whatever finite numbers a record holds.

The ResultsService refuses numbers beyond physical bounds at record time
(``limits.RECORD_NUMBER_BOUNDS``), but a store written before that rule, or by the store's own
API, may hold any finite value: one such run must never make a view fail for every reader.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from google.protobuf.message import Message

from results_service.store import VIEWS, ResultsStore, ViewCache, ViewFilter
from tests import samples

EXTREMES = {
    "huge": (1e308, 2**63 - 1),
    "negative_huge": (-1e308, 2**63 - 1),
}
"""Each case's value for every float field, and for every integer count of tokens and bytes."""

_COUNTS = ("tokens", "bytes", "parameters", "macs", "samples", "iterations")


def extremize(message: Message, real: float, count: int) -> None:
    """Sets, in place, every float field of ``message`` to ``real`` and every count to ``count``.

    Counts are the integer fields whose name holds one of ``_COUNTS``; indices, rounds and batch
    sizes stay as they are so that the run's rows stay distinct.
    """
    for field, value in message.ListFields():
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                continue
            for item in value if field.is_repeated else [value]:
                extremize(item, real, count)
        elif field.type in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
            if field.is_repeated:
                value[:] = [real] * len(value)
            else:
                setattr(message, field.name, real)
        elif field.type in (field.TYPE_INT64, field.TYPE_UINT64) and any(
            part in field.name for part in _COUNTS
        ):
            if field.is_repeated:
                value[:] = [count] * len(value)
            else:
                setattr(message, field.name, count)


def hostile_store(path: Path, real: float, count: int) -> ResultsStore:
    """The demo study and profile, and the same records of an experiment holding extremes.

    The hostile experiment's records go through the store's own API, which (unlike the
    service) does not check the bounds: as a store written before them would hold them.
    """
    store = ResultsStore(path)
    for experiment, hostile in (("demo", False), ("hostile", True)):
        prune_runs, eval_runs = samples.demo_study(experiment=experiment)
        profile = samples.demo_profile(experiment=experiment)
        short = samples.profile_run(
            f"{experiment}-short",
            model="reference:tiny-llama",
            costs={"ckpt-0-000": 1e-3, "ckpt-0-020": 9e-4},
            experiment=experiment,
            rounds=3,
        )
        for run in [*prune_runs, *eval_runs, profile, short]:
            if hostile:
                extremize(run, real, count)
        for run in prune_runs:
            store.record_prune_run(run)
        store.record_eval_runs(eval_runs)
        store.record_profile_run(profile)
        store.record_profile_run(short)
    return store


@pytest.mark.parametrize("case", sorted(EXTREMES))
def test_every_view_and_export_answers_a_store_of_extreme_values(case: str, tmp_path: Path) -> None:
    real, count = EXTREMES[case]
    with hostile_store(tmp_path / "results.duckdb", real, count) as store:
        for view in VIEWS:
            table = store.query_view(view)
            for fmt in ("csv", "parquet"):
                assert store.export_view(view, None, fmt), (view, fmt)
            if view == "profile":
                experiments = {row[0] for row in table.rows}
                assert experiments == {"demo", "hostile"}, "the hostile profile is shown"


# The view cache ------------------------------------------------------------------------------


def _demo_store(path: Path) -> ResultsStore:
    store = ResultsStore(path)
    prune_runs, eval_runs = samples.demo_study()
    for run in prune_runs:
        store.record_prune_run(run)
    store.record_eval_runs(eval_runs)
    store.record_profile_run(samples.demo_profile())
    return store


def test_a_view_is_computed_once_per_write_and_filter(tmp_path: Path) -> None:
    with _demo_store(tmp_path / "results.duckdb") as store:
        first = store.query_view("findings")
        computed = store.view_computations
        assert store.query_view("findings").rows == first.rows
        assert store.export_view("findings", None, "csv")
        assert store.view_computations == computed, "read again without a write: not recomputed"

        store.query_view("findings", ViewFilter(experiment="demo"))
        assert store.view_computations == computed + 1, "another filter is another view"

        store.record_eval_run(
            samples.eval_run(
                "new-run",
                task="greenprune_facts",
                metrics={"acc": 0.1},
                net_joules=5.0,
                model="reference:tiny-llama",
                experiment="demo",
            )
        )
        after = store.query_view("findings")
        assert store.view_computations == computed + 2, "a write invalidates it"
        assert after.rows != first.rows
        store.query_view("findings")
        assert store.view_computations == computed + 2


def test_concurrent_readers_of_a_view_share_one_computation(tmp_path: Path) -> None:
    with _demo_store(tmp_path / "results.duckdb") as store:
        before = store.view_computations
        start = threading.Barrier(8)

        def read() -> list:
            start.wait()
            return store.query_view("payback").rows

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: read(), range(8)))
        assert store.view_computations == before + 1
        assert all(rows == results[0] for rows in results)


def test_a_failed_computation_is_not_kept(tmp_path: Path) -> None:
    cache = ViewCache()
    calls = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("boom")

    for _ in range(2):
        with pytest.raises(ValueError, match="boom"):
            cache.get("view", 0, broken)
    assert len(calls) == 2 and cache.get("view", 0, lambda: "ok") == "ok"


def test_closing_right_after_a_write_stops_the_warming_thread(tmp_path: Path) -> None:
    # close() during the warming thread's pause after a write once left it waiting forever,
    # and close() waited 60 s for it: every service stop right after a record took a minute.
    for attempt in range(5):
        path = tmp_path / f"warm-{attempt}.duckdb"
        store = ResultsStore(path, warm_views=True)
        store.query_view("findings")  # a view read before the write: the thread warms it
        run = samples.eval_run(f"run-{attempt}", task="facts", metrics={"acc": 0.5}, net_joules=1.0)
        store.record_eval_run(run)
        warming = [t for t in threading.enumerate() if t.name == f"results-view-warming {path}"]
        store.close()
        assert warming and not any(thread.is_alive() for thread in warming)
