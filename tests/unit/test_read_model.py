"""The results store's read model: runs stored as their messages, columns from the descriptors.

* A scalar added to PruneSpec or EvalSpec reaches the store's columns and every view with no
  edit to the store or the views: shown on a copy of the contract's descriptors with one field
  more in each.
* A store written by the previous schema (``tests/data/results_store_v2``) opens, and reads as
  the same runs recorded into a fresh store.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    struct_pb2,
    timestamp_pb2,
)
from google.rpc import status_pb2

from greenprune.api.common.v1 import energy_pb2, jobs_pb2, kernels_pb2, layers_pb2
from greenprune.api.eval.v1 import eval_pb2
from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.api.results.v1 import results_pb2
from results_service.columns import run_tables
from results_service.migrations import LATEST_VERSION
from results_service.store import VIEWS, ResultsStore
from tests import samples

NEW_PRUNE_FIELD = "new_knob"
NEW_EVAL_FIELD = "new_window"


DOUBLE = descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE
INT32 = descriptor_pb2.FieldDescriptorProto.TYPE_INT32
NEW_POINT_FIELD = "cache_misses"


def _contract_with(new_fields: dict[str, tuple[str, int]]) -> dict[str, type]:
    """The run messages of a copy of the contract whose messages gain a scalar field each.

    Args:
        new_fields: The new field's name and type, by message name (``PruneSpec``,
            ``EvalSpec``, ``ProfilePoint``): what adding it to the .proto files generates.
    """
    pool = descriptor_pool.DescriptorPool()
    wells = (any_pb2, timestamp_pb2, struct_pb2, status_pb2)
    for module in (*wells, energy_pb2, kernels_pb2, layers_pb2, jobs_pb2, pruning_pb2, eval_pb2):
        file = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(file)
        for message in file.message_type:
            if message.name in new_fields:
                name, kind = new_fields[message.name]
                message.field.add(
                    name=name,
                    number=900,
                    type=kind,
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                    json_name="".join(
                        part if i == 0 else part.title() for i, part in enumerate(name.split("_"))
                    ),
                )
        pool.Add(file)
    pool.AddSerializedFile(results_pb2.DESCRIPTOR.serialized_pb)
    return {
        name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"greenprune.api.results.v1.{name}")
        )
        for name in ("PruneRun", "EvalRun", "ProfileRun")
    }


def _runs(contract: dict[str, type]) -> tuple[object, object]:
    """A prune run and an eval run of the copied contract, the new fields set."""
    prune = contract["PruneRun"]()
    prune.ParseFromString(
        samples.prune_run("p-new", model="m", ratio=0.2, checkpoint_id="c-new").SerializeToString()
    )
    setattr(prune.spec, NEW_PRUNE_FIELD, 0.75)
    evaluation = contract["EvalRun"]()
    evaluation.ParseFromString(
        samples.eval_run(
            "e-new", task="t", metrics={"acc": 0.5}, net_joules=1.0, checkpoint_id="c-new"
        ).SerializeToString()
    )
    setattr(evaluation.spec, NEW_EVAL_FIELD, 3)
    return prune, evaluation


def _column(store: ResultsStore, table: str, column: str, request_id: str) -> object:
    cursor = store._read_cursor()
    try:
        row = cursor.execute(
            f"SELECT {column} FROM {table} WHERE request_id = ?", [request_id]
        ).fetchone()
    finally:
        cursor.close()
    return row[0] if row else None


def test_a_scalar_added_to_the_specs_needs_no_store_or_view_edit(tmp_path: Path) -> None:
    contract = _contract_with(
        {"PruneSpec": (NEW_PRUNE_FIELD, DOUBLE), "EvalSpec": (NEW_EVAL_FIELD, INT32)}
    )
    tables = run_tables(contract["PruneRun"], contract["EvalRun"], contract["ProfileRun"])
    path = tmp_path / "results.duckdb"
    # A store written before the fields existed, with one run of each kind ...
    prune_runs, eval_runs = samples.demo_study(ratios=(0.0, 0.2))
    with ResultsStore(path) as store:
        store.record_prune_run(prune_runs[0])
        store.record_eval_runs(eval_runs[:2])
    # ... opened by code whose messages have them: the columns appear, filled for old runs.
    prune, evaluation = _runs(contract)
    with ResultsStore(path, tables) as store:
        assert set(store.derived) >= {
            f"prune_runs.spec_{NEW_PRUNE_FIELD}",
            f"eval_runs.spec_{NEW_EVAL_FIELD}",
        }
        assert store.record_prune_run(prune) and store.record_eval_run(evaluation)
        assert store.get_prune_run("p-new").spec == prune.spec
        assert getattr(store.get_eval_run("e-new").spec, NEW_EVAL_FIELD) == 3
        assert _column(store, "prune_runs", f"spec_{NEW_PRUNE_FIELD}", "p-new") == 0.75
        assert _column(store, "eval_runs", f"spec_{NEW_EVAL_FIELD}", "e-new") == 3
        old = prune_runs[0].request_id
        assert _column(store, "prune_runs", f"spec_{NEW_PRUNE_FIELD}", old) == 0.0
        for view in VIEWS:
            assert store.query_view(view).columns, view
        runs = store.query_view("runs").to_pandas().set_index("run_id")
        assert runs.loc["e-new", "ratio"] == pytest.approx(0.2)
    # And the contract's own messages still read the store (the unknown field is left aside).
    with ResultsStore(path) as store:
        assert store.derived == []
        assert store.get_prune_run("p-new").spec.ratio == pytest.approx(0.2)


# A store written by the previous schema -----------------------------------------------------

_TIMES = {"recorded_at", "create_time", "first_recorded", "last_updated", "applied_at"}


def _views(store: ResultsStore) -> dict[str, pd.DataFrame]:
    frames = {}
    for view in VIEWS:
        frame = store.query_view(view).to_pandas()
        frames[view] = frame.drop(columns=[c for c in frame.columns if c in _TIMES])
    return frames


@pytest.fixture(scope="module")
def migrated_and_fresh(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, dict]:
    folder = tmp_path_factory.mktemp("v2")
    runs = samples.v2_runs()
    path = samples.v2_store(folder / "old.duckdb")
    with ResultsStore(path) as store:
        assert store.applied_migrations == [3] == list(range(3, LATEST_VERSION + 1))
        migrated = {
            kind: [getattr(store, f"get_{kind[:-5]}_run")(run.request_id) for run in messages]
            for kind, messages in runs.items()
        }
        migrated_views = _views(store)
    with ResultsStore(folder / "fresh.duckdb") as store:
        for run in runs["prune_runs"]:
            store.record_prune_run(run)
        store.record_eval_runs(runs["eval_runs"])
        for run in runs["profile_runs"]:
            store.record_profile_run(run)
        fresh_views = _views(store)
    return runs, migrated, {"migrated": migrated_views, "fresh": fresh_views}


def test_a_store_of_the_previous_schema_reads_back_every_run(migrated_and_fresh: tuple) -> None:
    runs, migrated, _ = migrated_and_fresh
    for kind, messages in runs.items():
        for original, stored in zip(messages, migrated[kind], strict=True):
            assert stored.create_time.seconds > 0
            expected = type(original)()
            expected.CopyFrom(original)
            expected.create_time.CopyFrom(stored.create_time)
            assert stored == expected, original.request_id


def test_a_store_of_the_previous_schema_reads_as_the_same_runs_recorded_afresh(
    migrated_and_fresh: tuple,
) -> None:
    _, _, views = migrated_and_fresh
    for view, fresh in views["fresh"].items():
        migrated = views["migrated"][view]
        assert list(migrated.columns) == list(fresh.columns), view
        assert len(fresh) > 0 or view == "method_comparison", view
        pd.testing.assert_frame_equal(migrated, fresh, check_dtype=False, obj=view)


def test_the_previous_schemas_copies_are_gone(tmp_path: Path) -> None:
    path = samples.v2_store(tmp_path / "old.duckdb")
    ResultsStore(path).close()
    connection = duckdb.connect(str(path))
    try:
        names = {
            row[0]
            for row in connection.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'prune_runs'"
            ).fetchall()
        }
    finally:
        connection.close()
    for copy in ("target_ratio", "net_joules", "recovery_steps", "recovery_json", "has_energy"):
        assert copy not in names
    assert {"spec_json", "result_json", "spec_ratio", "result_energy_net_joules_median"} <= names
    assert "result_recovery_steps" in names


def test_a_field_version_2_stored_by_its_rule_survives_the_migration(tmp_path: Path) -> None:
    # Version 2 added a column for every field a ProfilePoint gained (add_missing_columns):
    # a store written by such a version holds values the version-3 records must keep.
    path = samples.v2_store(tmp_path / "old.duckdb")
    with duckdb.connect(str(path)) as connection:
        connection.execute(f"ALTER TABLE profile_points ADD COLUMN {NEW_POINT_FIELD} DOUBLE")
        connection.execute(f"UPDATE profile_points SET {NEW_POINT_FIELD} = round * 0.5")
    contract = _contract_with({"ProfilePoint": (NEW_POINT_FIELD, DOUBLE)})
    tables = run_tables(contract["PruneRun"], contract["EvalRun"], contract["ProfileRun"])
    with ResultsStore(path, tables) as store:
        (profile,) = samples.v2_runs()["profile_runs"]
        points = store.get_profile_run(profile.request_id).result.points
        windows = store.query_view("profile").to_pandas()
        cursor = store._read_cursor()
        try:
            stored = cursor.execute(
                f"SELECT DISTINCT round, {NEW_POINT_FIELD} FROM profile_points ORDER BY 1"
            ).fetchall()
        finally:
            cursor.close()
    assert [getattr(point, NEW_POINT_FIELD) for point in points] == [p.round * 0.5 for p in points]
    assert stored == [(r, r * 0.5) for r in range(len(stored))]
    assert len(windows) > 0
