"""Planning layer shapes so that removed parameters match the target ratio."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenprune.core.architectures import LayerGeometry, LayerShape
from greenprune.core.errors import InvalidArgumentError
from pruning_service.planning import RATIO_TOLERANCE, head_layouts, mlp_widths, plan_layer


def geometry(
    heads: int = 8, kv_heads: int = 2, head_dim: int = 32, hidden: int = 256, mlp: int = 512
) -> LayerGeometry:
    return LayerGeometry(
        hidden_size=hidden,
        shape=LayerShape(heads, kv_heads, head_dim, mlp),
        attention_bias=(False, False, False, False),
        mlp_bias=(False, False, False),
    )


@st.composite
def layers(draw: st.DrawFn, realistic: bool = False) -> LayerGeometry:
    """Layer geometries, optionally realistic.

    Realistic ones have MLP >= 2x a hidden size that their heads span, and >= 8 heads, >= 4
    per key/value head (a 4-head layer cannot shed 89%: one head is always kept).
    """
    kv_heads = draw(st.integers(1, 8))
    groups = draw(st.integers(1, 8))
    heads = kv_heads * groups
    head_dim = draw(st.sampled_from([32, 64, 128] if realistic else [8, 16, 64, 128]))
    if realistic:
        heads = max(heads, 4 * kv_heads, 8)
        hidden = heads * head_dim
        mlp = draw(st.integers(2 * hidden, 4 * hidden))
    else:
        hidden = draw(st.sampled_from([64, 256, 1024, 4096]))
        mlp = draw(st.integers(16, 4 * hidden))
    bias = draw(st.booleans())
    return LayerGeometry(
        hidden_size=hidden,
        shape=LayerShape(heads, kv_heads, head_dim, mlp),
        attention_bias=(bias, bias, bias, False),
        mlp_bias=(False, False, False),
    )


@settings(max_examples=200, deadline=None)
@given(layer=layers(realistic=True), ratio=st.floats(0.0, 0.89), round_to=st.sampled_from([1, 8]))
def test_heads_and_mlp_together_land_within_tolerance_on_realistic_layers(
    layer: LayerGeometry, ratio: float, round_to: int
) -> None:
    plan = plan_layer(layer, ratio, attention=True, mlp=True, round_to=round_to)
    assert abs(plan.ratio - ratio) <= RATIO_TOLERANCE
    kept = plan.shape
    assert kept.attention_heads % kept.key_value_heads == 0
    assert kept.key_value_heads >= 1 and kept.intermediate_size >= 1
    assert kept.intermediate_size == layer.shape.intermediate_size or (
        kept.intermediate_size % round_to == 0
    )


@settings(max_examples=200, deadline=None)
@given(layer=layers(), ratio=st.floats(0.0, 0.89), mlp=st.booleans())
def test_any_layer_either_lands_within_tolerance_or_is_refused(
    layer: LayerGeometry, ratio: float, mlp: bool
) -> None:
    try:
        plan = plan_layer(layer, ratio, attention=True, mlp=mlp)
    except InvalidArgumentError as error:
        assert error.field == "spec.ratio" and "allowed ratios" in error.message
    else:
        assert abs(plan.ratio - ratio) <= RATIO_TOLERANCE
        if not mlp:
            assert plan.shape.intermediate_size == layer.shape.intermediate_size


def test_plan_prefers_even_spread_and_keeping_key_value_heads() -> None:
    plan = plan_layer(geometry(), 0.2, attention=True, mlp=True)
    assert (plan.shape.attention_heads, plan.shape.key_value_heads) == (6, 2)


def test_zero_ratio_keeps_everything() -> None:
    plan = plan_layer(geometry(), 0.0, attention=True, mlp=True)
    assert plan.shape == geometry().shape and plan.ratio == 0.0


def test_forbidden_layouts_are_not_planned() -> None:
    def powers_of_two(heads: int, kv_heads: int) -> bool:
        return heads & (heads - 1) == 0

    plan = plan_layer(geometry(), 0.2, attention=True, mlp=True, layout_allowed=powers_of_two)
    assert plan.shape.attention_heads in {1, 2, 4, 8}
    assert abs(plan.ratio - 0.2) <= RATIO_TOLERANCE


def test_layouts_and_widths() -> None:
    assert len(head_layouts(LayerShape(8, 2, 32, 512))) == 2 * 4
    assert mlp_widths(20, 8) == [8, 16, 20]


def test_refusal_lists_reachable_ratios() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        plan_layer(geometry(), 0.1, attention=True, mlp=False)
    assert "0.2" in caught.value.message and "0.4" in caught.value.message
