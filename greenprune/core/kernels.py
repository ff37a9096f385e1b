"""The kernel path of a checkpoint's inference, and the share of the baseline's work it skips.

Compression removes work only where a kernel skips it. Smaller shapes (width pruning) and fewer
layers (depth pruning) run as dense matmuls over less; zeroed weights (weight sparsity) run as
dense matmuls over the same shapes, zeros multiplied as any other weight, unless a
semi-structured sparse kernel runs a 2:4 weight: torch's ``to_sparse_semi_structured``, CUDA
only, which skips half of that layer's multiply-accumulates. Weight-only quantization
(torchao) dequantizes on the fly: it moves fewer bytes, and skips no MAC.

So each checkpoint has a path per device kind, predicted from its manifest
(:func:`predicted_path`) and taken when it is loaded for inference (:func:`prepare`), with the
share of the baseline's MACs skipped: ``1 - executed / macs_before``, where ``executed`` is
``macs_after`` (the dense count of the shapes) less half of the MACs of the linears a
semi-structured kernel runs. A finding's realization ratio is its measured saving divided by
this share; where the share is 0 the product says "dense kernels: no saving expected" before
measuring, and the measured verdict confirms or contradicts it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from greenprune.api.common.v1.kernels_pb2 import KernelPath
from greenprune.core.findings import NO_SAVING
from greenprune.core.limits import SEMI_STRUCTURED_RATIO

DEVICE_KINDS = ("cpu", "cuda")
"""The device kinds a checkpoint's path is predicted for."""


_GROUP = 4
_KEPT_PER_GROUP = 2


@dataclass(frozen=True)
class SemiStructuredLinear:
    """A linear layer whose weight has at least two zeros in every group of four of each row.

    Attributes:
        name: The module's qualified name.
        module: The layer.
    """

    name: str
    module: nn.Linear

    def macs(self, sequence_length: int) -> int:
        """Its multiply-accumulates over ``sequence_length`` tokens (batch 1)."""
        return self.module.in_features * self.module.out_features * sequence_length


def follows_two_four(weight: torch.Tensor) -> bool:
    """Whether every group of four consecutive weights along each row holds at least two zeros."""
    if weight.dim() != 2 or weight.shape[1] % _GROUP or not weight.is_floating_point():
        return False
    groups = (weight.detach() == 0).reshape(weight.shape[0], -1, _GROUP).sum(-1)
    return bool((groups >= _GROUP - _KEPT_PER_GROUP).all())


def semi_structured_linears(model: nn.Module) -> list[SemiStructuredLinear]:
    """Every linear layer of the decoder whose weight follows the 2:4 pattern."""
    return [
        SemiStructuredLinear(name, module)
        for name, module in _decoder_linears(model)
        if follows_two_four(module.weight)
    ]


def _decoder_linears(model: nn.Module) -> Iterator[tuple[str, nn.Linear]]:
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and ".layers." in f".{name}":
            yield name, module


def _skipped(manifest: Mapping[str, Any], semi_structured_macs: int) -> float:
    before = int(manifest.get("macs_before") or 0)
    after = int(manifest.get("macs_after") or before)
    if before <= 0:
        return 0.0
    executed = after - SEMI_STRUCTURED_RATIO * semi_structured_macs
    return max(0.0, 1.0 - executed / before)


def _removes_anything(manifest: Mapping[str, Any]) -> bool:
    return bool(
        manifest.get("zeroed_parameters")
        or manifest.get("quantization")
        or float(manifest.get("achieved_ratio") or 0.0) > 0
    )


def expectation(skipped: float, manifest: Mapping[str, Any]) -> str:
    """What to expect of a path before measuring, in words."""
    if skipped > 0:
        return f"up to {skipped:.1%} less work: the share of the baseline's MACs skipped"
    if not _removes_anything(manifest):
        return "the baseline's work"
    if manifest.get("zeroed_parameters"):
        return NO_SAVING
    return f"{NO_SAVING} from skipped work; fewer weight bytes to move"


def _dense_name(manifest: Mapping[str, Any]) -> str:
    quantization = manifest.get("quantization") or {}
    if quantization:
        name = f"{quantization.get('library', 'torchao')} {quantization.get('name')} weight-only"
        return name + (" (CPU packing)" if quantization.get("name") == "int4" else "")
    return f"dense {manifest.get('dtype') or 'float32'}"


