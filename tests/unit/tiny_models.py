"""Tiny random-initialised causal LMs (Llama GQA, Qwen2, Mistral, Phi-3) saved locally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    MistralConfig,
    Phi3Config,
    PretrainedConfig,
    Qwen2Config,
)

from greenprune.core.reference.tokenizer import train_tokenizer
from greenprune.core.reference.world import training_lines

VOCAB_SIZE = 300
CONTEXT = 128


def tiny_tokenizer() -> Any:
    """A small byte-level BPE tokenizer trained on part of the reference corpus."""
    return train_tokenizer(training_lines()[:400], vocab_size=VOCAB_SIZE, model_max_length=CONTEXT)


def tiny_config(
    architecture: str, *, heads: int = 8, kv_heads: int = 2, layers: int = 4, tied: bool = False
) -> Any:
    """A tiny config of one architecture (hidden 64, head_dim 8, MLP 128, 300 tokens)."""
    common: dict[str, Any] = {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": CONTEXT,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "pad_token_id": 1,
        "tie_word_embeddings": tied,
    }
    if architecture == "llama":
        return LlamaConfig(head_dim=8, architectures=["LlamaForCausalLM"], **common)
    if architecture == "qwen2":
        return Qwen2Config(architectures=["Qwen2ForCausalLM"], **common)
    if architecture == "mistral":
        return MistralConfig(head_dim=8, architectures=["MistralForCausalLM"], **common)
    if architecture == "phi3":
        return Phi3Config(architectures=["Phi3ForCausalLM"], **common)
    raise ValueError(architecture)


def save_tiny_model(
    directory: Path, config: PretrainedConfig, tokenizer: Any, *, seed: int = 0
) -> Path:
    """Initialises a model from ``config`` with ``seed`` and saves it with the tokenizer."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 1:
                # Random norms and biases, so that dropped units really matter.
                parameter.copy_(1.0 + 0.1 * torch.randn_like(parameter))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
