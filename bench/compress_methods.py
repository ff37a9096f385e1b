"""Depth pruning and weight-only quantization next to width pruning, on a ~200M-parameter Llama.

In one run, on a random-initialised Llama saved under a temporary models root:

1. prune time: depth pruning (block influence on calibration text) against width pruning
   (magnitude) at the same ratio, each through ``run_prune`` (load, score, cut, save).
2. load time: the depth checkpoint (uniform, plain ``from_pretrained`` via greenprune's
   loader) against ``from_pretrained`` of the original, each in a fresh process, median of
   ``--trials``.
3. int8 and int4 (torchao, CPU): bytes in memory of the whole model and of the quantized
   linear weights against fp32, and J/token against fp32 at the profile's largest batch
   (prefill, interleaved rounds of the eval service's energy profile).

4. weight sparsity: Wanda at 50 % (unstructured) and Wanda 2:4, prune time against width
   pruning's, and J/token against fp32 next to the saving their kernel path predicts on this
   CPU (none: dense kernels multiply the zeros), so the measured ratio should read about 1.

The energy workload is small (batch 1, 16 prompt tokens) because torchao's int4 CPU kernel
(``_weight_int4pack_mm_for_cpu``) ran 72 times slower than fp32 on a 1024 x 2816 projection on
this 2-core machine: at batch 32 x 64 tokens the step did not finish in 19 minutes; at batch 1 x
16 the whole bench takes about 3.

Every figure is printed as a ratio. Quantization can cost energy on CPUs without fast int8 or
int4 kernels: the J/token ratio is the finding either way.

Run: ``python bench/compress_methods.py [--layers 18] [--hidden 1024] [--ratio 0.25] [--quick]
[--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.figures import Figure, add_arguments, parse, report  # noqa: E402
from bench.prune_overhead import build_model  # noqa: E402
from bench.services import run_code  # noqa: E402

_LOAD = """
import json, sys, time
path, how = sys.argv[1], sys.argv[2]
started = time.perf_counter()
if how == "greenprune":
    from greenprune.core.checkpoint import load_checkpoint
    load_checkpoint(path)
else:
    from transformers import AutoModelForCausalLM
    AutoModelForCausalLM.from_pretrained(path)
