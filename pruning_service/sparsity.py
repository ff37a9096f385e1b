"""Weight sparsity: zero individual weights of the prunable linear layers, keeping every shape.

Criteria (the lowest scores are zeroed):

- ``magnitude``: ``|W|``.
- ``wanda`` (Sun et al. 2023): ``|W_ij| * ||X_j||``, the weight's magnitude times the L2 norm of
  its input feature over every calibration token.
- ``sparsegpt`` (Frantar & Alistarh 2023): the optimal-brain-surgeon saliency
  ``W_ij^2 / [H^-1]_jj^2`` with ``H = X^T X`` of the calibration inputs; columns are visited left
  to right in blocks of :data:`BLOCK` and every zeroed weight's error is spread over the row's
  weights still to come (through the Cholesky factor of ``H^-1``), block by block, lazily.

Comparison groups (patterns):

- ``unstructured``: ``round(ratio * size)`` weights of each group: an output row (``magnitude``,
  ``wanda``), or a block of input columns over all rows (``sparsegpt``, its adaptive mask).
- ``2:4``: two of every four consecutive weights along the input dimension of each row.

Calibrated criteria see the inputs each layer will see: decoder layers are visited in order on
the calibration windows, each layer's output (after its own sparsification) feeding the next,
as in the papers' reference code. Layers kept by ``keep_first_layers``/``keep_last_layers``
pass their inputs on untouched. No grpc here.

Why not ``torchao.sparsity.WandaSparsifier`` (torchao 0.18): it compares scores across a whole
layer, not per output row as the paper does for LLMs; it calibrates every layer at once on the
dense model (observers on all linears), not each layer on the outputs of the sparsified layers
before it; it has no SparseGPT; and it works through ``torch.ao`` parametrizations to squash.
The scoring here is a few lines per criterion; torch's ``to_sparse_semi_structured`` runs the
2:4 result on CUDA (:mod:`greenprune.core.kernels`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from greenprune.core.architectures import LlamaFamilyAdapter
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.kernels import semi_structured_linears
from greenprune.core.limits import SEMI_STRUCTURED, SEMI_STRUCTURED_RATIO

CALIBRATED = ("wanda", "sparsegpt")
"""Criteria that need calibration activations."""

BLOCK = 128
"""SparseGPT's column block: its mask is chosen, and its updates applied, block by block."""

DAMPING = 0.01
"""SparseGPT's dampening of the Hessian's diagonal, as a share of its mean."""

GROUP, ZEROS_PER_GROUP = 4, 2
"""The 2:4 pattern: zeros per group of consecutive input weights."""


def sparsity_share(pattern: str, ratio: float) -> float:
    """The share of weights the sparsity zeroes: the ratio, or exactly a half for 2:4."""
    return SEMI_STRUCTURED_RATIO if pattern == SEMI_STRUCTURED else ratio


def check_spec(criterion: str, pattern: str, ratio: float) -> None:
    """Refuses a sparsity spec whose criterion, pattern and share do not go together."""
    if criterion == "none":
        if ratio > 0:
            raise InvalidArgumentError(
                "spec.sparsity_ratio", f"{ratio:g} needs a sparsity (magnitude, wanda, sparsegpt)"
            )
        if pattern == SEMI_STRUCTURED:
            raise InvalidArgumentError(
                "spec.sparsity_pattern", "2:4 needs a sparsity (magnitude, wanda, sparsegpt)"
            )
        return
    if pattern == SEMI_STRUCTURED and ratio not in (0.0, SEMI_STRUCTURED_RATIO):
        raise InvalidArgumentError(
            "spec.sparsity_ratio",
            f"2:4 zeroes exactly {SEMI_STRUCTURED_RATIO:g} of the weights, not {ratio:g}; "
            "leave it 0",
        )
    if pattern != SEMI_STRUCTURED and ratio <= 0:
        raise InvalidArgumentError(
            "spec.sparsity_ratio", f"is 0: name the share of weights {criterion} zeroes"
        )


