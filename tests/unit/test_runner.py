from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.client.plan import Plan, plan_experiment, request_id
from greenprune.client.report import ResultRow, to_csv, to_json
from greenprune.client.runner import resolve_addresses
from greenprune.client.spec import load_experiment

BASE = textwrap.dedent(
    """\
    name: demo
    models: [reference:tiny-llama]
    pruning:
      method: taylor
      ratios: [0.0, 0.2, 0.4]
      keep_first_layers: 1
      keep_last_layers: 1
    eval:
      tasks: [greenprune_facts, greenprune_arith]
      batch_size: 16
      repeats: 3
      limit: 20
    """
)


def _plan(tmp_path: Path, text: str = BASE, name: str = "x.yaml") -> Plan:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return plan_experiment(load_experiment(path))


def _ids(plan: Plan) -> list[str]:
    return [step.request_id for step in plan.steps]


def test_plan_has_a_prune_step_per_ratio_and_an_eval_step_per_checkpoint_and_task(
    tmp_path: Path,
) -> None:
    plan = _plan(tmp_path)
    assert [(s.model, s.ratio) for s in plan.prune_steps] == [
        ("reference:tiny-llama", 0.0),
        ("reference:tiny-llama", 0.2),
        ("reference:tiny-llama", 0.4),
    ]
    assert len(plan.eval_steps) == 6
    assert {s.prune.ratio for s in plan.eval_steps} == {0.0, 0.2, 0.4}
    assert len(set(_ids(plan))) == 3 + 6 + 1  # prunes, evals, one energy profile
    (profile,) = plan.profile_steps
    assert [s.ratio for s in profile.prunes] == [0.0, 0.2, 0.4]  # the baseline first
    assert list(profile.spec.profile.batch_sizes) == [1, 8, 32]
    assert profile.spec.profile.rounds == 5
    for step in plan.eval_steps:
        assert step.run_id == f"{step.request_id}/{step.task}"
        assert list(step.spec.tasks) == [step.task]


def test_plan_is_deterministic_and_independent_of_the_files_location(tmp_path: Path) -> None:
    first = _plan(tmp_path / "a")
    second = _plan(tmp_path / "b", name="other-name.yaml")
    assert _ids(first) == _ids(second)
    assert _ids(first) == _ids(_plan(tmp_path / "a"))


def test_key_order_and_number_spelling_do_not_matter(tmp_path: Path) -> None:
    reordered = BASE.replace("[0.0, 0.2, 0.4]", "[0, 0.20, 0.4]").replace(
        "      batch_size: 16\n      repeats: 3\n", "      repeats: 3\n      batch_size: 16\n"
    )
    assert _ids(_plan(tmp_path, reordered)) == _ids(_plan(tmp_path, BASE, "y.yaml"))


@pytest.mark.parametrize(
    ("old", "new", "prune_changes", "eval_changes"),
    [
        ("name: demo", "name: demo2", {0, 1, 2}, set(range(6))),
        ("method: taylor", "method: magnitude-l1", {0, 1, 2}, set(range(6))),
        ("keep_first_layers: 1", "keep_first_layers: 2", {0, 1, 2}, set(range(6))),
        ("[0.0, 0.2, 0.4]", "[0.0, 0.2, 0.5]", {2}, {4, 5}),
        ("limit: 20", "limit: 30", set(), set(range(6))),
        ("batch_size: 16", "batch_size: 8", set(), set(range(6))),
        ("repeats: 3", "repeats: 5", set(), set(range(6))),
        ("limit: 20", "limit: 20\n  device: cpu", set(), set(range(6))),
        ("limit: 20", "limit: 20\nseed: 7", {0, 1, 2}, set(range(6))),
    ],
)
def test_request_ids_change_exactly_when_their_inputs_change(
    tmp_path: Path, old: str, new: str, prune_changes: set[int], eval_changes: set[int]
) -> None:
    assert old in BASE
    before = _plan(tmp_path, BASE, "before.yaml")
    after = _plan(tmp_path, BASE.replace(old, new), "after.yaml")
    changed_prunes = {
        i
        for i, (a, b) in enumerate(zip(before.prune_steps, after.prune_steps, strict=True))
        if a.request_id != b.request_id
    }
    changed_evals = {
        i
        for i, (a, b) in enumerate(zip(before.eval_steps, after.eval_steps, strict=True))
        if a.request_id != b.request_id
    }
    assert changed_prunes == prune_changes
    assert changed_evals == eval_changes


