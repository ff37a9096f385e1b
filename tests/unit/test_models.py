"""Resolving and loading the model a spec names (greenprune.core.models)."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import LlamaConfig

from greenprune.core.errors import InvalidArgumentError
from greenprune.core.models import load_source_model, resolve_model_source


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    (models / "org" / "local").mkdir(parents=True)
    (models / "plain").mkdir()
    (tmp_path / "outside").mkdir()
    return models


def test_directory_under_the_root_resolves(root: Path) -> None:
    assert resolve_model_source("plain", root) == (root / "plain").resolve()
    assert resolve_model_source(str(root / "plain"), root) == (root / "plain").resolve()
    assert resolve_model_source("org/local", root) == (root / "org" / "local").resolve()


def test_hub_id_without_local_directory_stays_a_string(root: Path) -> None:
    assert resolve_model_source("meta-llama/Llama-3.2-1B", root) == "meta-llama/Llama-3.2-1B"


@pytest.mark.parametrize(
    "source",
    ["", "   ", "../outside", "/etc", "missing", "./missing", "a/../../outside", "reference:nope"],
)
def test_unusable_sources_name_spec_model(root: Path, source: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        resolve_model_source(source, root)
    assert caught.value.field == "spec.model"


def test_symlink_escaping_the_root_is_refused(root: Path) -> None:
    (root / "sneaky").symlink_to(root.parent / "outside")
    with pytest.raises(InvalidArgumentError) as caught:
        resolve_model_source("sneaky", root)
    assert "outside the models root" in caught.value.message


def test_directory_without_safetensors_weights_is_refused(root: Path) -> None:
    LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        architectures=["LlamaForCausalLM"],
    ).save_pretrained(root / "plain")
    (root / "plain" / "pytorch_model.bin").write_bytes(b"pickle would be here")
    with pytest.raises(InvalidArgumentError) as caught:
        load_source_model("plain", root)
    assert caught.value.field == "spec.model"
