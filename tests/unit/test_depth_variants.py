"""The experiment file's compression variants: validation, and the steps they plan."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.client.plan import plan_experiment, request_id
from greenprune.client.spec import ExperimentFileError, load_experiment, parse_variant

ROOT = Path(__file__).resolve().parents[2]

FILE = textwrap.dedent(
    """\
    name: methods
    models: [reference:tiny-llama]
    pruning:
      method: taylor
      ratios: [0.0, 0.25, 0.5]
      variants: [width, depth, int8, width+int8]
      depth_criterion: block-influence
    eval:
      tasks: [greenprune_facts]
    """
)


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "methods.yaml"
    path.write_text(text)
    return load_experiment(path)


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("width", ("width", "none")),
        ("depth", ("depth", "none")),
        ("int4", ("none", "int4")),
        ("depth+width+int8", ("width-and-depth", "int8")),
    ],
)
def test_parse_variant(variant: str, expected: tuple[str, str]) -> None:
    assert parse_variant(variant) == expected


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("int8+int4", "combines int8 and int4"),
        ("width+sparse", "unknown compression 'sparse'"),
        ("depth+depth", "lists 'depth' twice"),
        ("fp8", "unknown compression 'fp8'"),
    ],
)
def test_unknown_combinations_are_refused_with_file_line_and_field(
    tmp_path: Path, variant: str, message: str
) -> None:
    text = FILE.replace("[width, depth, int8, width+int8]", f"\n    - width\n    - {variant}")
    with pytest.raises(ExperimentFileError) as info:
        _load(tmp_path, text)
    assert str(info.value).startswith("methods.yaml:8 pruning.variants[1]: ")
    assert message in str(info.value)


def test_plan_has_every_variant_once_and_the_profile_has_them_all(tmp_path: Path) -> None:
    plan = plan_experiment(_load(tmp_path, FILE))
    steps = [(s.variant, s.ratio) for s in plan.prune_steps]
    assert steps == [
        ("width", 0.0),  # the baseline, shared by every variant at ratio 0
        ("width", 0.25),
        ("width", 0.5),
        ("depth", 0.25),
        ("depth", 0.5),
        ("int8", 0.0),
        ("width+int8", 0.25),
        ("width+int8", 0.5),
    ]
    specs = {(s.variant, s.ratio): s.spec for s in plan.prune_steps}
    assert specs[("depth", 0.5)].structure == pruning_pb2.PRUNING_STRUCTURE_DEPTH
    assert specs[("depth", 0.5)].depth_criterion == pruning_pb2.DEPTH_CRITERION_BLOCK_INFLUENCE
    assert specs[("int8", 0.0)].quantization == pruning_pb2.QUANTIZATION_INT8
    assert specs[("width+int8", 0.25)].structure == pruning_pb2.PRUNING_STRUCTURE_WIDTH
    assert specs[("width", 0.0)].quantization == pruning_pb2.QUANTIZATION_UNSPECIFIED
    assert len({s.request_id for s in plan.prune_steps}) == len(plan.prune_steps)
    assert len(plan.eval_steps) == len(plan.prune_steps)
    (profile,) = plan.profile_steps
    assert profile.prunes[0].is_baseline
    assert {s.request_id for s in profile.prunes} == {s.request_id for s in plan.prune_steps}


def test_width_only_files_keep_their_request_ids(tmp_path: Path) -> None:
    text = FILE.replace("  variants: [width, depth, int8, width+int8]\n", "")
    text = text.replace("  depth_criterion: block-influence\n", "")
    plan = plan_experiment(_load(tmp_path, text))
    pruning = {
        "method": "taylor",
        "keep_first_layers": 0,
        "keep_last_layers": 0,
        "round_to": 1,
        "prune_attention_heads": True,
        "prune_mlp": True,
        "calibration": {"samples": 32, "sequence_length": 128, "source": "reference"},
    }
    expected = [
        request_id(
            "prune",
            {
                "experiment": "methods",
                "model": "reference:tiny-llama",
                "ratio": ratio,
                "pruning": pruning,
                "seed": 0,
            },
        )
        for ratio in (0.0, 0.25, 0.5)
    ]
    assert [s.request_id for s in plan.prune_steps] == expected


def test_depth_settings_change_only_depth_steps(tmp_path: Path) -> None:
    first = plan_experiment(_load(tmp_path, FILE))
    second = plan_experiment(_load(tmp_path, FILE.replace("block-influence", "last")))
    changed = {
        a.variant
        for a, b in zip(first.prune_steps, second.prune_steps, strict=True)
        if a.request_id != b.request_id
    }
    assert changed == {"depth"}


def test_methods_experiment_file_plans_every_method() -> None:
    plan = plan_experiment(load_experiment(ROOT / "experiments" / "methods.yaml"))
    variants = {s.variant for s in plan.prune_steps}
    assert {"width", "depth", "int8", "width+int8"} <= variants
