"""Parameter counts and MACs, measured on the model itself (no deep copy).

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` over one forward pass of a fixed
dummy input (batch 1, :data:`MACS_SEQUENCE_LENGTH` tokens or the model's context if shorter,
no KV cache) with eager attention, so the attention matmuls are counted too; MACs = FLOPs / 2.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

MACS_SEQUENCE_LENGTH = 128


def count_parameters(modules: Iterable[nn.Module]) -> int:
    """Parameters of the given modules (each parameter counted once)."""
    seen: dict[int, int] = {}
    for module in modules:
        for parameter in module.parameters():
            seen[id(parameter)] = parameter.numel()
    return sum(seen.values())


def macs_sequence_length(model: nn.Module) -> int:
    """The dummy input length MACs are counted at for this model."""
    context = getattr(model.config, "max_position_embeddings", None) or MACS_SEQUENCE_LENGTH
    return int(min(MACS_SEQUENCE_LENGTH, context))


@torch.no_grad()
def count_macs(model: nn.Module, sequence_length: int) -> int:
    """Multiply-accumulates of one forward pass over ``sequence_length`` tokens."""
    device = next(model.parameters()).device
    tokens = torch.arange(sequence_length, device=device).unsqueeze(0) % model.config.vocab_size
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with FlopCounterMode(display=False) as counter:
            model(input_ids=tokens, use_cache=False)
    finally:
        model.set_attn_implementation(previous)
    return int(counter.get_total_flops()) // 2
