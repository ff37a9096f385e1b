"""The steady-state energy profile: interleaved rounds, and differences that hold up."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from eval_service.profile import ProfileConfig, round_orders, run_profile
from greenprune.core.stats import measurable, paired_ratio_change
from pruning_service import measure


def _model(intermediate: int, seed: int = 0, hidden: int = 256) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=2,
        head_dim=hidden // 8,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(config).eval()


def _config(ids: tuple[str, ...], batch_sizes: tuple[int, ...], rounds: int = 5) -> ProfileConfig:
    return ProfileConfig(
        checkpoint_ids=ids,
        batch_sizes=batch_sizes,
        prefill_tokens=64,
        decode_tokens=4,
        rounds=rounds,
        window_seconds=0.3,
        device="cpu",
        idle_seconds=0.0,
        seed=7,
    )


def _j_per_token(result, checkpoint: str, phase: str, batch: int) -> list[float]:
    points = sorted(
        (
            p
            for p in result.points
            if (p.checkpoint_id, p.phase, p.batch_size) == (checkpoint, phase, batch)
        ),
        key=lambda p: p.round,
    )
    return [p.gross_joules / p.tokens for p in points]


def test_rounds_visit_every_configuration_once_in_a_seeded_order() -> None:
    orders = round_orders(3, 6, seed=1)
    assert all(sorted(order) == [0, 1, 2] for order in orders)
    assert orders == round_orders(3, 6, seed=1)
    assert len({tuple(o) for o in orders}) > 1  # shuffled, not one fixed order


def test_every_window_is_recorded_with_its_round_and_place(tmp_path: Path) -> None:
    models = [_model(256), _model(256, seed=1)]
    result = run_profile(
        models, _config(("a", "b"), (1, 4), rounds=2), workdir=tmp_path, progress=lambda *_: None
    )
    assert len(result.points) == 2 * 2 * 2 * 2  # checkpoints x phases x batches x rounds
    for point in result.points:
        assert point.tokens > 0 and point.wall_seconds > 0 and point.iterations >= 1
        assert point.gross_joules > 0
    decode = [p for p in result.points if p.phase == "decode"]
    assert all(p.tokens == p.iterations * p.batch_size * 4 for p in decode)
    assert result.energy_method and result.hardware


@pytest.mark.slow
def test_a_copy_of_the_same_model_shows_no_measurable_change(tmp_path: Path) -> None:
    model = _model(512)
    result = run_profile(
        [model, model],
        _config(("a", "b"), (8,), rounds=6),
        workdir=tmp_path,
        progress=lambda *_: None,
    )
    change = paired_ratio_change(
        _j_per_token(result, "a", "prefill", 8), _j_per_token(result, "b", "prefill", 8)
    )
    assert change.low <= 0.0 <= change.high, change
    assert not measurable(change)


@pytest.mark.slow
def test_twice_the_arithmetic_costs_about_twice_the_energy_per_token(tmp_path: Path) -> None:
    # Same family, a wider MLP: 2.0x the MACs per token (measured below, not assumed).
    narrow, wide = _model(512, hidden=512), _model(1536, hidden=512)
    macs = [measure.count_macs(m, 64) for m in (narrow, wide)]
    assert 1.9 <= macs[1] / macs[0] <= 2.1
    result = run_profile(
        [narrow, wide],
        _config(("narrow", "wide"), (16,), rounds=5),
        workdir=tmp_path,
        progress=lambda *_: None,
    )
    change = paired_ratio_change(
        _j_per_token(result, "narrow", "prefill", 16), _j_per_token(result, "wide", "prefill", 16)
    )
    assert measurable(change)
    assert 0.6 <= change.median <= 1.4, change
