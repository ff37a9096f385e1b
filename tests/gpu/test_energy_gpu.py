"""GPU energy through NVML: the meter and a whole evaluation on CUDA (skipped without CUDA)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def _tokenizer(words: list[str]) -> Any:
    """A small byte-level BPE tokenizer (no reference model build on the GPU machine)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [f"the {a} {b} is {c}" for a in words for b in words for c in words]
    bpe.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def _random_llama(vocab_size: int) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


def _matmuls(seconds: float) -> int:
    a = torch.randn(4096, 4096, device="cuda:0")
    count, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize(0)
        count += 1
    return count


def test_gpu_window_is_measured_with_nvml(tmp_path: Path) -> None:
    from greenprune.core.energy.meter import EnergyMeter
    from greenprune.core.energy.readings import summarize

    meter = EnergyMeter("cuda:0", tmp_path)
    meter.measure_idle(1.0)
    readings = []
    for _ in range(2):
        with meter.window() as reading:
            _matmuls(1.5)
        readings.append(reading)
    gpu = next(c for c in meter.components if c.component == "gpu")
    assert (gpu.method, gpu.estimated) == ("nvml", False)
    assert meter.headline_component == "gpu"
    assert meter.idle_watts["gpu"] > 0
    report = summarize(readings, meter, tokens=1000, samples=10)
    assert report.headline_component == "gpu" and report.estimated is False
    assert report.gross_joules.median > 0
    # Back-to-back 4096^2 matmuls draw well above idle power on any datacenter GPU.
    assert 0 < report.net_joules.median <= report.gross_joules.median
    assert report.peak_cuda_bytes >= 3 * 4096 * 4096 * 4
    assert report.device_name == torch.cuda.get_device_name(0)
    assert "gpu: nvml" in report.hardware
    assert isinstance(report.gpu_shared, bool)


def test_evaluation_on_cuda_reports_gpu_energy(tmp_path: Path) -> None:
    from lm_eval.tasks import TaskManager

    from eval_service.evaluator import EvalConfig, run_eval
    from tests.unit.test_evaluator import WORDS, _write_task

    tokenizer = _tokenizer(WORDS)
    model = _random_llama(len(tokenizer))
    _write_task(tmp_path, "gp_gpu_mc", docs=200, words=40)
    manager = TaskManager(include_path=str(tmp_path), include_defaults=False)
    config = EvalConfig(tasks=("gp_gpu_mc",), batch_size=16, device="auto", repeats=2)
    (outcome,) = run_eval(model, tokenizer, config, task_manager=manager, workdir=tmp_path / "w")
    energy = outcome.energy
    assert energy.headline_component == "gpu"
    gpu = next(c for c in energy.components if c.component == "gpu")
    assert gpu.method == "nvml" and gpu.gross_joules.median > 0
    assert energy.peak_cuda_bytes > 0 and energy.tokens > 0 and outcome.samples == 200
    assert next(m for m in outcome.metrics if m.metric == "acc").samples == 200


def test_profile_on_cuda_reads_nvml_with_cpu_time_beside_it(tmp_path: Path) -> None:
    from eval_service.profile import ProfileConfig, run_profile

    model = _random_llama(128).to("cuda:0")
    config = ProfileConfig(
        checkpoint_ids=("a", "b"),
        batch_sizes=(8,),
        prefill_tokens=64,
        decode_tokens=4,
        rounds=2,
        window_seconds=0.5,
        device="cuda:0",
        idle_seconds=0.5,
        seed=0,
    )
    result = run_profile([model, model], config, workdir=tmp_path, progress=lambda *_: None)
    assert (result.energy_method, result.estimated) == ("nvml", False)
    assert result.threads == 0  # torch's own threads: the GPU does the work
    for point in result.points:
        assert point.gross_joules > 0 and point.cpu_seconds > 0  # the check beside the counter
    assert "other processes before measuring" in result.hardware
