"""Structural pruning on tiny Llama (GQA), Qwen2 and Mistral models, end to end."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, BertConfig, GPT2Config, GPTNeoXConfig

from greenprune.core.checkpoint import load_checkpoint, save_checkpoint
from greenprune.core.errors import FailedPreconditionError, InvalidArgumentError
from greenprune.core.limits import PRUNING_METHODS
from greenprune.core.models import load_source_model
from greenprune.core.reference.world import training_lines
from pruning_service.pruner import (
    STAGES,
    CalibrationConfig,
    PruneConfig,
    prune_model,
    run_prune,
    validate_config,
)
from tests.unit.tiny_models import save_tiny_model, tiny_config, tiny_tokenizer

LAYERS = 4
TOLERANCE = 0.03
QUICK_CALIBRATION = CalibrationConfig(samples=8, sequence_length=32)


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    tokenizer = tiny_tokenizer()
    for architecture in ("llama", "qwen2", "mistral", "phi3"):
        tied = architecture == "qwen2"  # small Qwen2 models share embedding and LM head
        save_tiny_model(root / architecture, tiny_config(architecture, tied=tied), tokenizer)
    save_tiny_model(root / "llama-8q4kv", tiny_config("llama", kv_heads=4), tokenizer)
    (root / "calibration.txt").write_text("\n".join(training_lines()[:300]))
    return root


def tensors(directory: Path) -> dict[str, torch.Tensor]:
    """Every tensor in a directory's safetensors files, read independently of greenprune."""
    result: dict[str, torch.Tensor] = {}
    for file in sorted(directory.glob("*.safetensors")):
        with safe_open(file, framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                result[key] = handle.get_tensor(key)
    return result


def prunable_count(weights: dict[str, torch.Tensor], layers: list[int]) -> int:
    pattern = re.compile(rf"^model\.layers\.({'|'.join(map(str, layers))})\.(self_attn|mlp)\.")
    return sum(t.numel() for name, t in weights.items() if pattern.match(name))


def sample_tokens(batch: int = 2, length: int = 12, seed: int = 5) -> torch.Tensor:
    return torch.randint(2, 300, (batch, length), generator=torch.Generator().manual_seed(seed))


def assert_integral_gqa(model: torch.nn.Module) -> None:
    for layer in model.model.layers:
        attention = layer.self_attn
        query_width = attention.o_proj.in_features
        if hasattr(attention, "qkv_proj"):
            kv_width = (attention.qkv_proj.out_features - query_width) // 2
            assert attention.config.num_attention_heads * attention.head_dim == query_width
        else:
            kv_width = attention.k_proj.out_features
            assert attention.v_proj.out_features == kv_width == attention.k_proj.out_features
            assert attention.q_proj.out_features == query_width
        query_heads, kv_heads = query_width // attention.head_dim, kv_width // attention.head_dim
        assert kv_heads >= 1 and query_heads % kv_heads == 0
        assert attention.num_key_value_groups == query_heads // kv_heads


CASES = [
    ("llama", "taylor", 0.2, 0, 0),
    ("llama", "magnitude-l2", 0.5, 1, 1),
    ("qwen2", "magnitude-l1", 0.3, 0, 0),
    ("qwen2", "taylor", 0.4, 1, 0),
    ("mistral", "random", 0.6, 0, 1),
    ("mistral", "magnitude-l1", 0.25, 0, 0),
    ("phi3", "taylor", 0.3, 0, 0),
    ("phi3", "magnitude-l2", 0.5, 1, 0),
]


@pytest.mark.parametrize(("architecture", "method", "ratio", "first", "last"), CASES)
def test_prune_hits_ratio_and_reloads_identically(
    models_root: Path,
    tmp_path: Path,
    architecture: str,
    method: str,
    ratio: float,
    first: int,
    last: int,
) -> None:
    config = PruneConfig(
        model=architecture,
        method=method,
        ratio=ratio,
        keep_first_layers=first,
        keep_last_layers=last,
        calibration=QUICK_CALIBRATION,
        seed=3,
    )
    model, tokenizer = load_source_model(architecture, models_root)
    manifest = prune_model(config, model, tokenizer, models_root=models_root)
    path = save_checkpoint(model, tokenizer, manifest, tmp_path, "pruned")

    original, saved = tensors(models_root / architecture), tensors(path)
    pruned_layers = [i for i in range(LAYERS) if first <= i < LAYERS - last]
    achieved = 1 - prunable_count(saved, pruned_layers) / prunable_count(original, pruned_layers)
    assert abs(achieved - ratio) <= TOLERANCE
    assert manifest["achieved_ratio"] == pytest.approx(achieved)
    assert manifest["parameters_after"] == sum(t.numel() for t in saved.values())
    assert manifest["macs_after"] < manifest["macs_before"]

    untouched = re.compile(rf"^model\.layers\.({'|'.join(map(str, pruned_layers))})\.")
    for name, tensor in original.items():
        if not untouched.match(name) or "layernorm" in name:
            assert torch.equal(saved[name], tensor), name

    assert_integral_gqa(model)
    tokens = sample_tokens()
    with torch.no_grad():
        expected = model(input_ids=tokens).logits
    loaded, _, loaded_manifest = load_checkpoint(path)
    assert loaded_manifest["uniform"] == (first == last == 0)
    with torch.no_grad():
        assert (loaded(input_ids=tokens).logits - expected).abs().max() <= 1e-5
    generated = loaded.generate(input_ids=tokens[:, :4], max_new_tokens=6, do_sample=False)
    assert generated.shape == (2, 10)
    assert not [p for p in path.rglob("*") if p.suffix in {".bin", ".pt", ".pth", ".pkl"}]

    if loaded_manifest["uniform"]:
        plain = AutoModelForCausalLM.from_pretrained(path)
        with torch.no_grad():
            assert (plain(input_ids=tokens).logits - expected).abs().max() <= 1e-5
    else:
        with pytest.raises(RuntimeError):
            AutoModelForCausalLM.from_pretrained(path)


def removed_units(original: torch.Tensor, pruned: torch.Tensor, block: int) -> list[int]:
    """Indices of row blocks of ``original`` that do not appear in ``pruned``."""
    kept = []
    for start in range(0, pruned.shape[0], block):
        piece = pruned[start : start + block]
        matches = [
            j
            for j in range(original.shape[0] // block)
            if torch.equal(original[j * block : (j + 1) * block], piece)
        ]
        assert len(matches) == 1
        kept.append(matches[0])
    assert kept == sorted(kept)
    return sorted(set(range(original.shape[0] // block)) - set(kept))


def query_rows(attention: torch.nn.Module) -> torch.Tensor:
    """The rows of the query projection (the first rows of Phi-3's fused qkv_proj)."""
    if hasattr(attention, "qkv_proj"):
        return attention.qkv_proj.weight[: attention.o_proj.in_features]
    return attention.q_proj.weight


def gate_rows(mlp: torch.nn.Module) -> torch.Tensor:
    """The rows of the gate projection (the first half of Phi-3's fused gate_up_proj)."""
    if hasattr(mlp, "gate_up_proj"):
        return mlp.gate_up_proj.weight[: mlp.down_proj.in_features]
    return mlp.gate_proj.weight


@pytest.mark.parametrize(
    ("model_name", "keep_first"), [("llama", 0), ("llama-8q4kv", 0), ("phi3", 1)]
)
def test_pruning_equals_zeroing_the_removed_heads_and_channels(
    models_root: Path, model_name: str, keep_first: int
) -> None:
    """Kept query heads still read their own key/value heads, and nothing else changed."""
    original, tokenizer = load_source_model(model_name, models_root)
    pruned, _ = load_source_model(model_name, models_root)
    config = PruneConfig(
        model=model_name, method="magnitude-l1", ratio=0.5, keep_first_layers=keep_first
    )
    manifest = prune_model(config, pruned, tokenizer, models_root=models_root)
    kv_heads = original.config.num_key_value_heads
    assert any(layer["key_value_heads"] < kv_heads for layer in manifest["layers"])
    with torch.no_grad():
        for before, after in zip(original.model.layers, pruned.model.layers, strict=True):
            head_dim = before.self_attn.head_dim
            heads = removed_units(
                query_rows(before.self_attn), query_rows(after.self_attn), head_dim
            )
            for head in heads:
                before.self_attn.o_proj.weight[:, head * head_dim : (head + 1) * head_dim] = 0
            channels = removed_units(gate_rows(before.mlp), gate_rows(after.mlp), 1)
            before.mlp.down_proj.weight[:, channels] = 0
        tokens = sample_tokens()
        difference = (original(input_ids=tokens).logits - pruned(input_ids=tokens).logits).abs()
    assert heads and channels
    assert difference.max() <= 1e-5


@pytest.mark.parametrize(("ratio", "keep_first"), [(0.25, 1), (0.5, 0)])
def test_heads_only_pruning_where_torch_pruning_silently_does_nothing(
    models_root: Path, ratio: float, keep_first: int
) -> None:
    """8 query / 4 key-value heads at 0.25 and 0.5: torch-pruning's MetaPruner skips these."""
    model, tokenizer = load_source_model("llama-8q4kv", models_root)
    config = PruneConfig(
        model="llama-8q4kv",
        method="magnitude-l2",
        ratio=ratio,
        prune_mlp=False,
        keep_first_layers=keep_first,
    )
    manifest = prune_model(config, model, tokenizer, models_root=models_root)
    assert abs(manifest["achieved_ratio"] - ratio) <= TOLERANCE
    pruned = [layer for layer in manifest["layers"] if not layer["kept"]]
    shapes = {(layer["attention_heads"], layer["key_value_heads"]) for layer in pruned}
    assert len(shapes) == 1 and shapes != {(8, 4)}
    assert {layer["intermediate_size"] for layer in manifest["layers"]} == {128}
    assert_integral_gqa(model)


def test_unreachable_heads_only_ratio_is_refused_with_the_allowed_ratios(models_root: Path) -> None:
    """8 query / 2 key-value heads: heads alone can remove 0.7 or 0.8 but not 0.75."""
    config = PruneConfig(model="llama", method="magnitude-l1", ratio=0.75, prune_mlp=False)
    with pytest.raises(InvalidArgumentError) as caught:
        validate_config(config, models_root)
    assert caught.value.field == "spec.ratio"
    assert "allowed ratios" in caught.value.message
    assert "0.7" in caught.value.message and "0.8" in caught.value.message


def test_round_to_keeps_mlp_widths_multiples(models_root: Path) -> None:
    model, tokenizer = load_source_model("qwen2", models_root)
    config = PruneConfig(model="qwen2", method="magnitude-l1", ratio=0.3, round_to=16)
    manifest = prune_model(config, model, tokenizer, models_root=models_root)
    assert {layer["intermediate_size"] % 16 for layer in manifest["layers"]} == {0}
    assert abs(manifest["achieved_ratio"] - 0.3) <= TOLERANCE


def test_run_prune_writes_checkpoint_and_reports_stages_in_order(
    models_root: Path, tmp_path: Path
) -> None:
    reports: list[tuple[str, float]] = []
    config = PruneConfig(
        model="llama",
        method="taylor",
        ratio=0.4,
        keep_first_layers=1,
        calibration=CalibrationConfig(samples=4, sequence_length=32, source="calibration.txt"),
    )
    outcome = run_prune(
        config,
        checkpoints_dir=tmp_path,
        checkpoint_id="run-1",
        models_root=models_root,
        progress=lambda stage, fraction: reports.append((stage, fraction)),
    )
    stages = [stage for stage, _ in reports]
    assert sorted(set(stages), key=stages.index) == list(STAGES)
    assert stages == sorted(stages, key=STAGES.index)
    fractions = [fraction for _, fraction in reports]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["run-1"]
    manifest = json.loads((outcome.path / "greenprune.json").read_text())
    assert manifest == outcome.manifest
    assert manifest["calibration"] == {
        "source": "calibration.txt",
        "windows": 4,
        "sequence_length": 32,
    }
    assert manifest["kept_layers"] == [0] and not manifest["uniform"]
    assert manifest["source"]["model"] == "llama"
    assert manifest["macs_sequence_length"] == 128
    assert manifest["content_hash"].startswith("sha256:")
    assert {"torch", "transformers", "torch-pruning"} <= set(manifest["versions"])
    with pytest.raises(FailedPreconditionError, match="checkpoint 'run-1' exists already"):
        run_prune(config, checkpoints_dir=tmp_path, checkpoint_id="run-1", models_root=models_root)


def test_ratio_zero_writes_an_unpruned_uniform_copy(models_root: Path, tmp_path: Path) -> None:
    config = PruneConfig(model="mistral", method="random", ratio=0.0, keep_last_layers=1)
    outcome = run_prune(
        config, checkpoints_dir=tmp_path, checkpoint_id="baseline", models_root=models_root
    )
    assert outcome.manifest["uniform"] and outcome.manifest["achieved_ratio"] == 0.0
    original, saved = tensors(models_root / "mistral"), tensors(outcome.path)
    assert original.keys() == saved.keys()
    assert all(torch.equal(original[name], saved[name]) for name in original)


def test_failure_mid_run_leaves_no_checkpoint(models_root: Path, tmp_path: Path) -> None:
    def fail_while_pruning(stage: str, fraction: float) -> None:
        if stage == "pruning" and fraction > 0.5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_prune(
            PruneConfig(model="llama", method="magnitude-l1", ratio=0.3),
            checkpoints_dir=tmp_path,
            checkpoint_id="doomed",
            models_root=models_root,
            progress=fail_while_pruning,
        )
    assert list(tmp_path.iterdir()) == []


def bad(field: str, **changes: object) -> tuple[str, dict[str, object]]:
    return field, changes


BAD_SPECS = [
    bad("spec.ratio", ratio=-0.1),
    bad("spec.ratio", ratio=0.9),
    bad("spec.ratio", ratio=math.nan),
    bad("spec.method", method="magnitude-l3"),
    bad("spec.keep_last_layers", keep_first_layers=2, keep_last_layers=2),
    bad("spec.keep_first_layers", keep_first_layers=-1),
    bad("spec.model", model="/etc"),
    bad("spec.model", model="../outside"),
    bad("spec.model", model="missing-model"),
    bad("spec.model", model="reference:no-such-model"),
    bad("spec.model", model=""),
    bad("spec.round_to", round_to=0),
    bad("spec.prune_hidden", prune_hidden=True),
    bad("spec.prune_mlp", prune_attention_heads=False, prune_mlp=False),
    bad("spec.seed", seed=-1),
    bad("spec.calibration.samples", calibration=CalibrationConfig(samples=0)),
    bad("spec.calibration.sequence_length", calibration=CalibrationConfig(sequence_length=1)),
    bad("spec.calibration.sequence_length", calibration=CalibrationConfig(sequence_length=256)),
    bad("spec.calibration.source", calibration=CalibrationConfig(source="missing.txt")),
    bad("spec.calibration.source", calibration=CalibrationConfig(source="/etc/hostname")),
]


@pytest.mark.parametrize(("field", "changes"), BAD_SPECS)
def test_bad_spec_names_the_field(
    models_root: Path, tmp_path: Path, field: str, changes: dict[str, object]
) -> None:
    config = PruneConfig(**{"model": "llama", "method": "taylor", "ratio": 0.2, **changes})
    with pytest.raises(InvalidArgumentError) as caught:
        validate_config(config, models_root)
    assert caught.value.field == field
    with pytest.raises(InvalidArgumentError) as refused:
        run_prune(config, checkpoints_dir=tmp_path, checkpoint_id="x", models_root=models_root)
    assert refused.value.field == field and refused.value.message == caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_methods_are_the_four_documented_ones() -> None:
    assert PRUNING_METHODS == ("magnitude-l1", "magnitude-l2", "taylor", "random")


def test_bad_checkpoint_id_is_refused(models_root: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        run_prune(
            PruneConfig(model="llama"),
            checkpoints_dir=tmp_path,
            checkpoint_id="../escape",
            models_root=models_root,
        )
    assert caught.value.field == "checkpoint_id"


def write_config_only(directory: Path, config: object) -> Path:
    directory.mkdir()
    config.save_pretrained(directory)  # type: ignore[attr-defined]
    return directory


def test_model_that_is_not_a_causal_lm_is_refused(models_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    write_config_only(root / "bert", BertConfig(architectures=["BertForMaskedLM"]))
    with pytest.raises(InvalidArgumentError) as caught:
        validate_config(PruneConfig(model="bert"), root)
    assert caught.value.field == "spec.model"


@pytest.mark.parametrize(
    ("config", "architecture"),
    [
        (GPT2Config(architectures=["GPT2LMHeadModel"]), "GPT2LMHeadModel"),
        (GPTNeoXConfig(architectures=["GPTNeoXForCausalLM"]), "GPTNeoXForCausalLM"),
    ],
)
def test_unsupported_architecture_is_a_failed_precondition(
    tmp_path: Path, config: object, architecture: str
) -> None:
    write_config_only(tmp_path / "other", config)
    with pytest.raises(FailedPreconditionError, match=f"unsupported architecture: {architecture}"):
        validate_config(PruneConfig(model="other", method="magnitude-l1"), tmp_path)


def test_uniform_checkpoint_can_be_pruned_again_but_not_a_non_uniform_one(
    models_root: Path,
) -> None:
    checkpoints = models_root / "checkpoints"
    uniform = PruneConfig(model="mistral", method="magnitude-l1", ratio=0.3)
    run_prune(uniform, checkpoints_dir=checkpoints, checkpoint_id="u", models_root=models_root)
    again = PruneConfig(model="checkpoints/u", method="magnitude-l1", ratio=0.3)
    twice = run_prune(
        again, checkpoints_dir=checkpoints, checkpoint_id="uu", models_root=models_root
    )
    assert twice.manifest["parameters_after"] < twice.manifest["parameters_before"]
    assert abs(twice.manifest["achieved_ratio"] - 0.3) <= TOLERANCE

    kept = PruneConfig(model="mistral", method="magnitude-l1", ratio=0.3, keep_first_layers=1)
    run_prune(kept, checkpoints_dir=checkpoints, checkpoint_id="k", models_root=models_root)
    with pytest.raises(FailedPreconditionError, match="layers differ"):
        run_prune(
            PruneConfig(model="checkpoints/k", ratio=0.2),
            checkpoints_dir=checkpoints,
            checkpoint_id="kk",
            models_root=models_root,
        )
    assert sorted(p.name for p in checkpoints.iterdir()) == ["k", "u", "uu"]
