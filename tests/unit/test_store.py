"""The results store on real DuckDB files: migrations, idempotent records, views, exports."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from greenprune.core.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from results_service.columns import RUN_TABLES
from results_service.migrations import LATEST_VERSION
from results_service.store import VIEWS, ResultsStore, ViewFilter
from tests import samples

REPO = Path(__file__).resolve().parents[2]
MODEL = "reference:tiny-llama"
OTHER_MODEL = "local:other"


def _record_study(store: ResultsStore) -> None:
    """Records the demo sweep and the cases the views must handle.

    Besides the sweep: a base model evaluated directly, a dominated checkpoint, a checkpoint no
    prune run describes, a run without energy and a second experiment.
    """
    prune_runs, eval_runs = samples.demo_study(experiment="demo", models=(MODEL,))
    prune_runs.append(
        samples.prune_run(
            "demo-prune-bad", model=MODEL, ratio=0.3, checkpoint_id="ckpt-bad", experiment="demo"
        )
    )
    # (request_id, task, accuracy, net joules, model, checkpoint)
    cases = [
        ("demo-eval-bad-greenprune_facts", "greenprune_facts", 0.5, 150.0, "", "ckpt-bad"),
        ("demo-eval-bad-greenprune_arith", "greenprune_arith", 0.5, 150.0, "", "ckpt-bad"),
        ("demo-eval-base", "greenprune_facts", 0.92, 101.0, MODEL, ""),
        ("demo-eval-orphan", "greenprune_facts", 0.4, 10.0, MODEL, "ckpt-unknown"),
        ("demo-eval-no-energy", "greenprune_arith", 0.6, None, MODEL, "ckpt-unknown"),
    ]
    eval_runs += [
        samples.eval_run(
            request_id,
            task=task,
            metrics={"acc": accuracy},
            net_joules=joules,
            model=model,
            checkpoint_id=checkpoint,
            experiment="demo",
        )
        for request_id, task, accuracy, joules, model, checkpoint in cases
    ]
    other_prune, other_eval = samples.demo_study(
        experiment="other", models=(OTHER_MODEL,), ratios=(0.0, 0.5), perplexity_task=None
    )
    for run in prune_runs + other_prune:
        assert store.record_prune_run(run)
    assert store.record_eval_runs(eval_runs) == len(eval_runs)
    assert store.record_eval_runs(other_eval) == len(other_eval)
    assert store.record_profile_run(samples.demo_profile(experiment="demo", model=MODEL))
    assert store.record_profile_run(
        samples.demo_profile(experiment="other", model=OTHER_MODEL, ratios=(0.0, 0.5))
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> ResultsStore:
    store = ResultsStore(tmp_path_factory.mktemp("study") / "results.duckdb")
    _record_study(store)
    yield store
    store.close()


def _frame(store: ResultsStore, view: str, **filters: str) -> pd.DataFrame:
    return store.query_view(view, ViewFilter(**filters)).to_pandas()


# Schema --------------------------------------------------------------------------------------


def test_migrations_apply_once_and_reopen_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "results.duckdb"
    with ResultsStore(path) as store:
        assert store.applied_migrations == list(range(1, LATEST_VERSION + 1))
    with ResultsStore(path) as store:
        assert store.applied_migrations == []
    connection = duckdb.connect(str(path))
    versions = connection.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    connection.close()
    assert [version for (version,) in versions] == list(range(1, LATEST_VERSION + 1))


def test_an_empty_file_is_migrated_and_a_foreign_file_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    empty.touch()
    with ResultsStore(empty) as store:
        assert store.applied_migrations == list(range(1, LATEST_VERSION + 1))
    foreign = tmp_path / "foreign.duckdb"
    foreign.write_text("not a database")
    with pytest.raises(FailedPreconditionError, match="cannot open"):
        ResultsStore(foreign)


def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.duckdb"
    ResultsStore(path).close()
    connection = duckdb.connect(str(path))
    connection.execute("INSERT INTO schema_version VALUES (999, 'future', now())")
    connection.close()
    with pytest.raises(FailedPreconditionError, match="999"):
        ResultsStore(path)
    duckdb.connect(str(path)).close()  # the failed open released the file


def test_the_tables_hold_every_column_the_messages_call_for(tmp_path: Path) -> None:
    path = tmp_path / "results.duckdb"
    ResultsStore(path).close()
    connection = duckdb.connect(str(path))
    schemas = {}
    for run_table in RUN_TABLES.values():
        schemas[run_table.name] = run_table.schema
        for child in run_table.children:
            schemas[child.name] = run_table.child_schema(child)
    for table, arrow_schema in schemas.items():
        columns = {
            name
            for (name,) in connection.execute(
                f"SELECT name FROM pragma_table_info('{table}')"
            ).fetchall()
        }
        assert set(arrow_schema.names) <= columns, table
    connection.close()


# Recording -----------------------------------------------------------------------------------


def test_runs_read_back_as_recorded(tmp_path: Path) -> None:
    prune_runs, eval_runs = samples.demo_study()
    with ResultsStore(tmp_path / "results.duckdb") as store:
        store.record_prune_run(prune_runs[1])
        store.record_eval_runs(eval_runs)
        for original, stored in [
            (prune_runs[1], store.get_prune_run(prune_runs[1].request_id)),
            (eval_runs[2], store.get_eval_run(eval_runs[2].request_id)),
        ]:
            assert stored.create_time.seconds > 0
            expected = type(original)()
            expected.CopyFrom(original)
            expected.create_time.CopyFrom(stored.create_time)
            assert stored == expected
        no_energy = samples.eval_run("bare", task="t", metrics={"acc": 0.5}, net_joules=None)
        store.record_eval_run(no_energy)
        assert not store.get_eval_run("bare").result.HasField("energy")


def test_recording_twice_stores_once(tmp_path: Path) -> None:
    prune_runs, eval_runs = samples.demo_study()
    rows = eval_runs
    with ResultsStore(tmp_path / "results.duckdb") as store:
        assert store.record_prune_run(prune_runs[0]) is True
        assert store.record_prune_run(prune_runs[0]) is False
        assert store.record_eval_runs(rows[:3] + rows[:3]) == 3
        assert store.record_eval_runs(rows) == len(rows) - 3
        assert store.record_eval_runs(rows) == 0
        assert store.record_eval_run(rows[0]) is False
        assert len(store.query_view("runs").rows) == len(rows)
        assert len(store.query_view("layers").rows) == 4
        metrics = store.query_view("task_breakdown").rows
        assert len(metrics) == sum(len(run.result.metrics) for run in eval_runs)


def test_invalid_runs_name_the_field_and_store_nothing(tmp_path: Path) -> None:
    _, eval_runs = samples.demo_study()
    rows = eval_runs[:3]
    with ResultsStore(tmp_path / "results.duckdb") as store:
        rows[1].request_id = ""
        with pytest.raises(InvalidArgumentError) as caught:
            store.record_eval_runs(rows)
        assert caught.value.field == "runs[1].request_id"
        assert "must not be empty" in caught.value.message
        rows[1].request_id = "fixed"
        rows[2].result.metrics.add().CopyFrom(rows[2].result.metrics[0])
        with pytest.raises(InvalidArgumentError) as caught:
            store.record_eval_run(rows[2])
        assert caught.value.field == "run.result.metrics"
        assert "duplicate metric" in caught.value.message
        rows[0].result.task = ""
        with pytest.raises(InvalidArgumentError) as caught:
            store.record_eval_run(rows[0])
        assert caught.value.field == "run.result.task"
        assert "must not be empty" in caught.value.message
        assert store.query_view("runs").rows == []
        with pytest.raises(NotFoundError, match="eval run 'fixed' not found"):
            store.get_eval_run("fixed")
        with pytest.raises(NotFoundError, match="prune run 'nothing' not found"):
            store.get_prune_run("nothing")


def test_a_recorded_run_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "results.duckdb"
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from results_service.store import ResultsStore
        from tests import samples
        store = ResultsStore(Path({str(path)!r}))
        _, runs = samples.demo_study()
        created = store.record_eval_runs(runs[:2])
        assert created == 2
        print("recorded", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "recorded" in child.stdout
    _, runs = samples.demo_study()
    with ResultsStore(path) as store:
        stored = store.get_eval_run(runs[1].request_id)
        assert [m.metric for m in stored.result.metrics] == ["acc", "acc_norm"]
        assert stored.result.energy.components[0].component == "cpu"


def test_concurrent_writers_and_readers(tmp_path: Path) -> None:
    _, eval_runs = samples.demo_study(ratios=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5))
    rows = eval_runs
    errors: list[BaseException] = []
    with ResultsStore(tmp_path / "results.duckdb") as store:

        def write(chunk: list) -> None:
            try:
                for row in chunk:
                    store.record_eval_run(row)
                    store.query_view("runs")
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(rows[i::3],)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(store.query_view("runs").rows) == len(rows)


def test_lists_are_newest_first_and_paged(tmp_path: Path) -> None:
    prune_runs, eval_runs = samples.demo_study()
    other, _ = samples.demo_study(experiment="other")
    with ResultsStore(tmp_path / "results.duckdb") as store:
        for run in prune_runs + other:
            store.record_prune_run(run)
        for run in eval_runs:
            store.record_eval_run(run)
        first, next_offset = store.list_runs("prune_runs", "demo", limit=2)
        assert [r.request_id for r in first] == [r.request_id for r in prune_runs[::-1][:2]]
        last, after = store.list_runs("prune_runs", "demo", limit=2, offset=next_offset)
        assert [r.request_id for r in last] == [prune_runs[0].request_id]
        assert after is None
        everything, _ = store.list_runs("eval_runs")
        assert [r.request_id for r in everything] == [r.request_id for r in eval_runs[::-1]]
        assert everything[0].result.metrics[0].metric == "word_perplexity"


# Views ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reported", "headline"),
    [
        (["acc_norm", "acc"], "acc"),
        (["acc_norm", "word_perplexity"], "acc_norm"),
        (["bits_per_byte", "word_perplexity"], "word_perplexity"),
        (["exact_match", "f1"], "exact_match"),
    ],
)
def test_headline_metric_rule(tmp_path: Path, reported: list[str], headline: str) -> None:
    run = samples.eval_run(
        "r", task="t", metrics=dict.fromkeys(reported, 0.5), net_joules=1.0, model="m"
    )
    with ResultsStore(tmp_path / "results.duckdb") as store:
        store.record_eval_run(run)
        runs = _frame(store, "runs")
        configurations = _frame(store, "configurations")
    assert list(runs["headline_metric"]) == [headline] == list(configurations["headline_metric"])
    accuracy = headline.startswith("acc")
    assert (runs.loc[0, "metric"] == headline) if accuracy else pd.isna(runs.loc[0, "metric"])


# The sample study prunes with one method; the view that pairs methods of equal size is
# exercised with variant data in test_method_comparison.py.
STUDY_VIEWS = tuple(view for view in VIEWS if view != "method_comparison")


def test_every_view_answers_and_exports(study: ResultsStore) -> None:
    for view in STUDY_VIEWS:
        table = study.query_view(view)
        frame = table.to_pandas()
        assert len(frame) > 0, view
        assert {c.type for c in table.columns} <= {"string", "double", "int64", "bool", "timestamp"}
        from_csv = pd.read_csv(io.BytesIO(study.export_view(view, fmt="csv")))
        from_parquet = pd.read_parquet(io.BytesIO(study.export_view(view, fmt="parquet")))
        assert list(from_csv.columns) == list(frame.columns) == list(from_parquet.columns)
        assert len(from_csv) == len(frame) == len(from_parquet)


def test_views_of_an_empty_store_have_columns_and_no_rows(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "results.duckdb") as store:
        for view in VIEWS:
            table = store.query_view(view)
            assert table.columns and table.rows == [], view
            assert pd.read_parquet(io.BytesIO(store.export_view(view, fmt="parquet"))).empty


def test_unknown_view_and_format_are_invalid(study: ResultsStore) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        study.query_view("nope")
    assert caught.value.field == "view"
    with pytest.raises(InvalidArgumentError) as caught:
        study.export_view("runs", fmt="xlsx")
    assert caught.value.field == "format"


def test_runs_view_resolves_ratio_and_headline_metric(study: ResultsStore) -> None:
    runs = _frame(study, "runs", experiment="demo").set_index("run_id")
    assert runs.loc["demo-eval-ckpt-0-040-greenprune_facts", "ratio"] == pytest.approx(0.4)
    assert runs.loc["demo-eval-ckpt-0-040-greenprune_facts", "metric"] == "acc"
    assert runs.loc["demo-eval-ckpt-0-040-greenprune_facts", "accuracy"] == pytest.approx(0.7)
    assert runs.loc["demo-eval-ckpt-0-040-greenprune_facts", "parameters_after"] == 1_920_000
    base = runs.loc["demo-eval-base"]
    assert base["ratio"] == 0.0 and pd.isna(base["checkpoint_id"])
    assert base["parameters_after"] == 2_400_000  # the base model's size, from its prune runs
    assert pd.isna(runs.loc["demo-eval-orphan", "ratio"])
    assert runs.loc["demo-eval-orphan", "model"] == MODEL
    text = runs.loc["demo-eval-ckpt-0-020-greenprune_text"]
    assert pd.isna(text["accuracy"])
    assert text["perplexity_metric"] == "word_perplexity"
    assert text["perplexity"] == pytest.approx(12.0)
    facts = runs.loc["demo-eval-ckpt-0-020-greenprune_facts"]
    assert facts["net_joules"] == pytest.approx(90.0)
    assert facts["net_joules_low"] < facts["net_joules"] < facts["net_joules_high"]
    assert facts["measurement_method"] == "cpu-load-estimate"
    assert facts["tokens_per_second"] == pytest.approx(1000.0)
    assert bool(facts["estimated"]) is True


def test_accuracy_view_leaves_out_perplexity(study: ResultsStore) -> None:
    accuracy = _frame(study, "accuracy_vs_sparsity", experiment="demo")
    assert set(accuracy["metric"]) == {"acc", "acc_norm"}
    assert "greenprune_text" not in set(accuracy["task"])
    row = accuracy[(accuracy.checkpoint_id == "ckpt-0-020") & (accuracy.metric == "acc_norm")]
    assert list(row["accuracy"]) == pytest.approx([0.78, 0.78])
    assert list(row["accuracy_stderr"]) == pytest.approx([0.01, 0.01])


def test_energy_view_only_has_runs_with_energy(study: ResultsStore) -> None:
    energy = _frame(study, "energy_vs_sparsity")
    runs = _frame(study, "runs")
    assert "demo-eval-no-energy" not in set(energy["run_id"])
    assert len(energy) == len(runs) - 1
    assert (energy["joules_per_token"] * energy["tokens"]).tolist() == pytest.approx(
        energy["net_joules"].tolist()
    )


def test_pareto_front_matches_a_brute_force_front(study: ResultsStore) -> None:
    runs = _frame(study, "runs", experiment="demo")
    runs = runs[runs["accuracy"].notna() & runs["net_joules"].notna()].copy()
    runs["checkpoint"] = runs["checkpoint_id"].fillna("base:" + runs["model"])
    per_task = runs.groupby(["checkpoint", "task"])[["accuracy", "net_joules"]].mean()
    points = per_task.groupby("checkpoint").agg(
        mean_accuracy=("accuracy", "mean"),
        net_joules=("net_joules", "sum"),
        task_set=("accuracy", lambda s: ",".join(sorted(s.index.get_level_values("task")))),
    )
    expected = set()
    for name, point in points.iterrows():
        same = points[points.task_set == point.task_set]
        beaten = (
            (same.mean_accuracy >= point.mean_accuracy)
            & (same.net_joules <= point.net_joules)
            & ((same.mean_accuracy > point.mean_accuracy) | (same.net_joules < point.net_joules))
        ).any()
        if not beaten:
            expected.add(name)
    front = _frame(study, "pareto_front", experiment="demo")
    front["checkpoint"] = front["checkpoint_id"].fillna("base:" + front["model"])
    assert set(front["checkpoint"]) == expected
    assert "ckpt-bad" not in expected and "ckpt-0-040" in expected
    best = front.set_index("checkpoint").loc["ckpt-0-020"]
    assert best["mean_accuracy"] == pytest.approx(0.8)
    assert best["net_joules"] == pytest.approx(180.0)  # two tasks x 90 J; perplexity excluded
    assert best["tasks"] == 2


def test_task_breakdown_is_relative_to_the_baseline(study: ResultsStore) -> None:
    breakdown = _frame(study, "task_breakdown", experiment="demo", task="greenprune_arith")
    assert set(breakdown["task"]) == {"greenprune_arith"}
    row = breakdown[(breakdown.checkpoint_id == "ckpt-0-040") & (breakdown.metric == "acc")].iloc[0]
    assert row["baseline_value"] == pytest.approx(0.9)
    assert row["delta_value"] == pytest.approx(0.7 - 0.9)
    assert row["relative_delta_net_joules"] == pytest.approx(80.0 / 100.0 - 1)
    perplexity = _frame(study, "task_breakdown", task="greenprune_text")
    ppl = perplexity[(perplexity.metric == "word_perplexity") & (perplexity.ratio == 0.4)].iloc[0]
    assert ppl["metric_kind"] == "perplexity"
    assert ppl["delta_value"] == pytest.approx(14.0 - 10.0)
    facts = _frame(study, "task_breakdown", experiment="demo", task="greenprune_facts")
    base_acc = facts[(facts.ratio == 0) & (facts.metric == "acc")]
    # Two uncompressed subjects (the 0.0 checkpoint and the base model evaluated directly): one
    # baseline, the checkpoint; the base model is compared with it like any configuration.
    assert set(base_acc["baseline_value"]) == {0.9}
    baseline = base_acc[base_acc["is_baseline"]]
    direct = base_acc[~base_acc["is_baseline"]]
    assert list(baseline["checkpoint_id"]) == ["ckpt-0-000"]
    assert direct["checkpoint_id"].isna().all() and len(direct) == 1
    assert direct["value_change"].iloc[0] == pytest.approx(0.92 - 0.9)


def test_experiments_components_layers_and_prune_runs(study: ResultsStore) -> None:
    experiments = _frame(study, "experiments").set_index("experiment")
    assert experiments.loc["demo", "prune_runs"] == 4
    assert experiments.loc["demo", "eval_runs"] == 14
    assert experiments.loc["other", "model_names"] == OTHER_MODEL
    assert experiments.loc["other", "checkpoints"] == 2
    components = _frame(study, "energy_components", experiment="other")
    assert set(components["run_kind"]) == {"eval", "prune"}
    headline = components[components["headline"]]
    assert set(headline["component"]) == {"cpu"}
    assert set(components[components.component == "ram"]["measurement_method"]) == {
        "constant-estimate"
    }
    layers = _frame(study, "layers", model=OTHER_MODEL)
    half = layers[layers.ratio == 0.5].set_index("layer")
    assert half.loc[1, "intermediate_size"] == 256 and not half.loc[1, "kept"]
    assert half.loc[0, "intermediate_size"] == 512 and half.loc[0, "kept"]
    prune = _frame(study, "prune_runs", experiment="other").set_index("ratio")
    assert prune.loc[0.5, "parameters_after"] == 2_400_000 - 600_000
    assert prune.loc[0.5, "pruning_method"] == "taylor"


def test_filters_narrow_every_view(study: ResultsStore) -> None:
    for view in STUDY_VIEWS:
        everything = _frame(study, view)
        other = _frame(study, view, experiment="other")
        by_model = _frame(study, view, model=OTHER_MODEL)
        assert 0 < len(other) < len(everything), view
        assert set(other["experiment"]) == {"other"}, view
        assert len(by_model) == len(other), view
        assert _frame(study, view, experiment="missing").empty, view
    facts = _frame(study, "runs", task="greenprune_facts")
    assert set(facts["task"]) == {"greenprune_facts"}


def test_a_field_added_to_the_prune_messages_is_stored_and_served_with_no_store_edit(
    tmp_path: Path,
) -> None:
    from greenprune.api.pruning.v1 import pruning_pb2
    from greenprune.api.results.v1 import results_pb2

    store = ResultsStore(tmp_path / "derived.duckdb")
    # depth_share, method_family, layers_after and bytes_in_memory were added to the proto
    # after the store's hand-written columns: they travel as the messages' JSON and columns.
    run = results_pb2.PruneRun(
        request_id="p-derived",
        experiment="e",
        spec=pruning_pb2.PruneSpec(model="m", ratio=0.25, depth_share=0.5),
        result=pruning_pb2.PruneResult(
            checkpoint_id="c", method_family="depth", layers_after=3, bytes_in_memory=123
        ),
    )
    assert store.record_prune_run(run)
    back = store.get_prune_run("p-derived")
    assert back.spec == run.spec and back.result == run.result
    row = store.query_view("prune_runs", None)
    assert row is not None
    cursor = store._read_cursor()
    try:
        values = cursor.execute(
            "SELECT result_method_family, spec_depth_share, result_bytes_in_memory "
            "FROM prune_runs WHERE request_id = 'p-derived'"
        ).fetchone()
    finally:
        cursor.close()
    assert values == ("depth", 0.5, 123)


def test_a_group_tasks_subtasks_are_rows_of_their_own(tmp_path: Path) -> None:
    def run(request_id: str, checkpoint: str, accuracy: float) -> object:
        made = samples.eval_run(
            request_id, task="suite", metrics={}, net_joules=1.0, checkpoint_id=checkpoint
        )
        for task, value in (("suite", accuracy), ("suite_a", accuracy - 0.1)):
            made.result.metrics.add(task=task, metric="acc", value=value, stderr=0.01)
        return made

    with ResultsStore(tmp_path / "results.duckdb") as store:
        for ratio, checkpoint in ((0.0, "base"), (0.5, "half")):
            store.record_prune_run(
                samples.prune_run(
                    f"p-{checkpoint}", model="m", ratio=ratio, checkpoint_id=checkpoint
                )
            )
        store.record_eval_runs([run("e-base", "base", 0.8), run("e-half", "half", 0.6)])
        breakdown = _frame(store, "task_breakdown").set_index(["checkpoint_id", "task"])
    assert breakdown.loc[("half", "suite"), "is_headline"]
    assert not breakdown.loc[("half", "suite_a"), "is_headline"]
    assert breakdown.loc[("half", "suite_a"), "baseline_value"] == pytest.approx(0.7)
    assert breakdown.loc[("half", "suite_a"), "delta_value"] == pytest.approx(-0.2)
