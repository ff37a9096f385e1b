"""Weight sparsity on the reference model: Wanda, SparseGPT and magnitude, unstructured and 2:4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from greenprune.core.checkpoint import load_checkpoint
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.models import load_source_model
from pruning_service import sparsity
from pruning_service.calibration import calibration_tokens
from pruning_service.pruner import (
    CalibrationConfig,
    PruneConfig,
    result_from_manifest,
    run_prune,
    validate_config,
)

MODEL = "reference:tiny-llama"
QUICK = CalibrationConfig(samples=8, sequence_length=64)
CHECKPOINTS = {
    "magnitude": {"sparsity": "magnitude", "sparsity_ratio": 0.5},
    "wanda": {"sparsity": "wanda", "sparsity_ratio": 0.5},
    "sparsegpt-2:4": {"sparsity": "sparsegpt", "sparsity_pattern": "2:4"},
    "width+wanda-2:4": {
        "ratio": 0.25,
        "round_to": 4,
        "keep_first_layers": 1,
        "sparsity": "wanda",
        "sparsity_pattern": "2:4",
    },
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, reference_model_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("sparse")
    root = tmp_path_factory.mktemp("models")
    for name, fields in CHECKPOINTS.items():
        config = PruneConfig(model=MODEL, calibration=QUICK, **{"ratio": 0.0, **fields})
        run_prune(
            config,
            checkpoints_dir=out,
            checkpoint_id=name.replace(":", "-").replace("+", "-"),
            models_root=root,
        )
    return out


def _path(checkpoints: Path, name: str) -> Path:
    return checkpoints / name.replace(":", "-").replace("+", "-")


def _sparsified(model: nn.Module, first: int = 0) -> list[tuple[str, torch.Tensor]]:
    return [
        (name, module.weight.detach())
        for index, layer in enumerate(model.model.layers)
        if index >= first
        for name, module in layer.named_modules()
        if isinstance(module, nn.Linear)
    ]


def _exactly_two_of_four(weight: torch.Tensor) -> bool:
    groups = (weight == 0).reshape(weight.shape[0], -1, 4).sum(-1)
    return bool((groups == 2).all())


def test_unstructured_masks_zero_half_of_every_row_of_every_projection(checkpoints: Path) -> None:
    for name in ("magnitude", "wanda"):
        model = AutoModelForCausalLM.from_pretrained(_path(checkpoints, name))
        manifest = load_checkpoint(_path(checkpoints, name))[2]
        for layer_name, weight in _sparsified(model):
            per_row = (weight == 0).float().mean(dim=1)
            assert torch.allclose(per_row, torch.full_like(per_row, 0.5), atol=0.01), layer_name
        assert manifest["sparsity"] == name and manifest["method_family"] == name
        assert abs(manifest["sparsity_record"]["achieved_share"] - 0.5) <= 0.01
        assert manifest["achieved_ratio"] == 0.0  # nothing removed: every shape is kept
        assert manifest["parameters_after"] == manifest["parameters_before"]


def test_two_four_checkpoints_have_two_zeros_in_every_group_of_four(checkpoints: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(_path(checkpoints, "sparsegpt-2:4"))
    for layer_name, weight in _sparsified(model):
        assert _exactly_two_of_four(weight), layer_name
    logits = model(input_ids=torch.tensor([[1, 2, 3, 4]])).logits
    assert torch.isfinite(logits).all()


def test_width_then_two_four_keeps_kept_layers_and_records_the_shares(
    checkpoints: Path, reference_model_dir: Path
) -> None:
    model, _, manifest = load_checkpoint(_path(checkpoints, "width+wanda-2:4"))
    base, _ = load_source_model(MODEL, reference_model_dir.parent)
    for (name, kept), (_, original) in zip(
        _sparsified(model)[:7], _sparsified(base)[:7], strict=True
    ):
        assert torch.equal(kept, original), name  # layer 0 is kept: untouched
    for name, weight in _sparsified(model, first=1):
        assert _exactly_two_of_four(weight), name
    assert manifest["method_family"] == "width+wanda-2:4"
    assert manifest["achieved_ratio"] == pytest.approx(0.25, abs=0.03)
    expected_zeroed = 0.5 * (1 - manifest["achieved_ratio"])
    assert manifest["zeroed_share"] == pytest.approx(expected_zeroed, abs=0.01)
    result = result_from_manifest(manifest, "w", 1.0)
    assert result.sparsity == "wanda-2:4" and result.zeroed_parameters > 0
    assert result.semi_structured_macs > 0


def _first_layer_inputs(model: nn.Module, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """The inputs of each linear layer of the first decoder layer, one row per token."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, inputs: torch.Tensor) -> None:
        seen.setdefault(name, inputs.reshape(-1, inputs.shape[-1]))

    layer = model.model.layers[0]
    handles = [
        module.register_forward_hook(lambda m, args, out, name=name: keep(name, args[0]))
        for name, module in layer.named_modules()
        if isinstance(module, nn.Linear)
    ]
    with torch.no_grad():
        model(input_ids=tokens)
    for handle in handles:
        handle.remove()
    return seen


