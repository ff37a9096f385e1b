"""Depth pruning: whole decoder layers removed, and the result loads with plain from_pretrained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.core.architectures import adapter_for
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import DEPTH_CRITERIA, PRUNING_STRUCTURES
from pruning_service import depth
from pruning_service.prune_messages import config_from_spec, normalized_spec
from pruning_service.pruner import (
    CalibrationConfig,
    PruneConfig,
    result_from_manifest,
    run_prune,
    validate_config,
)
from tests.unit.tiny_models import save_tiny_model, tiny_config, tiny_tokenizer

QUICK = CalibrationConfig(samples=4, sequence_length=32)


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    tokenizer = tiny_tokenizer()
    save_tiny_model(root / "qwen2", tiny_config("qwen2", tied=True), tokenizer)
    save_tiny_model(root / "mistral", tiny_config("mistral"), tokenizer)
    save_tiny_model(root / "llama", tiny_config("llama"), tokenizer)
    identity = save_tiny_model(root / "identity", tiny_config("llama"), tokenizer, seed=1)
    model = AutoModelForCausalLM.from_pretrained(identity)
    for index in (0, 2):  # layer 0 is kept below; layer 2 is the one to find
        layer = model.model.layers[index]
        with torch.no_grad():
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    model.save_pretrained(identity)
    return root


def _prune(root: Path, out: Path, name: str, **fields: Any) -> Any:
    config = PruneConfig(calibration=QUICK, **fields)
    return run_prune(config, checkpoints_dir=out, checkpoint_id=name, models_root=root)


@pytest.mark.parametrize("model", ["reference:tiny-llama", "qwen2", "mistral"])
def test_depth_checkpoint_loads_with_plain_from_pretrained(
    model: str, models_root: Path, tmp_path: Path, reference_model_dir: Path
) -> None:
    outcome = _prune(
        models_root,
        tmp_path,
        "depth",
        model=model,
        structure="depth",
        ratio=0.5,
        keep_first_layers=1,
    )
    manifest = outcome.manifest
    # 3 prunable layers at 0.5: 1.5 rounds to 2 whole layers, 2/3 of the prunable parameters.
    assert manifest["layers_before"] == 4 and manifest["layers_after"] == 2
    assert len(manifest["removed_layers"]) == 2 and 0 not in manifest["removed_layers"]
    assert manifest["achieved_ratio"] == pytest.approx(2 / 3)
    assert manifest["uniform"] and manifest["method_family"] == "depth"

    loaded = AutoModelForCausalLM.from_pretrained(outcome.path)
    tokenizer = AutoTokenizer.from_pretrained(outcome.path)
    assert loaded.config.num_hidden_layers == len(loaded.model.layers) == 2
    assert sum(p.numel() for p in loaded.parameters()) == manifest["parameters_after"]
    for index, layer in enumerate(loaded.model.layers):
        assert layer.self_attn.layer_idx == index
    layer_types = getattr(loaded.config, "layer_types", None)
    assert layer_types is None or len(layer_types) == 2
    ids = tokenizer("The river", return_tensors="pt").input_ids
    generated = loaded.generate(ids, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 4

    # The checkpoint is the source with those layers dropped, nothing else changed.
    source_dir = reference_model_dir if model.startswith("reference:") else models_root / model
    source = AutoModelForCausalLM.from_pretrained(source_dir)
    depth.remove_layers(source, adapter_for(source.config), manifest["removed_layers"])
    with torch.no_grad():
        assert torch.allclose(source(ids).logits, loaded(ids).logits, atol=1e-5)

    result = result_from_manifest(manifest, outcome.checkpoint_id, 1.0)
    assert result.layers_before == 4 and result.layers_after == 2
    assert list(result.removed_layers) == manifest["removed_layers"]
    assert result.method_family == "depth"


def test_block_influence_removes_the_identity_layer_first(
    models_root: Path, tmp_path: Path
) -> None:
    outcome = _prune(
        models_root,
        tmp_path,
        "bi",
        model="identity",
        structure="depth",
        ratio=0.25,
        keep_first_layers=1,
    )
    scores = outcome.manifest["layer_scores"]
    assert scores[2] == pytest.approx(0.0, abs=1e-6)
    assert scores[0] == pytest.approx(0.0, abs=1e-6)  # an identity too, but kept
    # 3 prunable layers at 0.25 -> 1 layer: the identity layer 2, never the kept layer 0.
    assert outcome.manifest["removed_layers"] == [2]


def test_last_criterion_and_kept_layers(models_root: Path, tmp_path: Path) -> None:
    outcome = _prune(
        models_root,
        tmp_path,
        "last",
        model="llama",
        structure="depth",
        ratio=0.5,
        depth_criterion="last",
        keep_first_layers=1,
        keep_last_layers=1,
    )
    # Layers 1 and 2 are prunable; half of them is one layer, the last prunable one.
    assert outcome.manifest["removed_layers"] == [2]
    assert outcome.manifest["layer_scores"] is None and outcome.manifest["calibration"] is None
    kept = [entry["source_index"] for entry in outcome.manifest["layers"] if entry["kept"]]
    assert kept == [0, 3]


def test_width_and_depth_combine(models_root: Path, tmp_path: Path) -> None:
    outcome = _prune(
        models_root,
        tmp_path,
        "wd",
        model="llama",
        method="magnitude-l2",
        structure="width-and-depth",
        ratio=0.5,
    )
    manifest = outcome.manifest
    # Half of 0.5 as layers: one of 4; width then takes 1/3 of the other three.
    assert manifest["layers_after"] == 3 and manifest["removed_layers"] != []
    assert manifest["width_ratio"] == pytest.approx(1 / 3)
    assert manifest["achieved_ratio"] == pytest.approx(0.5, abs=0.03)
    assert manifest["method_family"] == "width+depth"
    loaded = AutoModelForCausalLM.from_pretrained(outcome.path)
    assert sum(p.numel() for p in loaded.parameters()) == manifest["parameters_after"]


def test_ratio_that_rounds_to_no_layer_is_refused(models_root: Path) -> None:
    config = PruneConfig(model="llama", structure="depth", ratio=0.1)
    with pytest.raises(InvalidArgumentError, match="spec.ratio.*rounds to no layer"):
        validate_config(config, models_root)


def test_plan_depth_rounds_to_whole_layers() -> None:
    plan = depth.plan_depth(structure="depth", ratio=0.25, depth_share=0.5, layers=8, kept=[0])
    assert (plan.remove, plan.width_ratio) == (2, 0.0)
    assert plan.depth_ratio == pytest.approx(2 / 7)
    both = depth.plan_depth(
        structure="width-and-depth", ratio=0.5, depth_share=0.5, layers=8, kept=[]
    )
    assert both.remove == 2 and 1 - (1 - both.depth_ratio) * (1 - both.width_ratio) == 0.5
    with pytest.raises(InvalidArgumentError, match="all 2 decoder layers"):
        depth.plan_depth(structure="depth", ratio=0.8, depth_share=0.5, layers=2, kept=[])


def test_spec_enums_reach_the_pruner_config() -> None:
    spec = pruning_pb2.PruneSpec(
        model="m",
        method=pruning_pb2.PRUNING_METHOD_TAYLOR,
        structure=pruning_pb2.PRUNING_STRUCTURE_DEPTH,
        depth_criterion=pruning_pb2.DEPTH_CRITERION_LAST,
        quantization=pruning_pb2.QUANTIZATION_INT4,
    )
    config = config_from_spec(normalized_spec(spec))
    assert (config.structure, config.depth_criterion, config.quantization) == (
        "depth",
        "last",
        "int4",
    )
    assert config.depth_share == 0.5 and config.quantization_group_size == 32
    plain = config_from_spec(normalized_spec(pruning_pb2.PruneSpec(model="m")))
    assert (plain.structure, plain.depth_criterion, plain.quantization) == (
        PRUNING_STRUCTURES[0],
        DEPTH_CRITERIA[0],
        "none",
    )