def check_planned_widths(widths: Mapping[str, int]) -> None:
    """Refuses 2:4 when a sparsified projection would take a width not divisible by four.

    Args:
        widths: The input width of each projection kind of the pruned layers, after the
            structural step (``mlp.down_proj``: the kept MLP width, ...).
    """
    for name, width in widths.items():
        if width % GROUP:
            raise InvalidArgumentError(
                "spec.sparsity_pattern",
                f"2:4 needs input widths that are multiples of {GROUP}; the pruned layers' "
                f"{name} would take {width} (set round_to to a multiple of {GROUP})",
            )


def check_modules(modules: Sequence[tuple[str, nn.Linear]], pattern: str) -> None:
    """Refuses a 2:4 pattern on a layer whose input width is not a multiple of four."""
    if pattern != SEMI_STRUCTURED:
        return
    for name, module in modules:
        if module.in_features % GROUP:
            raise InvalidArgumentError(
                "spec.sparsity_pattern",
                f"2:4 needs input widths that are multiples of {GROUP}; {name} has "
                f"{module.in_features}",
            )


def _groups_mask(scores: torch.Tensor, pattern: str, share: float) -> torch.Tensor:
    """True where a weight is zeroed: the lowest scores of each row, or 2 of each 4 in a row."""
    rows, cols = scores.shape
    if pattern == SEMI_STRUCTURED:
        grouped = scores.reshape(rows, cols // GROUP, GROUP)
        lowest = grouped.topk(ZEROS_PER_GROUP, dim=-1, largest=False).indices
        mask = torch.zeros_like(grouped, dtype=torch.bool).scatter_(-1, lowest, True)
        return mask.reshape(rows, cols)
    count = round(share * cols)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if count:
        mask.scatter_(1, scores.topk(count, dim=1, largest=False).indices, True)
    return mask


def _block_mask(scores: torch.Tensor, share: float) -> torch.Tensor:
    """True at the ``round(share * size)`` lowest scores of a whole block."""
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    count = round(share * scores.numel())
    if count:
        mask[scores.flatten().topk(count, largest=False).indices] = True
    return mask.view_as(scores)


def _inverse_hessian_factor(hessian: torch.Tensor) -> torch.Tensor:
    """The upper Cholesky factor of ``(H + damping)^-1``; unseen inputs get a unit diagonal."""
    hessian = hessian.clone()
    diagonal = hessian.diagonal()
    diagonal[diagonal == 0] = 1.0
    diagonal += DAMPING * diagonal.mean()
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(hessian))
    return torch.linalg.cholesky(inverse, upper=True)