def _magnitude(weight: torch.Tensor, pattern: str, share: float) -> torch.Tensor:
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    linear.weight.data.copy_(weight)
    sparsity.sparsify_linear(linear, "magnitude", pattern, share, None)
    return linear.weight.detach()


def _calibrated(weight: torch.Tensor, inputs: torch.Tensor, criterion: str, pattern: str) -> Any:
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    linear.weight.data.copy_(weight)
    stats = sparsity.Statistics(linear, criterion)
    stats.add(inputs)
    share = sparsity.sparsity_share(pattern, 0.5)
    sparsity.sparsify_linear(linear, criterion, pattern, share, stats)
    return linear.weight.detach()


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_calibrated_criteria_reconstruct_each_layer_better_than_magnitude(
    reference_model_dir: Path, pattern: str
) -> None:
    """Wanda and SparseGPT keep each first-layer linear's output closer than magnitude does.

    Both aim at a layer's output on its calibration inputs, at 50 % and at 2:4.

    (The reference model's language-model loss is no judge here: on its reference text, 50 %
    magnitude sparsity lowers it below the dense model's, so the layer outputs are compared.)
    """
    model, tokenizer = load_source_model(MODEL, reference_model_dir.parent)
    tokens = calibration_tokens(
        tokenizer, source="reference", samples=8, sequence_length=64, seed=0, models_root=Path()
    )
    layer = model.model.layers[0]
    for name, inputs in _first_layer_inputs(model, tokens).items():
        weight = layer.get_submodule(name).weight.detach()

        def error(
            sparse: torch.Tensor, weight: torch.Tensor = weight, inputs: torch.Tensor = inputs
        ) -> float:
            return float(((weight - sparse) @ inputs.T).square().sum())

        magnitude = error(_magnitude(weight, pattern, sparsity.sparsity_share(pattern, 0.5)))
        wanda = _calibrated(weight, inputs, "wanda", pattern)
        sparsegpt = _calibrated(weight, inputs, "sparsegpt", pattern)
        assert error(wanda) <= magnitude, name
        assert error(sparsegpt) < magnitude, name
        assert error(sparsegpt) < error(wanda), name
        for sparse in (wanda, sparsegpt):
            assert abs(float((sparse == 0).float().mean()) - 0.5) <= 0.01, name


def test_wanda_mask_on_known_activations_is_the_hand_computed_one() -> None:
    layer = nn.Linear(4, 1, bias=False)
    layer.weight.data = torch.tensor([[1.0, -2.0, 3.0, 0.5]])
    stats = sparsity.Statistics(layer, "wanda")
    stats.add(torch.tensor([[4.0, 1.0, 0.1, 10.0]]))  # input norms 4, 1, 0.1, 10
    # |W| * ||X||: 4, 2, 0.3, 5; the lowest half are the 2nd and 3rd (magnitude: 1st and 4th)
    assert sparsity.sparsify_linear(layer, "wanda", "unstructured", 0.5, stats) == 2
    assert layer.weight.data.tolist() == [[1.0, 0.0, 0.0, 0.5]]


