"""The checkpoint format: ids, atomic writes, sharding, hashes, the non-uniform loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from greenprune.core import checkpoint, model_card
from greenprune.core.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
)
from greenprune.core.models import load_source_model
from pruning_service.pruner import PruneConfig, prune_model
from tests.unit.tiny_models import save_tiny_model, tiny_config, tiny_tokenizer


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    save_tiny_model(root / "llama", tiny_config("llama"), tiny_tokenizer())
    return root


@pytest.fixture(scope="module")
def non_uniform(models_root: Path) -> tuple[torch.nn.Module, object, dict]:
    model, tokenizer = load_source_model("llama", models_root)
    config = PruneConfig(model="llama", method="magnitude-l1", ratio=0.4, keep_last_layers=1)
    manifest = prune_model(config, model, tokenizer, models_root=models_root)
    assert not manifest["uniform"]
    return model, tokenizer, manifest


def logits(model: torch.nn.Module) -> torch.Tensor:
    tokens = torch.arange(2, 14).unsqueeze(0)
    with torch.no_grad():
        return model(input_ids=tokens).logits


@pytest.mark.parametrize("good", ["a", "run-1", "Llama_3.1-0.2", "x" * 128])
def test_good_ids_are_accepted(good: str) -> None:
    assert checkpoint.validate_checkpoint_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", ".", "..", "../up", "a/b", "/abs", ".tmp-x", "-x", "a b", "x" * 129, "é"]
)
def test_bad_ids_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        checkpoint.checkpoint_dir(tmp_path, bad)
    assert caught.value.field == "checkpoint_id"
    assert "is not a checkpoint id" in caught.value.message


def test_missing_checkpoint_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no checkpoint 'absent'"):
        checkpoint.checkpoint_dir(tmp_path, "absent")
    (tmp_path / "half").mkdir()
    with pytest.raises(NotFoundError, match="no checkpoint 'half'"):
        checkpoint.checkpoint_dir(tmp_path, "half")


def test_sharded_non_uniform_checkpoint_reloads_identically(
    non_uniform: tuple[torch.nn.Module, object, dict], tmp_path: Path
) -> None:
    model, tokenizer, manifest = non_uniform
    path = checkpoint.save_checkpoint(
        model, tokenizer, manifest, tmp_path, "sharded", max_shard_size="100KB"
    )
    shards = checkpoint.weight_files(path)
    assert len(shards) > 1 and (path / "model.safetensors.index.json").is_file()
    assert checkpoint.checkpoint_dir(tmp_path, "sharded") == path
    saved = checkpoint.read_manifest(path)
    assert saved["bytes_on_disk"] == sum(  # the manifest and the model card are not counted
        p.stat().st_size
        for p in path.iterdir()
        if p.name not in (checkpoint.MANIFEST_NAME, model_card.CARD_NAME)
    )
    assert set(saved["weight_files"]) == {p.name for p in shards}
    loaded, _, _ = checkpoint.load_checkpoint(path, verify_hash=True)
    assert (logits(loaded) - logits(model)).abs().max() <= 1e-5
    assert not [p for p in loaded.parameters() if p.device.type == "meta"]
    assert [name for name, _ in loaded.named_parameters()] == [
        name for name, _ in model.named_parameters()
    ]


def test_tampered_weights_fail_hash_verification(
    non_uniform: tuple[torch.nn.Module, object, dict], tmp_path: Path
) -> None:
    model, tokenizer, manifest = non_uniform
    path = checkpoint.save_checkpoint(model, tokenizer, manifest, tmp_path, "tampered")
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(FailedPreconditionError, match="do not match the manifest"):
        checkpoint.load_checkpoint(path, verify_hash=True)


def test_failed_save_leaves_nothing_behind(
    non_uniform: tuple[torch.nn.Module, object, dict], tmp_path: Path
) -> None:
    model, _, manifest = non_uniform
    with pytest.raises(AttributeError, match="save_pretrained"):  # the tokenizer fails
        checkpoint.save_checkpoint(model, object(), manifest, tmp_path, "broken")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_says_where_and_how_much(
    non_uniform: tuple[torch.nn.Module, object, dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno
    import shutil
    from collections import namedtuple

    from greenprune.rpc.errors import status_for

    model, tokenizer, manifest = non_uniform
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(1 << 30, 1 << 30, 4096))
    with pytest.raises(ResourceExhaustedError) as refused:
        checkpoint.save_checkpoint(model, tokenizer, manifest, tmp_path, "nospace")
    assert str(tmp_path) in str(refused.value) and "needs about" in str(refused.value)
    assert status_for(refused.value)[0].name == "RESOURCE_EXHAUSTED"
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/x/model.safetensors")

    monkeypatch.setattr(model, "save_pretrained", full)
    with pytest.raises(ResourceExhaustedError, match="/x/model.safetensors.*needs about"):
        checkpoint.save_checkpoint(model, tokenizer, manifest, tmp_path, "midway")
    assert list(tmp_path.iterdir()) == []


def test_existing_id_is_never_overwritten(
    non_uniform: tuple[torch.nn.Module, object, dict], tmp_path: Path
) -> None:
    model, tokenizer, manifest = non_uniform
    path = checkpoint.save_checkpoint(model, tokenizer, manifest, tmp_path, "once")
    before = checkpoint.read_manifest(path)
    with pytest.raises(FailedPreconditionError, match="checkpoint 'once' exists already"):
        checkpoint.save_checkpoint(model, tokenizer, {**manifest, "x": 1}, tmp_path, "once")
    assert checkpoint.read_manifest(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["once"]


def test_stale_temporaries_are_removed_and_checkpoints_kept(
    non_uniform: tuple[torch.nn.Module, object, dict], tmp_path: Path
) -> None:
    model, tokenizer, manifest = non_uniform
    checkpoint.save_checkpoint(model, tokenizer, manifest, tmp_path, "keep")
    stale = tmp_path / f"{checkpoint.TEMPORARY_PREFIX}crashed-abc123"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"partial")
    assert checkpoint.remove_stale_temporaries(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]
    assert checkpoint.remove_stale_temporaries(tmp_path / "missing") == 0


def test_manifest_of_something_else_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no checkpoint manifest in"):
        checkpoint.read_manifest(tmp_path)
    (tmp_path / checkpoint.MANIFEST_NAME).write_text("{not json")
    with pytest.raises(FailedPreconditionError, match="corrupt checkpoint manifest in"):
        checkpoint.read_manifest(tmp_path)
    (tmp_path / checkpoint.MANIFEST_NAME).write_text(json.dumps({"format": "other"}))
    with pytest.raises(FailedPreconditionError, match="is not a greenprune checkpoint"):
        checkpoint.read_manifest(tmp_path)


def test_load_with_dtype_casts_weights(
    non_uniform: tuple[torch.nn.Module, object, dict], tmp_path: Path
) -> None:
    model, tokenizer, manifest = non_uniform
    path = checkpoint.save_checkpoint(model, tokenizer, manifest, tmp_path, "cast")
    loaded, _, _ = checkpoint.load_checkpoint(path, dtype=torch.bfloat16)
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    assert logits(loaded).isfinite().all()
