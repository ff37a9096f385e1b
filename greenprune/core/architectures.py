"""What greenprune knows about each decoder architecture it can prune and reload.

One adapter per family says which rows and columns of which projections belong to a query
head, a key/value head or an MLP channel, how to read a layer's shape from its weights, how
to give a layer a new shape (on the ``meta`` device, for the checkpoint loader) and how to
write a uniform shape into the config. Both the pruner and the checkpoint loader use it, so
it lives in the shared package and does not depend on torch-pruning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from greenprune.core.errors import FailedPreconditionError

OUT = "out"
IN = "in"


@dataclass(frozen=True)
class LayerShape:
    """The prunable shape of one decoder layer.

    Attributes:
        attention_heads: Query heads.
        key_value_heads: Key/value heads; ``attention_heads`` is a multiple of it.
        head_dim: Width of one head (never pruned).
        intermediate_size: Width of the MLP's intermediate layer.
    """

    attention_heads: int
    key_value_heads: int
    head_dim: int
    intermediate_size: int

    @property
    def key_value_groups(self) -> int:
        """Query heads per key/value head."""
        return self.attention_heads // self.key_value_heads


@dataclass(frozen=True)
class LayerGeometry:
    """Everything that decides a decoder layer's prunable parameter count.

    Attributes:
        hidden_size: Width of the residual stream (never pruned here).
        shape: Heads and MLP width.
        attention_bias: Whether the q, k, v and o parts carry a bias.
        mlp_bias: Whether the gate, up and down parts carry a bias.
    """

    hidden_size: int
    shape: LayerShape
    attention_bias: tuple[bool, bool, bool, bool]
    mlp_bias: tuple[bool, bool, bool]

    def attention_parameters(self, attention_heads: int, key_value_heads: int) -> int:
        """Parameters of the attention projections with the given head counts."""
        hidden, head_dim = self.hidden_size, self.shape.head_dim
        q_bias, k_bias, v_bias, o_bias = self.attention_bias
        return (
            _linear_parameters(hidden, attention_heads * head_dim, q_bias)
            + _linear_parameters(hidden, key_value_heads * head_dim, k_bias)
            + _linear_parameters(hidden, key_value_heads * head_dim, v_bias)
            + _linear_parameters(attention_heads * head_dim, hidden, o_bias)
        )

    def mlp_parameters(self, intermediate_size: int) -> int:
        """Parameters of the MLP projections with the given intermediate width."""
        gate_bias, up_bias, down_bias = self.mlp_bias
        return (
            _linear_parameters(self.hidden_size, intermediate_size, gate_bias)
            + _linear_parameters(self.hidden_size, intermediate_size, up_bias)
            + _linear_parameters(intermediate_size, self.hidden_size, down_bias)
        )


@dataclass(frozen=True)
class ChannelSpan:
    """Rows (``out``) or columns (``in``) of one projection of a decoder layer.

    Attributes:
        path: The projection, relative to the decoder layer (``self_attn.q_proj``).
        axis: ``out`` for rows (output channels), ``in`` for columns (input channels).
        channels: The row or column indices.
        roots: For each index, the unit channel it belongs to (a query channel or an MLP
            channel), so that coupled rows and columns score together.
    """

    path: str
    axis: str
    channels: tuple[int, ...]
    roots: tuple[int, ...]


def _linear_parameters(in_features: int, out_features: int, bias: bool) -> int:
    return in_features * out_features + (out_features if bias else 0)


def _span(
    path: str, axis: str, channels: range | list[int], roots: range | list[int]
) -> ChannelSpan:
    return ChannelSpan(path, axis, tuple(channels), tuple(roots))


class LlamaFamilyAdapter:
    """Llama, Mistral and Qwen2: separate q/k/v/o and gate/up/down projections.

    Attributes:
        traceable: torch-pruning's dependency graph yields this family's coupling, so the
            pruner checks its spans against the traced graph and scores on the traced groups.
    """

    traceable = True
    attention_paths = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
    attention_paths += ("self_attn.o_proj",)
    mlp_paths = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")

    def __init__(self, architecture: str) -> None:
        self.architecture = architecture

    def decoder_layers(self, model: nn.Module) -> nn.ModuleList:
        """The decoder layers of a ``*ForCausalLM`` model, in order."""
        return model.model.layers

    def attention_projections(self, layer: nn.Module) -> tuple[nn.Linear, ...]:
        """The attention projections of a decoder layer."""
        return tuple(layer.get_submodule(path) for path in self.attention_paths)

    def mlp_projections(self, layer: nn.Module) -> tuple[nn.Linear, ...]:
        """The MLP projections of a decoder layer."""
        return tuple(layer.get_submodule(path) for path in self.mlp_paths)

    def layer_shape(self, layer: nn.Module) -> LayerShape:
        """Reads a layer's shape from its weights."""
        attention = layer.self_attn
        head_dim = int(attention.head_dim)
        return LayerShape(
            attention_heads=attention.q_proj.out_features // head_dim,
            key_value_heads=attention.k_proj.out_features // head_dim,
            head_dim=head_dim,
            intermediate_size=layer.mlp.gate_proj.out_features,
        )

    def layer_geometry(self, layer: nn.Module) -> LayerGeometry:
        """The parameter geometry of a layer."""
        attention_bias = tuple(p.bias is not None for p in self.attention_projections(layer))
        mlp_bias = tuple(p.bias is not None for p in self.mlp_projections(layer))
        return LayerGeometry(
            hidden_size=layer.self_attn.o_proj.out_features,
            shape=self.layer_shape(layer),
            attention_bias=attention_bias,  # type: ignore[arg-type]
            mlp_bias=mlp_bias,  # type: ignore[arg-type]
        )

    def query_spans(self, shape: LayerShape) -> list[ChannelSpan]:
        """Rows and columns that belong to each query channel (the query-head group)."""
        width = range(shape.attention_heads * shape.head_dim)
        return [
            _span("self_attn.q_proj", OUT, width, width),
            _span("self_attn.o_proj", IN, width, width),
        ]

    def mlp_spans(self, shape: LayerShape) -> list[ChannelSpan]:
        """Rows and columns that belong to each MLP channel (the MLP group)."""
        width = range(shape.intermediate_size)
        return [
            _span("mlp.gate_proj", OUT, width, width),
            _span("mlp.up_proj", OUT, width, width),
            _span("mlp.down_proj", IN, width, width),
        ]

    def attention_cuts(
        self, shape: LayerShape, query_heads: list[int], key_value_heads: list[int]
    ) -> list[ChannelSpan]:
        """What to remove to drop some query heads and some key/value heads."""
        query = _head_channels(query_heads, shape.head_dim)
        key_value = _head_channels(key_value_heads, shape.head_dim)
        cuts = [
            _span("self_attn.q_proj", OUT, query, query),
            _span("self_attn.o_proj", IN, query, query),
        ]
        if key_value:
            cuts.append(_span("self_attn.k_proj", OUT, key_value, key_value))
            cuts.append(_span("self_attn.v_proj", OUT, key_value, key_value))
        return cuts

    def mlp_cuts(self, shape: LayerShape, channels: list[int]) -> list[ChannelSpan]:
        """What to remove to drop some MLP channels."""
        return [_span(span.path, span.axis, channels, channels) for span in self.mlp_spans(shape)]

    def set_layer_attributes(self, model: nn.Module, layer: nn.Module, shape: LayerShape) -> None:
        """Updates the per-layer attributes that depend on the head counts."""
        layer.self_attn.num_key_value_groups = shape.key_value_groups

    def resize_layer(self, model: nn.Module, layer: nn.Module, shape: LayerShape) -> None:
        """Replaces a layer's projections by uninitialised ones of the given shape.

        The new modules live on the device and dtype of the old ones (``meta`` in the loader).
        """
        q_width = shape.attention_heads * shape.head_dim
        kv_width = shape.key_value_heads * shape.head_dim
        _replace_linear(layer, "self_attn.q_proj", out_features=q_width)
        _replace_linear(layer, "self_attn.k_proj", out_features=kv_width)
        _replace_linear(layer, "self_attn.v_proj", out_features=kv_width)
        _replace_linear(layer, "self_attn.o_proj", in_features=q_width)
        _replace_linear(layer, "mlp.gate_proj", out_features=shape.intermediate_size)
        _replace_linear(layer, "mlp.up_proj", out_features=shape.intermediate_size)
        _replace_linear(layer, "mlp.down_proj", in_features=shape.intermediate_size)
        self.set_layer_attributes(model, layer, shape)

    def write_uniform_shape(self, model: nn.Module, shape: LayerShape) -> None:
        """Writes a shape shared by every layer into the config (head_dim kept explicit)."""
        config = model.config
        config.num_attention_heads = shape.attention_heads
        config.num_key_value_heads = shape.key_value_heads
        config.head_dim = shape.head_dim
        config.intermediate_size = shape.intermediate_size


