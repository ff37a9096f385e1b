"""Weight-sparsity variants in the experiment file: spellings, refusals, and the steps planned."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.client.plan import plan_experiment
from greenprune.client.spec import ExperimentFileError, load_experiment, variant_parts

FILE = textwrap.dedent(
    """\
    name: sparse
    models: [reference:tiny-llama]
    pruning:
      ratios: [0.0, 0.25, 0.5]
      variants: [width, wanda, sparsegpt-2:4, width+wanda-2:4, magnitude-2:4+int8]
      round_to: 4
    eval:
      tasks: [greenprune_facts]
    """
)


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "sparse.yaml"
    path.write_text(text)
    return load_experiment(path)


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("wanda", ("none", "none", "wanda", "unstructured")),
        ("sparsegpt-2:4", ("none", "none", "sparsegpt", "2:4")),
        ("int8+width+wanda-2:4", ("width", "int8", "wanda", "2:4")),
        ("magnitude+int4", ("none", "int4", "magnitude", "unstructured")),
    ],
)
def test_variant_parts_name_the_sparsity_and_its_pattern(
    variant: str, expected: tuple[str, ...]
) -> None:
    assert tuple(variant_parts(variant)) == expected


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("width+wanda", "follows width with unstructured wanda"),
        ("wanda+sparsegpt-2:4", "combines wanda and sparsegpt-2:4; choose one"),
        ("wanda-1:4", "unknown compression 'wanda-1:4'"),
    ],
)
def test_sparsity_combinations_are_refused_with_file_line_and_field(
    tmp_path: Path, variant: str, message: str
) -> None:
    text = FILE.replace(
        "[width, wanda, sparsegpt-2:4, width+wanda-2:4, magnitude-2:4+int8]",
        f"\n    - width\n    - {variant}",
    )
    with pytest.raises(ExperimentFileError) as info:
        _load(tmp_path, text)
    assert str(info.value).startswith("sparse.yaml:7 pruning.variants[1]: ")
    assert message in str(info.value)


def test_plan_sets_the_sparsity_fields_and_shares_the_baseline(tmp_path: Path) -> None:
    plan = plan_experiment(_load(tmp_path, FILE))
    steps = {(s.variant, s.ratio): s.spec for s in plan.prune_steps}
    assert list(steps) == [
        ("width", 0.0),
        ("width", 0.25),
        ("width", 0.5),
        ("wanda", 0.25),
        ("wanda", 0.5),
        ("sparsegpt-2:4", 0.5),  # 2:4 alone zeroes a half: planned once
        ("wanda-2:4", 0.5),  # width+wanda-2:4 at ratio 0
        ("width+wanda-2:4", 0.25),
        ("width+wanda-2:4", 0.5),
        ("magnitude-2:4+int8", 0.5),
    ]
    wanda = steps[("wanda", 0.5)]
    assert (wanda.ratio, wanda.sparsity_ratio) == (0.0, 0.5)
    assert wanda.sparsity == pruning_pb2.SPARSITY_WANDA
    assert wanda.sparsity_pattern == pruning_pb2.SPARSITY_PATTERN_UNSTRUCTURED
    combined = steps[("width+wanda-2:4", 0.25)]
    assert (combined.ratio, combined.sparsity_ratio) == (0.25, 0.5)
    assert combined.structure == pruning_pb2.PRUNING_STRUCTURE_WIDTH
    assert combined.sparsity_pattern == pruning_pb2.SPARSITY_PATTERN_2_4
    quantized = steps[("magnitude-2:4+int8", 0.5)]
    assert quantized.quantization == pruning_pb2.QUANTIZATION_INT8
    assert (quantized.ratio, quantized.sparsity) == (0.0, pruning_pb2.SPARSITY_MAGNITUDE)
    baseline = [s for s in plan.prune_steps if s.is_baseline]
    assert [(s.variant, s.ratio) for s in baseline] == [("width", 0.0)]
    assert len({s.request_id for s in plan.prune_steps}) == len(plan.prune_steps)


def test_the_sparsity_experiment_plans_every_method_at_half_and_both_recoveries() -> None:
    root = Path(__file__).resolve().parents[2]
    plan = plan_experiment(load_experiment(root / "experiments" / "sparsity.yaml"))
    plain = {(s.variant, s.ratio) for s in plan.prune_steps if not s.recovered}
    assert plain == {
        ("width", 0.0),
        ("width", 0.5),
        ("depth", 0.5),
        ("int8", 0.0),
        ("wanda-2:4", 0.5),
    }
    recovered = {(s.variant, s.distilled) for s in plan.prune_steps if s.recovered}
    assert recovered == {(v, d) for v in ("width", "depth", "wanda-2:4") for d in (False, True)}
    (profile,) = plan.profile_steps
    assert len(profile.prunes) == len(plan.prune_steps)
    # Every step says which checkpoint it is about: no two eval steps read the same.
    assert len({s.label for s in plan.eval_steps}) == len(plan.eval_steps)
    assert "eval reference:tiny-llama @ 0.50 (depth, LoRA-recovered, distilled) on " + (
        "greenprune_facts"
    ) in {s.label for s in plan.eval_steps}
