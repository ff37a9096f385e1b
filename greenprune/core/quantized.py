"""Weight-only quantized tensors in safetensors, without pickle.

torchao represents a quantized weight as a tensor subclass made of plain tensors (its
``tensor_data_names``: ``qdata``, ``scale``, ...) and a few attributes (``block_size``,
``shape``, ``dtype``). A checkpoint stores each plain part under ``{parameter}.__{part}`` in
the safetensors files and the class name and attributes, as JSON, in the manifest's
``quantized_tensors``. Only the classes in :data:`ALLOWED_CLASSES` are rebuilt, from those
parts and attributes alone, so loading runs no code named by the file.
"""

from __future__ import annotations

from typing import Any

import torch

from greenprune.core.errors import FailedPreconditionError

PART_SEPARATOR = ".__"
"""Joins a parameter's name and one of its quantized parts in the weight files."""


def _allowed_classes() -> dict[str, type]:
    from torchao.prototype.quantization.int4 import Int4OpaqueTensor
    from torchao.quantization import Int8Tensor

    return {"Int8Tensor": Int8Tensor, "Int4OpaqueTensor": Int4OpaqueTensor}


ALLOWED_CLASSES = ("Int8Tensor", "Int4OpaqueTensor")
"""The torchao tensor classes a checkpoint may hold: int8 per channel, int4 for the CPU."""


def is_quantized(tensor: Any) -> bool:
    """Whether a tensor is a torchao quantized tensor (a subclass with data parts)."""
    return isinstance(tensor, torch.Tensor) and hasattr(type(tensor), "tensor_data_names")


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor occupies; a quantized one counts each of its plain parts."""
    if is_quantized(tensor):
        return sum(tensor_bytes(part) for part in _parts(tensor).values())
    return tensor.numel() * tensor.element_size()


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes of every parameter and buffer of a model (tied weights counted once)."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor_bytes(tensor)
    return total


def _parts(tensor: Any) -> dict[str, torch.Tensor]:
    cls = type(tensor)
    names = [*cls.tensor_data_names, *getattr(cls, "optional_tensor_data_names", [])]
    return {n: getattr(tensor, n) for n in names if getattr(tensor, n, None) is not None}


def _attribute_to_json(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, list | tuple | torch.Size):
        return [_attribute_to_json(v) for v in value]
    raise FailedPreconditionError(f"cannot store a quantized-tensor attribute {value!r}")


def _attribute_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        name = value.get("dtype")
        dtype = getattr(torch, str(name), None)
        if not isinstance(dtype, torch.dtype):
            raise FailedPreconditionError(f"unknown dtype {name!r} in a quantized tensor")
        return dtype
    if isinstance(value, list):
        return [_attribute_from_json(v) for v in value]
    return value


def flatten_state_dict(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Splits quantized tensors of a state dict into plain parts.

    Returns:
        ``(tensors, described)``: plain tensors for the weight files (quantized parts named
        ``{name}.__{part}``), and ``{name: {"class": ..., "attributes": {...}}}`` for the
        manifest.
    """
    tensors: dict[str, torch.Tensor] = {}
    described: dict[str, Any] = {}
    for name, tensor in state.items():
        if not is_quantized(tensor):
            tensors[name] = tensor.detach().contiguous()
            continue
        cls = type(tensor).__name__
        if cls not in ALLOWED_CLASSES:
            raise FailedPreconditionError(f"cannot store a {cls} ({name})")
        for part, value in _parts(tensor).items():
            tensors[f"{name}{PART_SEPARATOR}{part}"] = value.detach().contiguous()
        names = [*type(tensor).tensor_attribute_names]
        names += getattr(type(tensor), "optional_tensor_attribute_names", [])
        described[name] = {
            "class": cls,
            "attributes": {n: _attribute_to_json(getattr(tensor, n, None)) for n in names},
        }
    return tensors, described


def unflatten_state_dict(
    tensors: dict[str, torch.Tensor], described: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """Rebuilds the quantized tensors :func:`flatten_state_dict` split.

    Raises:
        FailedPreconditionError: A class is not allowed, or a part is missing.
    """
    classes = _allowed_classes()
    state = {n: t for n, t in tensors.items() if PART_SEPARATOR not in n}
    for name, entry in described.items():
        cls = classes.get(str(entry.get("class")))
        if cls is None:
            raise FailedPreconditionError(
                f"{name}: quantized class {entry.get('class')!r} is not allowed"
            )
        prefix = f"{name}{PART_SEPARATOR}"
        parts = {n.removeprefix(prefix): t for n, t in tensors.items() if n.startswith(prefix)}
        missing = [p for p in cls.tensor_data_names if p not in parts]
        if missing:
            raise FailedPreconditionError(f"{name}: quantized parts missing: {missing}")
        attributes = {k: _attribute_from_json(v) for k, v in entry.get("attributes", {}).items()}
        if "shape" in attributes:
            attributes["shape"] = torch.Size(attributes["shape"])
        state[name] = cls(**parts, **attributes)
    return state