class Phi3Adapter(LlamaFamilyAdapter):
    """Phi-3: fused ``qkv_proj`` (q, then k, then v rows) and ``gate_up_proj`` (gate, then up).

    Phi-3's attention reads the query width from ``self.config.num_attention_heads``, so a
    layer whose head count differs from the model config gets a :class:`LayerConfigView`.
    torch-pruning's traced graph does not map channels through the fused projections'
    slices, so the pruner builds this family's groups from the spans below.
    """

    traceable = False
    attention_paths = ("self_attn.qkv_proj", "self_attn.o_proj")
    mlp_paths = ("mlp.gate_up_proj", "mlp.down_proj")

    def layer_shape(self, layer: nn.Module) -> LayerShape:
        """Reads a layer's shape from its weights and key/value head count."""
        attention = layer.self_attn
        head_dim = int(attention.head_dim)
        key_value_heads = int(attention.num_key_value_heads)
        query_width = attention.qkv_proj.out_features - 2 * key_value_heads * head_dim
        return LayerShape(
            attention_heads=query_width // head_dim,
            key_value_heads=key_value_heads,
            head_dim=head_dim,
            intermediate_size=layer.mlp.gate_up_proj.out_features // 2,
        )

    def layer_geometry(self, layer: nn.Module) -> LayerGeometry:
        """The parameter geometry of a layer (fused biases count for each part)."""
        qkv_bias = layer.self_attn.qkv_proj.bias is not None
        gate_up_bias = layer.mlp.gate_up_proj.bias is not None
        return LayerGeometry(
            hidden_size=layer.self_attn.o_proj.out_features,
            shape=self.layer_shape(layer),
            attention_bias=(qkv_bias, qkv_bias, qkv_bias, layer.self_attn.o_proj.bias is not None),
            mlp_bias=(gate_up_bias, gate_up_bias, layer.mlp.down_proj.bias is not None),
        )

    def query_spans(self, shape: LayerShape) -> list[ChannelSpan]:
        """Query rows of ``qkv_proj`` and the matching ``o_proj`` columns."""
        width = range(shape.attention_heads * shape.head_dim)
        return [
            _span("self_attn.qkv_proj", OUT, width, width),
            _span("self_attn.o_proj", IN, width, width),
        ]

    def mlp_spans(self, shape: LayerShape) -> list[ChannelSpan]:
        """Gate rows, up rows (offset by the width) and ``down_proj`` columns."""
        width = range(shape.intermediate_size)
        up = range(shape.intermediate_size, 2 * shape.intermediate_size)
        return [
            _span("mlp.gate_up_proj", OUT, width, width),
            _span("mlp.gate_up_proj", OUT, up, width),
            _span("mlp.down_proj", IN, width, width),
        ]

    def attention_cuts(
        self, shape: LayerShape, query_heads: list[int], key_value_heads: list[int]
    ) -> list[ChannelSpan]:
        """Query, key and value rows of ``qkv_proj`` and the query columns of ``o_proj``."""
        query = _head_channels(query_heads, shape.head_dim)
        key_value = _head_channels(key_value_heads, shape.head_dim)
        key_start = shape.attention_heads * shape.head_dim
        value_start = key_start + shape.key_value_heads * shape.head_dim
        rows = query + [key_start + c for c in key_value] + [value_start + c for c in key_value]
        return [
            _span("self_attn.qkv_proj", OUT, rows, rows),
            _span("self_attn.o_proj", IN, query, query),
        ]

    def mlp_cuts(self, shape: LayerShape, channels: list[int]) -> list[ChannelSpan]:
        """Gate and up rows of ``gate_up_proj`` and the columns of ``down_proj``."""
        rows = channels + [shape.intermediate_size + c for c in channels]
        return [
            _span("mlp.gate_up_proj", OUT, rows, rows),
            _span("mlp.down_proj", IN, channels, channels),
        ]

    def set_layer_attributes(self, model: nn.Module, layer: nn.Module, shape: LayerShape) -> None:
        """Updates head counts, and gives the layer its own view of the config if needed."""
        attention = layer.self_attn
        attention.num_key_value_heads = shape.key_value_heads
        attention.num_key_value_groups = shape.key_value_groups
        shared = model.config
        if shape.attention_heads == shared.num_attention_heads:
            attention.config = shared
        else:
            attention.config = LayerConfigView(shared, num_attention_heads=shape.attention_heads)

    def resize_layer(self, model: nn.Module, layer: nn.Module, shape: LayerShape) -> None:
        """Replaces a layer's projections by uninitialised ones of the given shape."""
        q_width = shape.attention_heads * shape.head_dim
        qkv_width = q_width + 2 * shape.key_value_heads * shape.head_dim
        _replace_linear(layer, "self_attn.qkv_proj", out_features=qkv_width)
        _replace_linear(layer, "self_attn.o_proj", in_features=q_width)
        _replace_linear(layer, "mlp.gate_up_proj", out_features=2 * shape.intermediate_size)
        _replace_linear(layer, "mlp.down_proj", in_features=shape.intermediate_size)
        self.set_layer_attributes(model, layer, shape)

    def write_uniform_shape(self, model: nn.Module, shape: LayerShape) -> None:
        """Writes the shared shape into the config; layers read the shared config again."""
        super().write_uniform_shape(model, shape)
        for layer in self.decoder_layers(model):
            layer.self_attn.config = model.config