def test_two_four_refuses_a_planned_width_not_divisible_by_four() -> None:
    config = PruneConfig(model=MODEL, ratio=0.2, sparsity="wanda", sparsity_pattern="2:4")
    with pytest.raises(InvalidArgumentError) as info:
        validate_config(config, Path())
    assert info.value.field == "spec.sparsity_pattern"
    assert "mlp.down_proj would take 350" in info.value.message


def test_two_four_refuses_a_layer_not_divisible_by_four_by_its_name() -> None:
    layer = nn.Linear(6, 4)
    with pytest.raises(InvalidArgumentError) as info:
        sparsity.check_modules([("model.layers.1.mlp.down_proj", layer)], "2:4")
    assert info.value.field == "spec.sparsity_pattern"
    assert "model.layers.1.mlp.down_proj has 6" in info.value.message


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"sparsity_ratio": 0.3}, "spec.sparsity_ratio", "0.3 needs a sparsity"),
        ({"sparsity": "wanda"}, "spec.sparsity_ratio", "is 0: name the share"),
        (
            {"sparsity": "wanda", "sparsity_pattern": "2:4", "sparsity_ratio": 0.3},
            "spec.sparsity_ratio",
            "2:4 zeroes exactly 0.5",
        ),
        ({"sparsity": "pruned"}, "spec.sparsity", "must be one of none, magnitude"),
        ({"sparsity": "wanda", "sparsity_ratio": 0.95}, "spec.sparsity_ratio", "0.95 is not in"),
    ],
)
def test_sparsity_specs_are_refused_naming_the_field(
    fields: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        validate_config(PruneConfig(model=MODEL, ratio=0.0, **fields), Path())
    assert info.value.field == field
    assert reason in info.value.message


def test_a_two_four_checkpoint_evaluates_with_lm_eval(checkpoints: Path, tmp_path: Path) -> None:
    from eval_service.evaluator import EvalConfig, run_eval
    from eval_service.tasks import task_manager

    model, tokenizer, _ = load_checkpoint(_path(checkpoints, "sparsegpt-2:4"))
    config = EvalConfig(
        tasks=("greenprune_facts",),
        limit=40,
        batch_size=20,
        device="cpu",
        repeats=1,
        warmup_batches=0,
        idle_seconds=0,
    )
    (outcome,) = run_eval(model, tokenizer, config, task_manager=task_manager(), workdir=tmp_path)
    accuracy = next(m.value for m in outcome.metrics if m.metric == "acc")
    assert 0.0 <= accuracy <= 1.0 and outcome.samples == 40


@pytest.mark.parametrize("architecture", ["qwen2", "mistral"])
def test_sparse_checkpoints_of_qwen2_and_mistral_load_with_plain_from_pretrained(
    tmp_path: Path, architecture: str
) -> None:
    from tests.unit.tiny_models import save_tiny_model, tiny_config, tiny_tokenizer

    root = tmp_path / "models"
    tied = architecture == "qwen2"
    save_tiny_model(root / architecture, tiny_config(architecture, tied=tied), tiny_tokenizer())
    for name, fields in {
        "wanda": {"sparsity": "wanda", "sparsity_ratio": 0.5},
        "sparsegpt-2-4": {"sparsity": "sparsegpt", "sparsity_pattern": "2:4"},
    }.items():
        config = PruneConfig(model=architecture, ratio=0.0, calibration=QUICK, **fields)
        outcome = run_prune(config, checkpoints_dir=tmp_path, checkpoint_id=name, models_root=root)
        model = AutoModelForCausalLM.from_pretrained(outcome.path)
        assert type(model).__name__.lower().startswith(architecture)
        logits = model(input_ids=torch.tensor([[1, 2, 3, 4, 5]])).logits
        assert torch.isfinite(logits).all()
        weights = [w for _, w in _sparsified(model)]
        zeroed = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
        assert abs(zeroed - 0.5) <= 0.01, (architecture, name, zeroed)
