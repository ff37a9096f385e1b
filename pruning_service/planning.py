"""How many heads and MLP channels each pruned layer keeps, so that parameters hit a ratio.

The target ratio is a fraction of the prunable *parameters*, not of channels. Heads are
coarse (a query head costs ``2 * hidden * head_dim`` parameters, a key/value head with its
query heads more), MLP channels are fine (``3 * hidden`` each), so the plan picks the head
layout closest to the target and lets the MLP width absorb the remainder, honouring
``round_to``. Key/value heads are pruned too where that is closer, so every layer keeps an
integral number of query heads per key/value head. A target no layout reaches within
:data:`RATIO_TOLERANCE` is refused with the ratios this model allows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from greenprune.core.architectures import LayerGeometry, LayerShape
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import MAX_RATIO

RATIO_TOLERANCE = 0.03
"""Largest accepted gap (absolute, over prunable parameters) between target and result."""

_GOOD_ENOUGH = 0.005
"""Layouts this close to the target are ranked by how evenly they spread the pruning."""

_LISTED_RATIOS = 24


@dataclass(frozen=True)
class LayerPlan:
    """What every pruned layer keeps.

    Attributes:
        shape: The pruned layer's shape.
        prunable_before: Prunable parameters of one layer before pruning.
        prunable_after: Prunable parameters of one layer after pruning.
    """

    shape: LayerShape
    prunable_before: int
    prunable_after: int

    @property
    def ratio(self) -> float:
        """The fraction of prunable parameters this plan removes."""
        return 1.0 - self.prunable_after / self.prunable_before


def prunable_parameters(
    geometry: LayerGeometry, shape: LayerShape, *, attention: bool, mlp: bool
) -> int:
    """Parameters of one layer that the spec allows to prune, at a given shape."""
    total = 0
    if attention:
        total += geometry.attention_parameters(shape.attention_heads, shape.key_value_heads)
    if mlp:
        total += geometry.mlp_parameters(shape.intermediate_size)
    return total


def head_layouts(shape: LayerShape) -> list[tuple[int, int]]:
    """Every ``(key_value_heads, query heads per key/value head)`` a layer can keep."""
    return [
        (key_value_heads, groups)
        for key_value_heads in range(1, shape.key_value_heads + 1)
        for groups in range(1, shape.key_value_groups + 1)
    ]


def mlp_widths(intermediate_size: int, round_to: int) -> list[int]:
    """MLP widths a layer can keep: the original or a positive multiple of ``round_to``."""
    widths = set(range(round_to, intermediate_size + 1, round_to))
    widths.add(intermediate_size)
    return sorted(widths)


def plan_layer(
    geometry: LayerGeometry,
    ratio: float,
    *,
    attention: bool,
    mlp: bool,
    round_to: int = 1,
    layout_allowed: Callable[[int, int], bool] | None = None,
) -> LayerPlan:
    """Chooses the shape of every pruned layer for a target parameter ratio.

    Args:
        geometry: The (unpruned) layer's geometry.
        ratio: Target fraction of prunable parameters to remove, ``0 <= ratio < 1``.
        attention: Whether attention heads may be pruned.
        mlp: Whether MLP channels may be pruned.
        round_to: The kept MLP width is a multiple of this (or unchanged).
        layout_allowed: Tells whether ``(query heads, key/value heads)`` may be kept (for
            example, whether the architecture's config accepts the count); all if None.

    Returns:
        The plan whose removed fraction is closest to ``ratio``; among layouts within
        half a percent, the one whose attention fraction is closest to ``ratio`` and then
        the one keeping more key/value heads.

    Raises:
        InvalidArgumentError: ``spec.ratio`` cannot be reached within
            :data:`RATIO_TOLERANCE`; the message lists the reachable ratios.
    """
    original = geometry.shape
    before = prunable_parameters(geometry, original, attention=attention, mlp=mlp)
    if ratio <= 0.0 or before == 0:
        return LayerPlan(original, before, before)
    candidates = _candidates(
        geometry,
        ratio,
        attention=attention,
        mlp=mlp,
        round_to=round_to,
        layout_allowed=layout_allowed,
    )
    attention_before = geometry.attention_parameters(
        original.attention_heads, original.key_value_heads
    )

    def rank(plan: LayerPlan) -> tuple[bool, float, int, float]:
        error = abs(plan.ratio - ratio)
        kept_attention = geometry.attention_parameters(
            plan.shape.attention_heads, plan.shape.key_value_heads
        )
        attention_ratio = 1.0 - kept_attention / attention_before
        spread = abs(attention_ratio - ratio) if attention and mlp else 0.0
        return (error > _GOOD_ENOUGH, spread, -plan.shape.key_value_heads, error)

    best = min(candidates, key=rank)
    if abs(best.ratio - ratio) > RATIO_TOLERANCE:
        reachable = _describe_ratios(
            geometry, attention=attention, mlp=mlp, round_to=round_to, layout_allowed=layout_allowed
        )
        raise InvalidArgumentError(
            "spec.ratio",
            f"{ratio:g} cannot be reached within {RATIO_TOLERANCE:g} on this model ({reachable})",
        )
    return best


def _allowed_layouts(
    shape: LayerShape, attention: bool, layout_allowed: Callable[[int, int], bool] | None
) -> list[tuple[int, int]]:
    original = (shape.key_value_heads, shape.key_value_groups)
    if not attention:
        return [original]
    return [
        (kv_heads, groups)
        for kv_heads, groups in head_layouts(shape)
        if (kv_heads, groups) == original
        or layout_allowed is None
        or layout_allowed(kv_heads * groups, kv_heads)
    ]


def _plan(
    geometry: LayerGeometry, layout: tuple[int, int], width: int, *, attention: bool, mlp: bool
) -> LayerPlan:
    key_value_heads, groups = layout
    original = geometry.shape
    shape = LayerShape(key_value_heads * groups, key_value_heads, original.head_dim, width)
    before = prunable_parameters(geometry, original, attention=attention, mlp=mlp)
    return LayerPlan(
        shape, before, prunable_parameters(geometry, shape, attention=attention, mlp=mlp)
    )


def _candidates(
    geometry: LayerGeometry,
    ratio: float,
    *,
    attention: bool,
    mlp: bool,
    round_to: int,
    layout_allowed: Callable[[int, int], bool] | None,
) -> list[LayerPlan]:
    """Each allowed head layout with the MLP widths nearest to what the ratio asks of it.

    MLP parameters grow linearly with the width, so for a layout the ideal width follows
    from the parameters left to remove; only the allowed widths either side of it (and the
    unpruned width) can be best.
    """
    original = geometry.shape
    full = original.intermediate_size
    before = prunable_parameters(geometry, original, attention=attention, mlp=mlp)
    per_channel = geometry.mlp_parameters(1) - geometry.mlp_parameters(0)
    fixed = geometry.mlp_parameters(0)
    plans = []
    for layout in _allowed_layouts(original, attention, layout_allowed):
        widths = {full}
        if mlp:
            attention_after = (
                geometry.attention_parameters(layout[0] * layout[1], layout[0]) if attention else 0
            )
            ideal = (before * (1.0 - ratio) - attention_after - fixed) / per_channel
            below = max(round_to, min(full, int(ideal // round_to) * round_to))
            widths |= {below, min(full, below + round_to)}
            widths = {w for w in widths if w == full or w % round_to == 0}
        plans.extend(_plan(geometry, layout, w, attention=attention, mlp=mlp) for w in widths)
    return plans


def _describe_ratios(
    geometry: LayerGeometry,
    *,
    attention: bool,
    mlp: bool,
    round_to: int,
    layout_allowed: Callable[[int, int], bool] | None,
) -> str:
    layouts = _allowed_layouts(geometry.shape, attention, layout_allowed)
    full = geometry.shape.intermediate_size
    widths = mlp_widths(full, round_to) if mlp else [full]
    if len(layouts) * len(widths) > 20_000:
        widths = widths[:: max(1, len(widths) // 2000)] + [full]
    ratios = sorted(
        {
            round(_plan(geometry, layout, width, attention=attention, mlp=mlp).ratio, 3)
            for layout in layouts
            for width in widths
        }
    )
    ratios = [r for r in ratios if r < MAX_RATIO]
    if len(ratios) <= _LISTED_RATIOS:
        return "allowed ratios: " + ", ".join(f"{r:g}" for r in ratios)
    widest_gap = max(b - a for a, b in zip(ratios, ratios[1:], strict=False))
    return f"allowed ratios: {ratios[0]:g} to {ratios[-1]:g} in steps of at most {widest_gap:.3f}"
