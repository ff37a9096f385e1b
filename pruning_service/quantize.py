"""Post-training weight-only quantization of a (pruned or unpruned) model, with torchao.

The projections of every decoder layer (attention and MLP) are quantized; embeddings, norms
and the LM head keep their dtype. On the CPU:

- ``int8``: ``Int8WeightOnlyConfig`` (int8 weights, one symmetric scale per output channel;
  matmuls dequantize on the fly);
- ``int4``: ``PrototypeInt4WeightOnlyConfig`` (torchao 0.18's int4 CPU path: asymmetric
  groups of ``quantization_group_size`` input channels, packed for
  ``torch.ops.aten._weight_int4pack_mm_for_cpu``). The packing is for the CPU kernel, so an
  int4 checkpoint is evaluated on the CPU.

The quantized tensors are stored in safetensors as their plain parts (see
:mod:`greenprune.core.quantized`); the manifest records bits, scheme, library and version,
and the bytes of the quantized weights and of the whole model in memory.
"""

from __future__ import annotations

import warnings
from importlib import metadata
from typing import Any

from torch import nn

from greenprune.core.architectures import LlamaFamilyAdapter
from greenprune.core.errors import FailedPreconditionError, InvalidArgumentError
from greenprune.core.quantized import model_bytes, tensor_bytes

SCHEMES = {
    "int8": (8, "int8 weight-only, symmetric, one scale per output channel"),
    "int4": (4, "int4 weight-only, asymmetric, one scale and zero point per group"),
}
"""Bits and description of each quantization."""

INT4_GROUP_SIZES = (32, 64, 128, 256)
"""Group sizes torchao's int4 CPU kernel takes."""

LIBRARY = "torchao"


def check_quantization(quantization: str, group_size: int) -> None:
    """Refuses an unknown quantization or an int4 group size the kernel cannot take."""
    if quantization == "none":
        return
    if quantization not in SCHEMES:
        raise InvalidArgumentError("spec.quantization", f"unknown quantization {quantization!r}")
    if quantization == "int4" and group_size not in INT4_GROUP_SIZES:
        raise InvalidArgumentError(
            "spec.quantization_group_size",
            f"{group_size} is not one of {', '.join(map(str, INT4_GROUP_SIZES))}",
        )
    try:
        metadata.version(LIBRARY)
    except metadata.PackageNotFoundError:
        raise FailedPreconditionError(
            f"quantization needs {LIBRARY}; install it with pip install torchao"
        ) from None


def _config(quantization: str, group_size: int) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if quantization == "int8":
            from torchao.quantization import Int8WeightOnlyConfig

            return Int8WeightOnlyConfig()
        from torchao.prototype.quantization.int4 import PrototypeInt4WeightOnlyConfig

        return PrototypeInt4WeightOnlyConfig(group_size=group_size)


def quantize_model(
    model: nn.Module, adapter: LlamaFamilyAdapter, quantization: str, group_size: int
) -> dict[str, Any]:
    """Quantizes the decoder layers' projections in place; returns the manifest's record.

    Args:
        model: The model (float weights, on the CPU).
        adapter: Its architecture adapter.
        quantization: ``int8`` or ``int4``.
        group_size: Input channels per int4 group.

    Returns:
        ``quantization`` (bits, scheme, library, version, group size, class, layers
        quantized, bytes of those weights before and after) for the manifest.
    """
    from torchao.quantization import quantize_

    check_quantization(quantization, group_size)
    targets = {
        id(module)
        for layer in adapter.decoder_layers(model)
        for module in (*adapter.attention_projections(layer), *adapter.mlp_projections(layer))
    }
    before = sum(tensor_bytes(m.weight) for m in model.modules() if id(m) in targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_(model, _config(quantization, group_size), filter_fn=lambda m, _: id(m) in targets)
    modules = [m for m in model.modules() if id(m) in targets]
    after = sum(tensor_bytes(m.weight) for m in modules)
    classes = sorted({type(m.weight).__name__ for m in modules})
    bits, scheme = SCHEMES[quantization]
    return {
        "name": quantization,
        "bits": bits,
        "scheme": scheme,
        "library": LIBRARY,
        "library_version": metadata.version(LIBRARY),
        "group_size": group_size if quantization == "int4" else None,
        "tensor_classes": classes,
        "quantized_linears": len(modules),
        "quantized_weight_bytes_before": before,
        "quantized_weight_bytes_after": after,
        "bytes_in_memory": model_bytes(model),
    }