class LayerConfigView:
    """A model config seen by one layer: some attributes overridden, the rest shared.

    Reads fall through to the shared config at call time, so settings changed there later
    (the attention implementation, say) still reach the layer.
    """

    def __init__(self, shared: Any, **overrides: Any) -> None:
        self.__dict__["_shared"] = shared
        self.__dict__["_overrides"] = overrides

    def __getattr__(self, name: str) -> Any:
        overrides = self.__dict__["_overrides"]
        if name in overrides:
            return overrides[name]
        return getattr(self.__dict__["_shared"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.__dict__["_shared"], name, value)


def _head_channels(heads: list[int], head_dim: int) -> list[int]:
    return [head * head_dim + offset for head in heads for offset in range(head_dim)]


def _replace_linear(
    layer: nn.Module,
    path: str,
    *,
    in_features: int | None = None,
    out_features: int | None = None,
) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = layer.get_submodule(parent_path)
    old: nn.Linear = getattr(parent, name)
    new = nn.Linear(
        old.in_features if in_features is None else in_features,
        old.out_features if out_features is None else out_features,
        bias=old.bias is not None,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    setattr(parent, name, new)


_ADAPTERS: dict[str, LlamaFamilyAdapter] = {
    name: LlamaFamilyAdapter(name)
    for name in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM")
}
_ADAPTERS["Phi3ForCausalLM"] = Phi3Adapter("Phi3ForCausalLM")


def architecture_name(config: Any) -> str:
    """The causal-LM class name a config describes (``config.architectures[0]``)."""
    architectures = getattr(config, "architectures", None) or []
    if architectures:
        return str(architectures[0])
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return str(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.model_type, config.model_type))


def adapter_for(config: Any) -> LlamaFamilyAdapter:
    """The adapter of a config's architecture.

    Raises:
        FailedPreconditionError: The architecture is not supported.
    """
    name = architecture_name(config)
    adapter = _ADAPTERS.get(name)
    if adapter is None:
        raise FailedPreconditionError(f"unsupported architecture: {name}")
    return adapter
