from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from greenprune.client.spec import (
    Experiment,
    ExperimentFileError,
    field_path,
    load_experiment,
    parse_experiment,
)

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"

VALID = textwrap.dedent(
    """\
    name: demo
    models: [reference:tiny-llama]
    pruning:
      method: taylor
      ratios:
        - 0.0
        - 0.2
        - 0.4
      keep_first_layers: 1
      keep_last_layers: 1
    eval:
      tasks: [greenprune_facts, greenprune_arith]
      batch_size: 16
      repeats: 3
    """
)


def _error(text: str, name: str = "demo.yaml") -> ExperimentFileError:
    with pytest.raises(ExperimentFileError) as info:
        parse_experiment(text, Path(name))
    return info.value


def test_valid_file_parses_with_defaults() -> None:
    experiment = parse_experiment(VALID, Path("demo.yaml"))
    assert isinstance(experiment, Experiment)
    assert experiment.pruning.ratios == [0.0, 0.2, 0.4]
    assert experiment.pruning.calibration.samples == 32
    assert experiment.eval.limit is None
    assert experiment.services.pruning is None
    assert experiment.seed == 0


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_experiment_files_are_valid(path: Path) -> None:
    loaded = load_experiment(path)
    assert loaded.path == path.resolve()
    assert 0.0 in loaded.experiment.pruning.ratios


def test_demo_matches_the_issue() -> None:
    demo = load_experiment(EXPERIMENTS / "demo.yaml").experiment
    assert demo.models == ["reference:tiny-llama"]
    assert demo.pruning.ratios == [0.0, 0.2, 0.4]
    assert demo.pruning.method == "taylor"
    assert (demo.pruning.keep_first_layers, demo.pruning.keep_last_layers) == (1, 1)
    assert demo.eval.tasks == ["greenprune_facts", "greenprune_arith", "greenprune_heldout"]
    assert (demo.eval.repeats, demo.eval.batch_size) == (3, 16)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # the example of the issue: the third ratio is out of range
        ("    - 0.4\n", "    - 0.95\n", "demo.yaml:8 pruning.ratios[2]: must be < 0.9"),
        ("    - 0.4\n", "    - -0.1\n", "demo.yaml:8 pruning.ratios[2]: must be >= 0 and < 0.9"),
        ("    - 0.4\n", "    - lots\n", "demo.yaml:8 pruning.ratios[2]: must be a number"),
        ("    - 0.4\n", "    - 0.2\n", "demo.yaml:5 pruning.ratios: lists 0.2 twice"),
        ("  method: taylor\n", "  method: tayler\n", "demo.yaml:4 pruning.method: must be one of"),
        (
            "  keep_last_layers: 1\n",
            "  keep_last_layer: 1\n",
            "demo.yaml:10 pruning.keep_last_layer: unknown field",
        ),
        ("  batch_size: 16\n", "  batch_size: big\n", "demo.yaml:13 eval.batch_size: must be an"),
        ("  repeats: 3\n", "  repeats: 0\n", "demo.yaml:14 eval.repeats: must be >= 1"),
        ("name: demo\n", "name: my demo!\n", "demo.yaml:1 name: must be 1-64 letters"),
        ("name: demo\n", "", "demo.yaml:1 name: is required"),
        (
            "  keep_first_layers: 1\n",
            "  keep_first_layers: 1\n  keep_first_layers: 2\n",
            "demo.yaml:10 pruning.keep_first_layers: appears twice",
        ),
        ("  repeats: 3\n", "  repeats: 3\n  device: tpu\n", "demo.yaml:15 eval.device: must be"),
        ("  repeats: 3\n", "  repeats: 3\nservices: {eval: nowhere}\n", "services.eval: must"),
        ("  repeats: 3\n", "  repeats: 3\nseeed: 1\n", "seeed: unknown field"),
    ],
)
def test_errors_name_the_line_and_the_field(old: str, new: str, expected: str) -> None:
    assert old in VALID
    error = _error(VALID.replace(old, new, 1))
    assert expected in str(error)


def test_typo_gets_a_suggestion() -> None:
    error = _error(VALID.replace("  repeats: 3\n", "  repeat: 3\n"))
    assert "did you mean 'repeats'?" in str(error)
    assert error.field == "eval.repeat"
    assert error.problems[0].line == 14


