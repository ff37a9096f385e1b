"""torch-pruning's dependency graph and importance criteria, applied to decoder layers.

A layer has two groups of coupled weights, as its architecture adapter describes them:

* the query group: the rows that produce each query channel and the ``o_proj`` columns that
  read it (key/value rows are shared by several query heads and scored with them), and
* the MLP group: gate and up rows and ``down_proj`` columns of each MLP channel.

For traceable families (Llama, Mistral, Qwen2) the groups come from torch-pruning's
dependency graph, and the pruner refuses to go on when the graph couples other projections
than the adapter expects. The graph is traced with eager attention and without the KV cache:
eager attention expands key/value heads with ``repeat_kv``, which torch-pruning maps back,
while SDPA's built-in GQA hides the expansion and torch-pruning would then pair query channel
``i`` with key channel ``i``. Phi-3's fused projections defeat the traced graph's channel
mapping, so its groups are built from the adapter's spans. Either way torch-pruning's
importance criteria score them.

The traced graph keeps autograd nodes that pin the unpruned weights, so callers score every
layer, drop the graph, and only then cut (see :mod:`pruning_service.surgery`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.dependency import Dependency, Group, Node

from greenprune.core.architectures import OUT, ChannelSpan, LlamaFamilyAdapter
from greenprune.core.errors import FailedPreconditionError
from pruning_service import tp_compat

EXAMPLE_LENGTH = 8


def pruning_function(axis: str) -> Callable[..., nn.Module]:
    """torch-pruning's Linear pruning function for rows (``out``) or columns (``in``)."""
    return tp.prune_linear_out_channels if axis == OUT else tp.prune_linear_in_channels


def importance_for(method: str) -> tp.importance.Importance:
    """The torch-pruning importance criterion of a pruning method."""
    criteria: dict[str, Callable[[], tp.importance.Importance]] = {
        "magnitude-l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
        "magnitude-l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
        "taylor": lambda: tp.importance.GroupTaylorImportance(),
        "random": lambda: tp.importance.RandomImportance(),
    }
    return criteria[method]()


def build_dependency_graph(model: nn.Module) -> tp.DependencyGraph:
    """Traces a causal LM into a torch-pruning dependency graph (eager attention, no cache)."""
    tp_compat.install()
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    example = torch.arange(EXAMPLE_LENGTH, device=_device_of(model)).unsqueeze(0)
    example = example % model.config.vocab_size
    try:
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
            return tp.DependencyGraph().build_dependency(
                model,
                example_inputs=example,
                forward_fn=lambda traced, inputs: traced(input_ids=inputs, use_cache=False).logits,
            )
    finally:
        model.set_attn_implementation(previous)


@dataclass(frozen=True)
class LayerScores:
    """Importance of one layer's units (higher means keep); None where not scored.

    Attributes:
        heads: One score per query head.
        channels: One score per MLP channel.
    """

    heads: torch.Tensor | None
    channels: torch.Tensor | None


def score_layer(
    graph: tp.DependencyGraph | None,
    adapter: LlamaFamilyAdapter,
    layer: nn.Module,
    importance: tp.importance.Importance,
    *,
    attention: bool = True,
    mlp: bool = True,
) -> LayerScores:
    """Scores a layer's query heads and/or MLP channels with a torch-pruning criterion.

    Args:
        graph: The traced dependency graph; None for families that are not traceable.
        adapter: The layer's architecture adapter.
        layer: The decoder layer.
        importance: A torch-pruning importance criterion.
        attention: Score query heads.
        mlp: Score MLP channels.
    """
    shape = adapter.layer_shape(layer)
    heads = channels = None
    if attention:
        spans = adapter.query_spans(shape)
        group = _group(graph, layer, spans, optional_key_value=True)
        scores = _scores(importance, group, len(spans[0].channels))
        heads = scores.view(shape.attention_heads, shape.head_dim).mean(dim=1)
    if mlp:
        spans = adapter.mlp_spans(shape)
        channels = _scores(importance, _group(graph, layer, spans), len(spans[0].channels))
    return LayerScores(heads=heads, channels=channels)


def _group(
    graph: tp.DependencyGraph | None,
    layer: nn.Module,
    spans: list[ChannelSpan],
    *,
    optional_key_value: bool = False,
) -> Group:
    """The torch-pruning group of some spans: traced (and checked) or built from the spans."""
    if graph is None:
        return _group_from_spans(layer, spans)
    root = spans[0]
    group = graph.get_pruning_group(
        layer.get_submodule(root.path), pruning_function(root.axis), idxs=list(root.channels)
    )
    expected = {(layer.get_submodule(s.path), pruning_function(s.axis)) for s in spans}
    allowed = set(expected)
    if optional_key_value:
        allowed |= {
            (module, tp.prune_linear_out_channels)
            for name, module in layer.self_attn.named_children()
            if name in ("k_proj", "v_proj")
        }
    members = {
        (dep.target.module, dep.handler)
        for dep, _ in group
        if isinstance(dep.target.module, nn.Linear)
    }
    if not expected <= members <= allowed:
        names = sorted(
            f"{graph._module2name.get(module, '?')}:{handler.__name__}"
            for module, handler in members
        )
        raise FailedPreconditionError(f"torch-pruning traced an unexpected group: {names}")
    return group


def _group_from_spans(layer: nn.Module, spans: list[ChannelSpan]) -> Group:
    """A torch-pruning group whose items are the spans, each channel tied to its root."""
    group = Group()
    for span in spans:
        module = layer.get_submodule(span.path)
        node = Node(module, grad_fn=None, name=span.path)
        function = pruning_function(span.axis)
        group.add_dep(Dependency(function, function, source=node, target=node), list(span.channels))
        group[-1].root_idxs = list(span.roots)
    return group


def _scores(importance: tp.importance.Importance, group: Group, expected: int) -> torch.Tensor:
    scores = importance(group)
    if scores is None or scores.numel() != expected:
        raise FailedPreconditionError("torch-pruning returned no importance for a layer group")
    return scores.detach().float().cpu()


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