def sparsegpt_weight(
    weight: torch.Tensor, hessian: torch.Tensor, pattern: str, share: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseGPT on one weight: the updated weight (zeros in place) and its mask.

    Args:
        weight: ``(out, in)``.
        hessian: ``X^T X`` of the layer's inputs, ``(in, in)``.
        pattern: ``unstructured`` or ``2:4``.
        share: The share to zero (unstructured).
    """
    result = weight.detach().float().clone()
    factor = _inverse_hessian_factor(hessian.float())
    rows, cols = result.shape
    mask = torch.zeros_like(result, dtype=torch.bool)
    for start in range(0, cols, BLOCK):
        end = min(start + BLOCK, cols)
        block = result[:, start:end].clone()
        local = factor[start:end, start:end]
        pivots = local.diagonal()
        errors = torch.zeros_like(block)
        block_mask = (
            _block_mask(block.square() / pivots.square(), share)
            if pattern != SEMI_STRUCTURED
            else torch.zeros_like(block, dtype=torch.bool)
        )
        for column in range(end - start):
            if pattern == SEMI_STRUCTURED and column % GROUP == 0:
                group = slice(column, column + GROUP)
                saliency = block[:, group].square() / pivots[group].square()
                block_mask[:, group] = _groups_mask(saliency, SEMI_STRUCTURED, share)
            kept = block[:, column].masked_fill(block_mask[:, column], 0.0)
            error = (block[:, column] - kept) / pivots[column]
            block[:, column:] -= error.unsqueeze(1) * local[column, column:].unsqueeze(0)
            errors[:, column] = error
        result[:, start:end] = block
        result[:, end:] -= errors @ factor[start:end, end:]
        mask[:, start:end] = block_mask
    return result.masked_fill_(mask, 0.0).to(weight.dtype), mask


class Statistics:
    """What a calibrated criterion needs of one linear layer's inputs."""

    def __init__(self, module: nn.Linear, criterion: str) -> None:
        self.criterion = criterion
        size = module.in_features
        self.squares = torch.zeros(size) if criterion == "wanda" else None
        self.hessian = torch.zeros(size, size) if criterion == "sparsegpt" else None

    def add(self, inputs: torch.Tensor) -> None:
        """Adds a batch of the layer's inputs (any leading shape, features last)."""
        rows = inputs.detach().reshape(-1, inputs.shape[-1]).float().cpu()
        if self.squares is not None:
            self.squares += rows.square().sum(0)
        if self.hessian is not None:
            self.hessian += rows.T @ rows


def sparsify_linear(
    module: nn.Linear, criterion: str, pattern: str, share: float, stats: Statistics | None
) -> int:
    """Zeroes one layer's weights in place; returns how many are zero afterwards."""
    weight = module.weight
    with torch.no_grad():
        if criterion == "sparsegpt":
            assert stats is not None and stats.hessian is not None
            updated, _ = sparsegpt_weight(weight, stats.hessian, pattern, share)
            weight.copy_(updated)
        else:
            scores = weight.detach().abs().float()
            if criterion == "wanda":
                assert stats is not None and stats.squares is not None
                scores = scores * stats.squares.sqrt().unsqueeze(0)
            weight.masked_fill_(_groups_mask(scores, pattern, share).to(weight.device), 0.0)
    return int((weight == 0).sum())


class _StopForward(Exception):
    """Ends a forward pass once the first decoder layer's inputs are captured."""


def _first_layer_calls(
    model: nn.Module, layer: nn.Module, tokens: torch.Tensor
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """The positional and keyword arguments the first decoder layer gets, per window."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def capture(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        calls.append((args, dict(kwargs)))
        raise _StopForward

    handle = layer.register_forward_pre_hook(capture, with_kwargs=True)
    device = next(model.parameters()).device
    try:
        for window in tokens:
            with contextlib.suppress(_StopForward):
                model(input_ids=window.unsqueeze(0).to(device), use_cache=False)
    finally:
        handle.remove()
    return calls


def _with_hidden(
    call: tuple[tuple[Any, ...], dict[str, Any]], hidden: torch.Tensor
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args, kwargs = call
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def _run_layer(layer: nn.Module, call: tuple[tuple[Any, ...], dict[str, Any]]) -> torch.Tensor:
    args, kwargs = call
    output = layer(*args, **kwargs)
    return output[0] if isinstance(output, tuple) else output


def sparsify(
    model: nn.Module,
    adapter: LlamaFamilyAdapter,
    *,
    targets: Callable[[nn.Module], list[nn.Linear]],
    sparsified_layers: set[int],
    criterion: str,
    pattern: str,
    ratio: float,
    tokens: torch.Tensor | None,
    progress: Callable[[float], None] = lambda fraction: None,
) -> dict[str, Any]:
    """Zeroes weights of the target linears of the chosen decoder layers, in place.

    Args:
        model: The (possibly structurally pruned) causal LM.
        adapter: Its architecture adapter.
        targets: The linears of a decoder layer to sparsify.
        sparsified_layers: Indices of the decoder layers to sparsify.
        criterion: ``magnitude``, ``wanda`` or ``sparsegpt``.
        pattern: ``unstructured`` or ``2:4``.
        ratio: The share to zero (unstructured); 2:4 zeroes a half whatever it is.
        tokens: ``(windows, length)`` calibration tokens (calibrated criteria).
        progress: Called with the fraction of layers done.

    Returns:
        The manifest's ``sparsity`` record: criterion, pattern, the share asked, weights and
        zeros in the sparsified layers, the layers, and the 2:4 linears' shapes.
    """
    share = sparsity_share(pattern, ratio)
    layers = list(adapter.decoder_layers(model))
    names = {id(module): name for name, module in model.named_modules()}
    check_modules(
        [(names[id(m)], m) for i in sorted(sparsified_layers) for m in targets(layers[i])], pattern
    )
    calibrated = criterion in CALIBRATED
    if calibrated and tokens is None:
        raise ValueError(f"{criterion} needs calibration tokens")
    was_training = model.training
    model.eval()
    weights = zeros = 0
    with torch.no_grad():
        calls = _first_layer_calls(model, layers[0], tokens) if calibrated else []
        for index, layer in enumerate(layers):
            modules = targets(layer) if index in sparsified_layers else []
            stats = {id(m): Statistics(m, criterion) for m in modules} if calibrated else {}
            handles = [
                m.register_forward_hook(
                    lambda module, inputs, output, stats=stats: stats[id(module)].add(inputs[0])
                )
                for m in modules
                if calibrated
            ]
            try:
                for call in calls if modules else []:
                    _run_layer(layer, call)
            finally:
                for handle in handles:
                    handle.remove()
            for module in modules:
                weights += module.weight.numel()
                zeros += sparsify_linear(module, criterion, pattern, share, stats.get(id(module)))
            calls = [_with_hidden(call, _run_layer(layer, call)) for call in calls]
            progress((index + 1) / len(layers))
    model.train(was_training)
    return {
        "criterion": criterion,
        "pattern": pattern,
        "share": share,
        "weights": weights,
        "zeroed": zeros,
        "achieved_share": zeros / weights if weights else 0.0,
        "layers": sorted(sparsified_layers),
        "comparison_group": _GROUP_WORDS[pattern if pattern == SEMI_STRUCTURED else criterion],
        "calibration_windows": int(tokens.shape[0]) if calibrated and tokens is not None else 0,
    }


_GROUP_WORDS = {
    SEMI_STRUCTURED: "each group of 4 consecutive input weights of a row",
    "magnitude": "each output row",
    "wanda": "each output row",
    "sparsegpt": f"each block of {BLOCK} input columns over all rows",
}


def zeroed_weights(modules: Sequence[nn.Module]) -> int:
    """Zero entries of the modules' linear weights."""
    return sum(
        int((m.weight == 0).sum())
        for m in modules
        if isinstance(m, nn.Linear) and m.weight.is_floating_point()
    )


def semi_structured_record(model: nn.Module, sequence_length: int) -> dict[str, Any]:
    """The MACs and weight shapes of the decoder linears that follow the 2:4 pattern."""
    linears = semi_structured_linears(model)
    return {
        "semi_structured_macs": sum(linear.macs(sequence_length) for linear in linears),
        "semi_structured_shapes": [list(linear.module.weight.shape) for linear in linears],
    }


def describe(criterion: str, pattern: str) -> str:
    """The sparsity's variant spelling: ``wanda``, ``sparsegpt-2:4``."""
    return criterion if pattern != SEMI_STRUCTURED else f"{criterion}-{pattern}"


def expected_share(structural: float, sparsity: float) -> float:
    """The total share removed or zeroed: the structure's, then the sparsity's of what is left."""
    return 1.0 - (1.0 - structural) * (1.0 - sparsity)


def structural_share(total: float, sparsity: float) -> float:
    """The structural share that, followed by ``sparsity``, reaches ``total``."""
    return 1.0 - (1.0 - total) / (1.0 - sparsity) if sparsity < 1 else math.nan
