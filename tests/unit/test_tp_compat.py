"""The torch-pruning infinite-loop workaround (pruning_service.tp_compat)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch_pruning as tp
from torch_pruning.dependency import graph as tp_graph
from torch_pruning.dependency import index_mapping
from transformers import LlamaConfig, LlamaForCausalLM

from pruning_service import tp_compat


def tiny_llama(attention: str) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
    )
    config._attn_implementation = attention
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore:Unwrapped parameters detected")
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_pruning_group_of_llama_traced_with_kv_cache_returns(attention: str) -> None:
    tp_compat.install()
    model = tiny_llama(attention)
    graph = tp.DependencyGraph().build_dependency(
        model,
        example_inputs=torch.arange(6).unsqueeze(0),
        forward_fn=lambda m, x: m(input_ids=x, use_cache=True).logits,
    )
    attention_module = model.model.layers[0].self_attn
    group = graph.get_pruning_group(
        attention_module.q_proj, tp.prune_linear_out_channels, idxs=list(range(8))
    )
    targets = {dep.target.module for dep, _ in group}
    assert attention_module.q_proj in targets and attention_module.o_proj in targets


class _GroupGrowsWithoutBound(Exception):
    """Raised once a pruning group has taken more dependencies than a finite one could."""


def _dependencies_added(model: LlamaForCausalLM, limit: int, monkeypatch) -> int:  # noqa: ANN001
    """How many dependencies ``get_pruning_group`` adds for one q_proj (stops at ``limit``)."""
    graph = tp.DependencyGraph().build_dependency(
        model,
        example_inputs=torch.arange(6).unsqueeze(0),
        forward_fn=lambda m, x: m(input_ids=x, use_cache=True).logits,  # the concat that loops
    )
    added = {"count": 0}
    original = tp_graph.Group.add_dep

    def counted(group, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        added["count"] += 1
        if added["count"] >= limit:
            raise _GroupGrowsWithoutBound
        return original(group, *args, **kwargs)

    monkeypatch.setattr(tp_graph.Group, "add_dep", counted)
    q_proj = model.model.layers[0].self_attn.q_proj
    try:
        graph.get_pruning_group(q_proj, tp.prune_linear_out_channels, idxs=list(range(8)))
    except _GroupGrowsWithoutBound:
        pass
    finally:
        monkeypatch.setattr(tp_graph.Group, "add_dep", original)
    return added["count"]


@pytest.mark.filterwarnings("ignore:Unwrapped parameters detected")
def test_without_the_workaround_torch_pruning_still_loops(monkeypatch) -> None:  # noqa: ANN001
    """Documents the upstream bug: when this fails, tp_compat may no longer be needed.

    Counted, not timed: with the workaround the group of one q_proj is complete after a fixed
    number of dependencies; without it the traversal keeps adding dependencies past ten
    times that number (it never ends; the count stops it).
    """
    tp_compat.install()
    finite = _dependencies_added(tiny_llama("eager"), 10_000, monkeypatch)
    assert 0 < finite < 10_000
    tp_compat.uninstall()
    try:
        limit = 10 * finite
        assert _dependencies_added(tiny_llama("eager"), limit, monkeypatch) == limit
    finally:
        tp_compat.install()


def test_negative_cat_axis_is_recognised_as_wrapped() -> None:
    left = torch.zeros(2, 3, requires_grad=True)
    last_axis = torch.cat([left, left], dim=-1)
    first_axis = torch.cat([left, left], dim=1)
    assert tp_compat.saved_dim_is_wrapped_negative(SimpleNamespace(grad_fn=last_axis.grad_fn))
    assert not tp_compat.saved_dim_is_wrapped_negative(SimpleNamespace(grad_fn=first_axis.grad_fn))
    assert not tp_compat.saved_dim_is_wrapped_negative(SimpleNamespace(grad_fn=None))


def test_install_is_idempotent_and_reversible() -> None:
    tp_compat.uninstall()
    original = index_mapping.update_concat_index_mapping
    assert not tp_compat.is_installed()
    tp_compat.install()
    tp_compat.install()
    patched = index_mapping.update_concat_index_mapping
    assert tp_compat.is_installed() and patched is not original
    assert patched.greenprune_original is original
    tp_compat.uninstall()
    assert index_mapping.update_concat_index_mapping is original
    tp_compat.install()