print(json.dumps(time.perf_counter() - started))
"""


def _load_seconds(path: Path, how: str, fresh: bool = True) -> float:
    """Seconds one fresh process spends loading ``path`` (imports excluded).

    With ``fresh`` False (quick mode) the same code runs in this process.
    """
    out = run_code(_LOAD, [str(path), how], fresh=fresh)
    return float(json.loads(out.strip().splitlines()[-1]))


def _prune(models_root: Path, checkpoints: Path, name: str, **fields: object) -> tuple[float, dict]:
    from pruning_service.pruner import CalibrationConfig, PruneConfig, run_prune

    calibration = CalibrationConfig(samples=8, sequence_length=128)
    config = PruneConfig(model="base", calibration=calibration, **fields)  # type: ignore[arg-type]
    started = time.perf_counter()
    outcome = run_prune(
        config, checkpoints_dir=checkpoints, checkpoint_id=name, models_root=models_root
    )
    return time.perf_counter() - started, outcome.manifest


def _joules_per_token(
    checkpoints: Path, names: list[str], args: argparse.Namespace
) -> dict[str, float]:
    """Median prefill J/token of each checkpoint, measured in interleaved rounds."""
    from eval_service.profile import ProfileConfig, run_profile
    from greenprune.core.checkpoint import load_checkpoint

    models = [load_checkpoint(checkpoints / name)[0] for name in names]
    config = ProfileConfig(
        checkpoint_ids=tuple(names),
        batch_sizes=(args.batch,),
        prefill_tokens=args.prefill_tokens,
        decode_tokens=4,
        rounds=args.rounds,
        window_seconds=args.window_seconds,
        device="cpu",
        idle_seconds=args.idle_seconds,
        seed=0,
    )
    with tempfile.TemporaryDirectory() as work:
        result = run_profile(models, config, workdir=Path(work), progress=lambda *_: None)
    per_token: dict[str, float] = {}
    for name in names:
        values = [
            p.net_joules / p.tokens
            for p in result.points
            if p.checkpoint_id == name and p.phase == "prefill" and p.tokens
        ]
        per_token[name] = statistics.median(values)
    return per_token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=18)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--ratio", type=float, default=0.25)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1, help="the profile's largest batch")
    parser.add_argument("--prefill-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window-seconds", type=float, default=1.0)
    parser.add_argument("--idle-seconds", type=float, default=2.0)
    parser.add_argument("--skip-energy", action="store_true")
    add_arguments(parser)
    quick = {"layers": 4, "hidden": 128, "trials": 1, "batch": 4, "prefill_tokens": 16,
             "rounds": 2, "window_seconds": 0.05, "idle_seconds": 0.0}  # fmt: skip
    args = parse(parser, quick)

    with tempfile.TemporaryDirectory() as folder:
        root, checkpoints = Path(folder) / "models", Path(folder) / "checkpoints"
        source, _ = build_model(root, args.hidden, args.layers)
        source.rename(root / "base")
        figures = _Figures()

        depth_s, depth = _prune(root, checkpoints, "depth", structure="depth", ratio=args.ratio)
        width_s, width = _prune(root, checkpoints, "width", method="magnitude-l2", ratio=args.ratio)
        print(
            f"model: {depth['parameters_before'] / 1e6:.0f}M parameters, {args.layers} layers",
            flush=True,
        )
        print(
            f"depth removed {len(depth['removed_layers'])} layers "
            f"({depth['achieved_ratio']:.3f} of prunable), width {width['achieved_ratio']:.3f}",
            flush=True,
        )
        figures["prune time, depth / width"] = depth_s / width_s

        fresh = not args.quick  # quick: the loads run in this process
        depth_load = [
            _load_seconds(checkpoints / "depth", "greenprune", fresh) for _ in range(args.trials)
        ]
        base_load = [_load_seconds(root / "base", "hf", fresh) for _ in range(args.trials)]
        figures["load time, depth checkpoint / original from_pretrained"] = statistics.median(
            depth_load
        ) / statistics.median(base_load)

        sparse = {}
        for name, fields in {
            "wanda": {"sparsity": "wanda", "sparsity_ratio": 0.5},
            "wanda-2:4": {"sparsity": "wanda", "sparsity_pattern": "2:4"},
        }.items():
            seconds, sparse[name] = _prune(
                root, checkpoints, name.replace(":", "-"), ratio=0.0, **fields
            )
            figures[f"prune time, {name} / width"] = seconds / width_s

        _, base = _prune(root, checkpoints, "fp32", ratio=0.0)
        quantized = {}
        for bits in ("int8", "int4"):
            _, quantized[bits] = _prune(root, checkpoints, bits, ratio=0.0, quantization=bits)
            record = quantized[bits]["quantization"]
            figures[f"{bits}: bytes in memory / fp32"] = (
                quantized[bits]["bytes_in_memory"] / base["bytes_in_memory"]
            )
            figures[f"{bits}: quantized linear weight bytes / fp32"] = (
                record["quantized_weight_bytes_after"] / record["quantized_weight_bytes_before"]
            )
            figures[f"{bits}: bytes on disk / fp32"] = (
                quantized[bits]["bytes_on_disk"] / base["bytes_on_disk"]
            )
        if not args.skip_energy:
            names = ["fp32", "int8", "int4", "wanda", "wanda-2-4"]
            joules = _joules_per_token(checkpoints, names, args)
            for bits in ("int8", "int4"):
                figures[f"{bits}: J/token / fp32 (prefill, batch {args.batch})"] = (
                    joules[bits] / joules["fp32"]
                )
            for name, manifest in sparse.items():
                predicted = manifest["cpu_kernel"]["macs_skipped_share"]
                measured = joules[name.replace(":", "-")] / joules["fp32"]
                figures[f"{name}: J/token / fp32 (predicted 1 - {predicted:.2f})"] = measured
    # Findings, not requirements: no target (quantization may cost energy on this CPU).
    found = [Figure(f"compress: {name}", value) for name, value in figures.items()]
    details = {"parameters": depth["parameters_before"], "layers": args.layers}
    report("compress_methods", found, args, details)


class _Figures(dict):
    """The ratios, each printed as soon as it is known (a long energy step may be cut short)."""

    def __setitem__(self, name: str, value: float) -> None:
        super().__setitem__(name, value)
        print(f"{name}: {value:.3f}", flush=True)


if __name__ == "__main__":
    main()
