"""Post-training weight-only quantization: int8 and int4 checkpoints in safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from eval_service.evaluator import EvalConfig, run_eval
from greenprune.core.checkpoint import load_checkpoint
from greenprune.core.errors import FailedPreconditionError, InvalidArgumentError
from greenprune.core.quantized import is_quantized, model_bytes, tensor_bytes
from pruning_service.pruner import (
    CalibrationConfig,
    PruneConfig,
    result_from_manifest,
    run_prune,
    validate_config,
)

pytest.importorskip("torchao")

MODEL = "reference:tiny-llama"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, reference_model_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("checkpoints")
    root = tmp_path_factory.mktemp("models")
    quick = CalibrationConfig(samples=4, sequence_length=32)
    for name, fields in {
        "base": {},
        "int8": {"quantization": "int8"},
        "int4": {"quantization": "int4"},
        "width-int8": {"ratio": 0.25, "quantization": "int8", "keep_first_layers": 1},
    }.items():
        config = PruneConfig(model=MODEL, calibration=quick, **{"ratio": 0.0, **fields})
        run_prune(config, checkpoints_dir=out, checkpoint_id=name, models_root=root)
    return out


def _facts_accuracy(model: Any, tokenizer: Any, workdir: Path) -> float:
    from eval_service.tasks import task_manager

    config = EvalConfig(
        tasks=("greenprune_facts",),
        limit=120,
        batch_size=16,
        device="cpu",
        repeats=1,
        warmup_batches=0,
        idle_seconds=0,
    )
    (outcome,) = run_eval(model, tokenizer, config, task_manager=task_manager(), workdir=workdir)
    return next(m.value for m in outcome.metrics if m.metric == "acc")


def test_int8_keeps_facts_accuracy_within_two_points(checkpoints: Path, tmp_path: Path) -> None:
    base = _facts_accuracy(*load_checkpoint(checkpoints / "base")[:2], tmp_path)
    model, tokenizer, manifest = load_checkpoint(checkpoints / "int8")
    quantized = _facts_accuracy(model, tokenizer, tmp_path)
    assert abs(quantized - base) <= 0.02, (base, quantized)
    assert manifest["method_family"] == "int8"


def test_int8_linear_weights_take_under_40_percent_of_fp32(checkpoints: Path) -> None:
    model, _, manifest = load_checkpoint(checkpoints / "int8")
    record = manifest["quantization"]
    assert record["bits"] == 8 and record["library"] == "torchao"
    assert record["quantized_weight_bytes_after"] < 0.4 * record["quantized_weight_bytes_before"]
    linears = [m for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(is_quantized(m.weight) for m in linears)
    in_memory = sum(tensor_bytes(m.weight) for m in linears)
    fp32 = sum(4 * m.weight.numel() for m in linears)
    assert in_memory < 0.4 * fp32
    assert model_bytes(model) == manifest["bytes_in_memory"] < manifest["bytes_in_memory_before"]
    base = load_checkpoint(checkpoints / "base")[2]
    assert manifest["bytes_on_disk"] < 0.6 * base["bytes_on_disk"]


@pytest.mark.parametrize("name", ["int8", "int4", "width-int8"])
def test_quantized_checkpoint_reloads_identically_without_pickle(
    checkpoints: Path, name: str
) -> None:
    path = checkpoints / name
    assert not [p for p in path.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".pkl"}]
    first, tokenizer, manifest = load_checkpoint(path)
    second = load_checkpoint(path)[0]
    ids = tokenizer("The capital of", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(first(ids).logits, second(ids).logits)
    generated = first.generate(ids, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 3
    result = result_from_manifest(manifest, name, 1.0)
    assert result.quantization_bits == manifest["quantization"]["bits"]
    assert result.quantization_library.startswith("torchao ")
    assert result.bytes_in_memory == manifest["bytes_in_memory"]
    assert result.method_family == {"int8": "int8", "int4": "int4"}.get(name, "width+int8")


def test_int4_is_smaller_than_int8_and_refused_off_the_cpu(checkpoints: Path) -> None:
    int4 = load_checkpoint(checkpoints / "int4")[2]
    int8 = load_checkpoint(checkpoints / "int8")[2]
    assert int4["quantization"]["group_size"] == 32
    assert (
        int4["quantization"]["quantized_weight_bytes_after"]
        < int8["quantization"]["quantized_weight_bytes_after"]
    )
    with pytest.raises(FailedPreconditionError, match="CPU kernel"):
        load_checkpoint(checkpoints / "int4", device="cuda")


def test_bad_group_size_is_refused(tmp_path: Path) -> None:
    config = PruneConfig(model=MODEL, quantization="int4", quantization_group_size=48)
    with pytest.raises(InvalidArgumentError, match="spec.quantization_group_size"):
        validate_config(config, tmp_path)