def test_every_problem_is_listed_in_line_order() -> None:
    text = VALID.replace("  method: taylor\n", "  method: nope\n").replace(
        "  repeats: 3\n", "  repeats: -1\n"
    )
    lines = str(_error(text)).splitlines()
    assert [line.split(" ")[0] for line in lines] == ["demo.yaml:4", "demo.yaml:14"]


def test_yaml_syntax_errors_have_a_line() -> None:
    error = _error(VALID.replace("  batch_size: 16\n", "  batch_size: [16\n"))
    assert str(error).startswith("demo.yaml:")
    assert "not valid YAML" in str(error)
    assert error.problems[0].line >= 13


@pytest.mark.parametrize(("text", "message"), [("", "empty"), ("- a\n- b\n", "mapping")])
def test_empty_or_non_mapping_file(text: str, message: str) -> None:
    assert message in str(_error(text))


def test_field_path_formats_indexes() -> None:
    assert field_path(("pruning", "ratios", 2)) == "pruning.ratios[2]"
    assert field_path(("name",)) == "name"


def _listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.5)
    return server


def test_invalid_file_submits_nothing(tmp_path: Path) -> None:
    """The CLI rejects the file before it dials any service: no connection reaches the port."""
    server = _listener()
    port = server.getsockname()[1]
    address = f"127.0.0.1:{port}"
    bad = tmp_path / "bad.yaml"
    text = VALID.replace("    - 0.4\n", "    - 0.95\n")
    bad.write_text(
        text + f"services: {{pruning: '{address}', eval: '{address}', results: '{address}'}}\n"
    )
    env = {
        **os.environ,
        "GREENPRUNE_RESULTS_PORT": str(port),
        "GREENPRUNE_PRUNING_PORT": str(port),
        "GREENPRUNE_EVAL_PORT": str(port),
    }
    result = subprocess.run(
        [sys.executable, "-m", "greenprune.client.cli", "run", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "bad.yaml:8 pruning.ratios[2]: must be < 0.9" in result.stderr
    try:
        with pytest.raises(TimeoutError):
            server.accept()
        # the same file, made valid, does dial the services: the check above can fail
        bad.write_text(text.replace("0.95", "0.4") + f"services: {{results: '{address}'}}\n")
        probe = subprocess.run(
            [sys.executable, "-m", "greenprune.client.cli", "run", str(bad), "--dry-run"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )
        assert probe.returncode == 0, probe.stderr
        connection, _ = server.accept()
        connection.close()
    finally:
        server.close()


def test_margins_default_and_travel_with_every_run_but_not_in_step_ids() -> None:
    from google.protobuf import json_format

    from greenprune.client.plan import plan_experiment
    from greenprune.client.spec import LoadedExperiment

    default = parse_experiment(VALID, Path("demo.yaml"))
    assert default.margins.model_dump() == {
        "accuracy_points": 1.0,
        "energy_relative": 0.03,
        "adjustment": "holm",
    }
    wide = VALID + "margins: {accuracy_points: 2.5, energy_relative: 0.05, adjustment: bh}\n"
    plans = [
        plan_experiment(LoadedExperiment(parse_experiment(text, Path("demo.yaml")), ROOT))
        for text in (VALID, wide)
    ]
    assert [s.request_id for s in plans[0].steps] == [s.request_id for s in plans[1].steps]
    spec = plans[1].eval_steps[0].spec
    assert json_format.MessageToDict(spec.analysis) == {
        "accuracyPoints": 2.5,
        "energyRelative": 0.05,
        "adjustment": "bh",
    }


@pytest.mark.parametrize(
    ("margins", "expected"),
    [
        ("{accuracy_points: 0}", "demo.yaml:15 margins.accuracy_points: must be >= 0.01"),
        ("{energy_relative: 0.9}", "demo.yaml:15 margins.energy_relative: must be <= 0.5"),
        ("{adjustment: bonferroni}", "margins.adjustment: must be one of: holm, bh or none"),
    ],
)
def test_margins_out_of_range_are_refused(margins: str, expected: str) -> None:
    error = _error(VALID + f"margins: {margins}\n")
    assert str(error) == expected if expected.startswith("demo") else expected in str(error)
    assert error.field.startswith("margins.")
