"""Removes the least important heads and channels of a layer to reach its planned shape.

Cuts use torch-pruning's Linear pruning functions on the rows and columns the architecture
adapter names. Attention is cut head by head, not through the dependency graph:
torch-pruning couples query heads to key/value channels and, when a layer would keep as many
query heads as key/value heads, silently leaves the heads unpruned (see FACTS.md). Cutting
explicitly lets a layer lose whole key/value groups (a key/value head with its query heads)
or query heads within every group, always leaving an integral number of query heads per
key/value head; the layer's attributes are then reset from the new shape.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from greenprune.core.architectures import ChannelSpan, LayerShape, LlamaFamilyAdapter
from pruning_service.graph import LayerScores, pruning_function


def heads_to_keep(
    head_scores: torch.Tensor, original: LayerShape, planned: LayerShape
) -> tuple[list[int], list[int]]:
    """Chooses which key/value heads and query heads survive.

    Key/value groups are ranked by the mean score of their query heads; within each kept
    group the best ``planned.key_value_groups`` query heads stay. Order is preserved, so
    query head ``j`` still reads key/value head ``j // groups``.

    Returns:
        ``(kept query heads, kept key/value heads)``, both sorted.
    """
    groups = original.key_value_groups
    per_group = head_scores.view(original.key_value_heads, groups)
    group_rank = torch.argsort(per_group.mean(dim=1), descending=True, stable=True)
    kept_kv = sorted(group_rank[: planned.key_value_heads].tolist())
    kept_query: list[int] = []
    for kv_head in kept_kv:
        best = torch.argsort(per_group[kv_head], descending=True, stable=True)
        chosen = best[: planned.key_value_groups]
        kept_query.extend(sorted(kv_head * groups + int(i) for i in chosen))
    return kept_query, kept_kv


def channels_to_remove(channel_scores: torch.Tensor, keep: int) -> list[int]:
    """The MLP channels with the lowest scores, so that ``keep`` remain."""
    remove = channel_scores.numel() - keep
    if remove <= 0:
        return []
    order = torch.argsort(channel_scores, stable=True)
    return sorted(order[:remove].tolist())


def prune_attention(
    adapter: LlamaFamilyAdapter,
    model: nn.Module,
    layer: nn.Module,
    scores: LayerScores,
    planned: LayerShape,
) -> None:
    """Cuts a layer's attention down to the planned heads and resets its attributes."""
    original = adapter.layer_shape(layer)
    if (original.attention_heads, original.key_value_heads) == (
        planned.attention_heads,
        planned.key_value_heads,
    ):
        return
    kept_query, kept_kv = heads_to_keep(scores.heads, original, planned)
    removed_query = sorted(set(range(original.attention_heads)) - set(kept_query))
    removed_kv = sorted(set(range(original.key_value_heads)) - set(kept_kv))
    _apply(layer, adapter.attention_cuts(original, removed_query, removed_kv))
    cut = replace(original, attention_heads=len(kept_query), key_value_heads=len(kept_kv))
    adapter.set_layer_attributes(model, layer, cut)


def prune_mlp(
    adapter: LlamaFamilyAdapter, layer: nn.Module, scores: LayerScores, planned: LayerShape
) -> None:
    """Cuts a layer's MLP down to the planned width (its lowest-scoring channels go)."""
    removed = channels_to_remove(scores.channels, planned.intermediate_size)
    if removed:
        _apply(layer, adapter.mlp_cuts(adapter.layer_shape(layer), removed))


def _apply(layer: nn.Module, cuts: list[ChannelSpan]) -> None:
    for cut in cuts:
        pruning_function(cut.axis)(layer.get_submodule(cut.path), list(cut.channels))
