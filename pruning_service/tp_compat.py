"""The one place where greenprune works around torch-pruning 1.6.1 on torch >= 2.13.

torch 2.13 stores the ``dim`` of ``torch.cat(..., dim=-1)`` and of ``split``/``chunk`` on a
negative axis as an unsigned 64-bit integer (``-1`` reads back as ``2**64 - 1``).
torch-pruning's index-mapping code only recognises "not the channel axis" for small values
(``dim != 1 and dim < MAX_VALID_DIM``), so a wrapped negative axis is taken for the channel
axis. On Llama-style models the KV-cache concat and RoPE's ``rotate_half`` then get concat
index mappings that feed back into each other, and ``DependencyGraph.get_pruning_group``
never returns (upstream issues VainF/Torch-Pruning#527 and #516).

The fix: skip the concat/split index mapping when the saved axis is a wrapped negative.
Negative axes in decoder models address the last (hidden or head) axis of 3-D/4-D
tensors, which torch-pruning already treats as "not the channel axis" when the value is
positive, so skipping keeps its own semantics. ``install`` is idempotent and process-wide;
:func:`pruning_service.pruner` calls it before building a dependency graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch_pruning.dependency import index_mapping

WRAPPED_NEGATIVE_DIM = 2**63
"""Saved axes at or above this value are negative axes stored as unsigned integers."""

_PATCHED_FUNCTIONS = ("update_concat_index_mapping", "update_split_index_mapping")


def saved_dim_is_wrapped_negative(node: Any) -> bool:
    """Tell whether a traced node's autograd function saved a negative axis as unsigned.

    Args:
        node: A torch-pruning graph node (anything with a ``grad_fn`` attribute).

    Returns:
        True when the node's ``grad_fn._saved_dim`` is a wrapped negative axis.
    """
    saved_dim = getattr(getattr(node, "grad_fn", None), "_saved_dim", None)
    return isinstance(saved_dim, int) and saved_dim >= WRAPPED_NEGATIVE_DIM


def _skip_wrapped_negative_dims(update: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    def guarded(graph: Any, node: Any) -> None:
        if saved_dim_is_wrapped_negative(node):
            return
        update(graph, node)

    guarded.greenprune_original = update  # type: ignore[attr-defined]
    guarded.__name__ = update.__name__
    return guarded


def is_installed() -> bool:
    """Tell whether the workaround is active in this process."""
    return all(
        hasattr(getattr(index_mapping, name), "greenprune_original") for name in _PATCHED_FUNCTIONS
    )


def install() -> None:
    """Guard torch-pruning's concat/split index mapping against wrapped negative axes."""
    for name in _PATCHED_FUNCTIONS:
        current = getattr(index_mapping, name)
        if not hasattr(current, "greenprune_original"):
            setattr(index_mapping, name, _skip_wrapped_negative_dims(current))


def uninstall() -> None:
    """Restore torch-pruning's original functions (used by the regression test)."""
    for name in _PATCHED_FUNCTIONS:
        current = getattr(index_mapping, name)
        original = getattr(current, "greenprune_original", None)
        if original is not None:
            setattr(index_mapping, name, original)