def semi_structured_backend(dtype: torch.dtype) -> str | None:
    """The semi-structured kernel torch would run a weight of ``dtype`` with on CUDA, if any.

    cuSPARSELt where it is available and takes the dtype, else CUTLASS (which also takes
    float32); None when neither does.
    """
    from torch.sparse import SparseSemiStructuredTensorCUSPARSELT as Cusparselt
    from torch.sparse import SparseSemiStructuredTensorCUTLASS as Cutlass

    cusparselt = torch.backends.cusparselt.is_available()
    if cusparselt and dtype in Cusparselt._DTYPE_SHAPE_CONSTRAINTS:
        return Cusparselt.BACKEND
    if dtype in Cutlass._DTYPE_SHAPE_CONSTRAINTS:
        return Cutlass.BACKEND
    return None


def _fits(weight: torch.Tensor | tuple[int, int], backend: str, dtype: torch.dtype) -> bool:
    from torch.sparse import SparseSemiStructuredTensorCUSPARSELT as Cusparselt
    from torch.sparse import SparseSemiStructuredTensorCUTLASS as Cutlass

    cls = Cusparselt if backend == Cusparselt.BACKEND else Cutlass
    limits = cls._DTYPE_SHAPE_CONSTRAINTS[dtype]
    rows, cols = tuple(weight.shape) if isinstance(weight, torch.Tensor) else weight
    return not (
        rows < limits.sparse_min_rows
        or rows % limits.sparse_min_rows
        or cols < limits.sparse_min_cols
        or cols % limits.sparse_min_cols
    )


def predicted_path(
    manifest: Mapping[str, Any], device: str, shapes: list[tuple[int, int]] | None = None
) -> KernelPath:
    """The kernel path a checkpoint's inference is expected to take on a device kind.

    Args:
        manifest: The checkpoint's manifest (``macs_before``, ``macs_after``, ``dtype``,
            ``quantization``, ``zeroed_parameters``, ``semi_structured_macs`` and, for CUDA,
            ``semi_structured_shapes``).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        shapes: The 2:4 linears' weight shapes; the manifest's when None.
    """
    kind = "cuda" if device.startswith("cuda") else "cpu"
    name = _dense_name(manifest)
    semi_macs = 0
    if kind == "cuda" and not manifest.get("quantization"):
        dtype = getattr(torch, str(manifest.get("dtype") or "float32"), torch.float32)
        backend = semi_structured_backend(dtype)
        shapes = shapes if shapes is not None else manifest.get("semi_structured_shapes") or []
        fitting = [s for s in shapes if backend and _fits(tuple(s), backend, dtype)]
        if fitting and manifest.get("semi_structured_macs"):
            share = sum(r * c for r, c in fitting) / max(1, sum(r * c for r, c in shapes))
            semi_macs = int(int(manifest["semi_structured_macs"]) * share)
            name = f"semi-structured 2:4 sparse ({backend}) {dtype}".replace("torch.", "")
    skipped = _skipped(manifest, semi_macs)
    return KernelPath(
        device=kind,
        name=name,
        macs_skipped_share=skipped,
        expectation=expectation(skipped, manifest),
    )


def prepare(model: nn.Module, manifest: Mapping[str, Any], device: str) -> KernelPath:
    """Readies a loaded checkpoint for inference on ``device`` and returns the path it takes.

    On CUDA, every decoder linear whose weight follows the 2:4 pattern and fits a
    semi-structured kernel gets that kernel (``to_sparse_semi_structured``); the rest stay
    dense. On the CPU nothing changes: torch has no semi-structured CPU kernel, so 2:4
    weights run dense.
    """
    if not device.startswith("cuda") or manifest.get("quantization"):
        return predicted_path(manifest, device, shapes=[])
    from torch.sparse import SparseSemiStructuredTensorCUTLASS, to_sparse_semi_structured

    converted: list[tuple[int, int]] = []
    length = int(manifest.get("macs_sequence_length") or 0)
    semi_macs = 0
    for linear in semi_structured_linears(model):
        weight = linear.module.weight
        backend = semi_structured_backend(weight.dtype)
        if backend is None or not _fits(weight, backend, weight.dtype):
            continue
        dense = weight.detach().contiguous()
        sparse = (
            SparseSemiStructuredTensorCUTLASS.from_dense(dense)
            if backend == SparseSemiStructuredTensorCUTLASS.BACKEND
            else to_sparse_semi_structured(dense)
        )
        linear.module.weight = nn.Parameter(sparse, requires_grad=False)
        converted.append(tuple(dense.shape))
        semi_macs += linear.macs(length)
    if not converted:
        return predicted_path(manifest, device, shapes=[])
    measured = {**manifest, "semi_structured_macs": semi_macs}
    return predicted_path(measured, device, shapes=converted)
