"""Every view and export of the results store answers whatever finite numbers a record holds.

The ResultsService refuses numbers beyond physical bounds at record time
(``limits.RECORD_NUMBER_BOUNDS``), but a store written before that rule, or by the store's own
API, may hold any finite value: one such run must never make a view fail for every reader.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf.message import Message

from results_service.store import VIEWS, ResultsStore
from tests import samples

EXTREMES = {
    "huge": (1e308, 2**63 - 1),
    "negative_huge": (-1e308, 2**63 - 1),
    "tiny": (5e-324, 1),
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
