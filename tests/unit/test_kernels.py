"""Kernel paths: what a checkpoint's zeroed weights can save on a device, recorded and explained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from eval_service.profile import ProfileConfig, run_profile
from greenprune.api.common.v1.kernels_pb2 import KernelPath
from greenprune.core import findings, kernels
from greenprune.core.architectures import adapter_for
from pruning_service import measure, sparsity
from results_app import frames
from results_service.store import ResultsStore
from tests import samples


def _model(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(config).eval()


def _two_four(model: nn.Module) -> dict[str, Any]:
    """Zeroes 2 of every 4 weights of every decoder linear; returns the manifest's figures."""
    adapter = adapter_for(model.config)
    length = 32
    macs = measure.count_macs(model, length)
    record = sparsity.sparsify(
        model,
        adapter,
        targets=lambda layer: [
            *adapter.attention_projections(layer),
            *adapter.mlp_projections(layer),
        ],
        sparsified_layers={0, 1},
        criterion="magnitude",
        pattern="2:4",
        ratio=0.5,
        tokens=None,
    )
    return {
        "macs_before": macs,
        "macs_after": macs,
        "macs_sequence_length": length,
        "dtype": "float32",
        "zeroed_parameters": record["zeroed"],
        **sparsity.semi_structured_record(model, length),
    }


def test_a_two_four_checkpoint_runs_dense_on_the_cpu_and_skips_half_its_linears_on_cuda() -> None:
    model = _model()
    manifest = _two_four(model)
    linears = kernels.semi_structured_linears(model)
    assert len(linears) == 2 * 7  # q, k, v, o, gate, up, down of both layers
    cpu = kernels.predicted_path(manifest, "cpu")
    assert (cpu.device, cpu.name, cpu.macs_skipped_share) == ("cpu", "dense float32", 0.0)
    assert cpu.expectation == findings.NO_SAVING
    cuda = kernels.predicted_path(manifest, "cuda:0")
    assert cuda.name.startswith("semi-structured 2:4 sparse")
    expected = 0.5 * manifest["semi_structured_macs"] / manifest["macs_before"]
    assert cuda.macs_skipped_share == pytest.approx(expected)
    assert 0 < cuda.macs_skipped_share < 0.5  # attention scores and the LM head stay dense
    prepared = kernels.prepare(model, manifest, "cpu")
    assert prepared == cpu
    assert all(type(linear.module.weight) is nn.Parameter for linear in linears)


def test_smaller_shapes_skip_work_on_any_device_and_quantized_weights_skip_none() -> None:
    width = {"macs_before": 1000, "macs_after": 700, "dtype": "float32", "achieved_ratio": 0.3}
    for device in ("cpu", "cuda"):
        path = kernels.predicted_path(width, device)
        assert path.macs_skipped_share == pytest.approx(0.3)
        assert path.expectation.startswith("up to 30.0% less work")
    quantized = {"macs_before": 1000, "macs_after": 1000, "quantization": {"name": "int8"}}
    path = kernels.predicted_path(quantized, "cpu")
    assert (path.name, path.macs_skipped_share) == ("torchao int8 weight-only", 0.0)
    assert path.expectation.startswith(findings.NO_SAVING)


def test_every_profile_window_records_the_kernel_path_its_model_ran_on(tmp_path: Path) -> None:
    paths = [
        KernelPath(device="cpu", name="dense float32"),
        KernelPath(device="cpu", name="dense float32", macs_skipped_share=0.25),
    ]
    config = ProfileConfig(
        checkpoint_ids=("a", "b"),
        batch_sizes=(1,),
        prefill_tokens=16,
        decode_tokens=2,
        rounds=2,
        window_seconds=0.05,
        device="cpu",
        idle_seconds=0.0,
        seed=0,
    )
    result = run_profile(
        [_model(), _model(1)],
        config,
        workdir=tmp_path,
        progress=lambda *_: None,
        kernel_paths=paths,
    )
    by_checkpoint = {(p.checkpoint_id, p.kernel_path, p.macs_skipped_share) for p in result.points}
    assert by_checkpoint == {("a", "dense float32", 0.0), ("b", "dense float32", 0.25)}


def test_realization_ratio_and_kernel_note() -> None:
    assert findings.realization_ratio(-0.2, 0.4) == pytest.approx(0.5)
    assert findings.realization_ratio(-0.2, 0.0) is None
    dense = findings.kernel_note("dense float32", 0.0, 0.5, verdict="equivalent")
    assert findings.NO_SAVING in dense and dense.endswith("equivalent (as expected)")
    surprise = findings.kernel_note("dense float32", 0.0, 0.5, verdict="lower")
    assert surprise.endswith("lower, not from skipped work")
    unsure = findings.kernel_note("dense float32", 0.4, 0.0, verdict="inconclusive", estimate=-0.1)
    assert unsure.endswith("skips 40% of the baseline's MACs; measured: inconclusive")
    realized = findings.kernel_note("dense float32", 0.4, 0.0, verdict="lower", estimate=-0.1)
    assert realized.endswith("the measured saving realizes 25% of it")


def test_the_findings_say_a_zeroed_checkpoint_on_dense_kernels_saves_nothing(
    tmp_path: Path,
) -> None:
    with ResultsStore(tmp_path / "k.duckdb") as store:
        for checkpoint, family, ratio in (("base", "baseline", 0.0), ("s", "wanda-2:4", 0.0)):
            run = samples.prune_run(
                f"prune-{checkpoint}", model="m", ratio=ratio, checkpoint_id=checkpoint
            )
            run.result.method_family = family
            run.result.zeroed_share = 0.5 if checkpoint == "s" else 0.0
            store.record_prune_run(run)
        profile = samples.profile_run(
            "profile-1", model="m", costs={"base": 1e-3, "s": 1e-3}, batch_sizes=(8,)
        )
        for point in profile.result.points:
            point.kernel_path = "dense float32"
        store.record_profile_run(profile)
        table = store.query_view("findings").to_pandas()
        profile_view = store.query_view("profile").to_pandas()
    energy = table[(table["kind"] == "energy") & (table["checkpoint_id"] == "s")]
    assert len(energy) and set(energy["kernel_path"]) == {"dense float32"}
    assert energy["realization_ratio"].isna().all()
    for note, verdict in zip(energy["kernel_note"], energy["verdict"], strict=True):
        assert findings.NO_SAVING in note
        assert note.endswith("(as expected)") == (verdict not in ("lower", "higher")), note
    assert set(profile_view["kernel_path"]) == {"dense float32"}
    rows = frames.kernel_rows(table)  # what the app's overview warns about
    assert [label.split("[")[1][:1] for label in frames.dense_zeroed(rows)] == ["s"]