def test_adding_a_ratio_or_a_task_keeps_the_existing_ids(tmp_path: Path) -> None:
    before = _plan(tmp_path, BASE, "before.yaml")
    grown = BASE.replace("[0.0, 0.2, 0.4]", "[0.0, 0.1, 0.2, 0.4]").replace(
        "greenprune_arith]", "greenprune_arith, greenprune_heldout]"
    )
    after = _plan(tmp_path, grown, "after.yaml")
    # Prune and eval steps keep their ids; the profile covers the new checkpoint, so it is new.
    kept = [s.request_id for s in (*before.prune_steps, *before.eval_steps)]
    assert set(kept) < set(_ids(after))
    assert before.profile_steps[0].request_id != after.profile_steps[0].request_id
    assert len(after.steps) == 4 + 4 * 3 + 1


def test_the_energy_profile_can_be_switched_off(tmp_path: Path) -> None:
    plan = _plan(tmp_path, BASE + "energy: {profile: false}\n")
    assert plan.profile_steps == ()


def test_request_id_is_a_hash_of_canonical_json() -> None:
    one = request_id("prune", {"b": 1, "a": [0.5, "x"]})
    assert one == request_id("prune", {"a": [0.5, "x"], "b": 1})
    assert one != request_id("eval", {"b": 1, "a": [0.5, "x"]})
    assert one.startswith("prune-") and len(one) == len("prune-") + 24


def test_specs_carry_the_file_settings(tmp_path: Path) -> None:
    text = BASE.replace("limit: 20", "limit: 20\n  task_paths: [tasks]\n  idle_seconds: 0.5")
    (tmp_path / "tasks").mkdir()
    plan = _plan(tmp_path, text)
    prune = plan.prune_steps[1].spec
    assert prune.method == pruning_pb2.PRUNING_METHOD_TAYLOR
    assert prune.ratio == pytest.approx(0.2)
    assert (prune.keep_first_layers, prune.keep_last_layers) == (1, 1)
    assert prune.calibration.samples == 32
    spec = plan.eval_steps[0].spec
    assert spec.HasField("limit") and spec.limit == 20
    assert spec.batch_size == 16 and spec.repeats == 3 and spec.idle_seconds == 0.5
    # The file's task folders travel as content, never as client paths in the spec.
    assert not spec.task_paths and not spec.task_sources
    assert plan.task_folders == ((tmp_path / "tasks").resolve(),)
    assert not spec.HasField("checkpoint_id")
    no_limit = _plan(tmp_path, BASE.replace("  limit: 20\n", ""), "nolimit.yaml")
    assert not no_limit.eval_steps[0].spec.HasField("limit")


def test_addresses_default_to_the_local_stack(tmp_path: Path) -> None:
    local = {"pruning": "127.0.0.1:1", "eval": "127.0.0.1:2", "results": "127.0.0.1:3"}
    experiment = load_experiment(_write(tmp_path, BASE)).experiment
    assert resolve_addresses(experiment, local).eval == "127.0.0.1:2"
    custom = BASE + "services: {eval: 'gpu-box:50052'}\n"
    experiment = load_experiment(_write(tmp_path, custom, "c.yaml")).experiment
    addresses = resolve_addresses(experiment, local)
    assert (addresses.eval, addresses.pruning) == ("gpu-box:50052", "127.0.0.1:1")


def _write(tmp_path: Path, text: str, name: str = "f.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the results table ----------------------------------------------------------------------------


def test_csv_and_json_hold_every_row() -> None:
    rows = [ResultRow("e", "m", 0.0, 10, "t", "acc", 0.5, float("nan"), 1.0, 0.5, 1.5, 0.01)]
    records = json.loads(to_json(rows))
    assert records[0]["value"] == 0.5 and records[0]["stderr"] is None
    lines = to_csv(rows).splitlines()
    assert lines[0].startswith("experiment,model,ratio,parameters,task")
    assert len(lines) == 2
