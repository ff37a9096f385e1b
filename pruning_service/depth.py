"""Depth pruning: remove whole decoder layers, chosen by a named criterion.

The ratio is a share of the prunable parameters, as for width pruning; layers are whole, so
the number removed is the ratio times the prunable layers, rounded to the nearest layer (the
achieved share is recorded). Layers kept by ``keep_first_layers`` / ``keep_last_layers`` are
never removed. The criteria:

- ``block-influence`` (ShortGPT, Men et al. 2024): a layer's score is
  ``1 - cos(input, output)`` of its hidden states, averaged over the calibration tokens; the
  layers that change the residual stream least are removed first.
- ``last``: the last prunable layers (the crude baseline).

The result is uniform: the surviving layers keep their shapes, the config's
``num_hidden_layers`` (and any per-layer list such as ``layer_types``) shrink with them, and
each attention module's ``layer_idx`` is renumbered, so plain ``from_pretrained`` loads it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from greenprune.core.architectures import LlamaFamilyAdapter
from greenprune.core.errors import InvalidArgumentError

DEPTH_STRUCTURES = ("depth", "width-and-depth")
"""Structures that remove whole layers."""

PER_LAYER_LISTS = ("layer_types",)
"""Config attributes holding one entry per decoder layer, trimmed with the layers."""


@dataclass(frozen=True)
class DepthPlan:
    """How many layers depth pruning removes and what share that is.

    Attributes:
        layers: Decoder layers of the source model.
        prunable_layers: Layers not kept by ``keep_first_layers`` / ``keep_last_layers``.
        remove: Layers to remove.
        depth_ratio: The share of prunable parameters the removed layers hold.
        width_ratio: The share of the remaining prunable parameters width pruning must still
            remove so that the total reaches the spec's ratio (0 for pure depth pruning).
    """

    layers: int
    prunable_layers: int
    remove: int
    depth_ratio: float
    width_ratio: float


def removes_layers(structure: str) -> bool:
    """Whether a structure removes whole layers."""
    return structure in DEPTH_STRUCTURES


def plan_depth(
    *,
    structure: str,
    ratio: float,
    depth_share: float,
    layers: int,
    kept: Sequence[int],
) -> DepthPlan:
    """The number of layers to remove, and what width pruning must still remove.

    Every prunable layer holds the same prunable parameters (the source is uniform), so the
    shares are shares of layers.

    Raises:
        InvalidArgumentError: ``spec.ratio`` rounds to no layer, or to every layer.
    """
    prunable = layers - len(kept)
    if not removes_layers(structure) or ratio <= 0:
        return DepthPlan(layers, prunable, 0, 0.0, ratio if not removes_layers(structure) else 0.0)
    target = ratio if structure == "depth" else ratio * depth_share
    remove = math.floor(target * prunable + 0.5)
    if remove == 0 and structure == "depth":
        raise InvalidArgumentError(
            "spec.ratio",
            f"{ratio} of {prunable} prunable layers rounds to no layer; depth pruning removes "
            f"whole layers, so use at least {0.5 / prunable:.3f}",
        )
    if remove >= layers:
        raise InvalidArgumentError(
            "spec.ratio", f"{ratio} would remove all {layers} decoder layers; keep at least one"
        )
    depth_ratio = remove / prunable
    width_ratio = 0.0
    if structure != "depth" and remove < prunable:
        width_ratio = max(0.0, (ratio * prunable - remove) / (prunable - remove))
    return DepthPlan(layers, prunable, remove, depth_ratio, width_ratio)


def block_influence(
    model: nn.Module,
    adapter: LlamaFamilyAdapter,
    tokens: torch.Tensor,
    progress: Callable[[float], None] = lambda fraction: None,
) -> list[float]:
    """ShortGPT's block influence of every decoder layer on calibration tokens.

    Args:
        model: The causal LM.
        adapter: Its architecture adapter.
        tokens: ``(windows, length)`` token ids.
        progress: Called with the fraction of windows done.

    Returns:
        ``1 - cos(input, output)`` per layer, averaged over every token of every window.
    """
    layers = list(adapter.decoder_layers(model))
    totals = [0.0] * len(layers)
    count = 0
    inputs: dict[int, torch.Tensor] = {}
    handles = []

    def capture_input(index: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            inputs[index] = args[0] if args else kwargs["hidden_states"]

        return hook

    def score_output(index: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
            hidden_out = output[0] if isinstance(output, tuple) else output
            hidden_in = inputs.pop(index)
            cosine = nn.functional.cosine_similarity(
                hidden_in.float().flatten(0, -2), hidden_out.float().flatten(0, -2), dim=-1
            )
            totals[index] += float((1.0 - cosine).sum())

        return hook

    for index, layer in enumerate(layers):
        handles.append(layer.register_forward_pre_hook(capture_input(index), with_kwargs=True))
        handles.append(layer.register_forward_hook(score_output(index), with_kwargs=True))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for window in range(tokens.shape[0]):
                model(input_ids=tokens[window : window + 1], use_cache=False)
                count += tokens.shape[1]
                progress((window + 1) / tokens.shape[0])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [total / max(count, 1) for total in totals]


def choose_layers(
    criterion: str, scores: Sequence[float] | None, kept: Sequence[int], remove: int, layers: int
) -> list[int]:
    """The indices of the layers to remove, ascending.

    ``block-influence`` removes the lowest scores first (ties: the later layer first);
    ``last`` removes the last prunable layers. Kept layers are never chosen.
    """
    candidates = [i for i in range(layers) if i not in set(kept)]
    if criterion == "last":
        chosen = candidates[-remove:] if remove else []
    elif criterion == "block-influence":
        if scores is None:
            raise ValueError("block-influence needs scores")
        chosen = sorted(candidates, key=lambda i: (scores[i], -i))[:remove]
    else:
        raise InvalidArgumentError("spec.depth_criterion", f"unknown criterion {criterion!r}")
    return sorted(chosen)


def remove_layers(model: nn.Module, adapter: LlamaFamilyAdapter, removed: Sequence[int]) -> None:
    """Drops decoder layers in place and makes the config and layer indices match.

    The surviving layers are renumbered ``0..n-1`` (``layer_idx`` on the layer and its
    attention, which index the KV cache), ``num_hidden_layers`` shrinks, and per-layer config
    lists (``layer_types``) lose the removed entries.
    """
    drop = set(removed)
    layers = adapter.decoder_layers(model)
    survivors = [layer for index, layer in enumerate(layers) if index not in drop]
    model.model.layers = nn.ModuleList(survivors)
    for new_index, layer in enumerate(survivors):
        for module in (layer, getattr(layer, "self_attn", None)):
            if module is not None and hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    config = model.config
    for name in PER_LAYER_LISTS:
        values = getattr(config, name, None)
        if isinstance(values, list | tuple) and len(values) == len(layers):
            setattr(config, name, [v for i, v in enumerate(values) if i not in drop])
    config.num_hidden_layers = len(survivors)
    if hasattr(config, "max_window_layers") and isinstance(config.max_window_layers, int):
        # Qwen2: layers from this index on use sliding windows; keep the same layers so.
        below = sum(1 for i in range(min(config.max_window_layers, len(layers))) if i not in drop)
        config.max_window_layers = below
