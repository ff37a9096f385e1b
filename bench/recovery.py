"""Recovery fine-tuning overhead and memory, on the demo's pruned reference checkpoint.

In one run: the reference model pruned at 0.4 (Taylor, first and last layer kept) is tuned with
LoRA for ``--steps`` steps of ``--batch`` x ``--length`` tokens, alternately

1. service: ``pruning_service.recovery.recover_checkpoint``, the stage a prune job with a
   ``recovery`` spec runs in its job process (load, text, metered tune, merge, save), timed by
   the steps/s of its tune loop; and
2. direct: a plain peft loop (``get_peft_model``, AdamW, ``merge_and_unload``) on the same
   checkpoint and the same token windows.

Each trial is a fresh process (so peak RSS is its own), the two kinds alternating. Reports the
median and the best steps/s of each, their ratios (target <= 1.10, direct / service; on a
shared machine the best trials are the least disturbed) and the service's peak RSS against the
bytes of the checkpoint's weights. ``--quick`` prunes with a small calibration and runs its one
trial of each kind in the bench's own process.

Run: ``python bench/recovery.py [--steps 40] [--trials 3] [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.figures import Figure, add_arguments, at_most, parse, report  # noqa: E402
from bench.services import run_python  # noqa: E402

TARGET = at_most(1.10)


def _child(kind: str, checkpoint: Path, steps: int, batch: int, length: int) -> dict:
    import torch

    from greenprune.core.checkpoint import load_checkpoint
    from pruning_service import recovery

    config = recovery.RecoveryConfig(steps=steps, batch_size=batch, sequence_length=length)
    work = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    times: list[float] = []

    def tick(stage: str, fraction: float) -> None:
        if stage.startswith("recovering step"):
            times.append(time.perf_counter())

    if kind == "service":
        from greenprune.api.pruning.v1.pruning_pb2 import PruneResult
        from greenprune.core.energy.meter import EnergyMeter

        recovery.recover_checkpoint(
            checkpoint,
            config,
            PruneResult(),
            meter=EnergyMeter(device="cpu", workdir=work),
            checkpoints_dir=work / "checkpoints",
            checkpoint_id="recovered",
            models_root=work,
            progress=tick,
        )
    else:
        from peft import LoraConfig, get_peft_model

        from greenprune.core.energy.cpu_time import measurement_threads

        # The service's tune runs inside its meter, with the meter's torch threads: so does this.
        torch.set_num_threads(measurement_threads("cpu"))
        model, tokenizer, _ = load_checkpoint(checkpoint)
        windows = recovery.training_windows(config, tokenizer, work)
        torch.manual_seed(config.seed)
        model.train()
        peft_model = get_peft_model(
            model,
            LoraConfig(
                r=config.rank,
                lora_alpha=config.alpha,
                target_modules=list(config.target_modules),
                lora_dropout=0.0,
                task_type="CAUSAL_LM",
            ),
        )
        optimizer = torch.optim.AdamW(
            [p for p in peft_model.parameters() if p.requires_grad], lr=config.learning_rate
        )
        times.append(time.perf_counter())
        for step in range(steps):
            start = (step * batch) % max(1, len(windows) - batch + 1)
            ids = windows[start : start + batch]
            peft_model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter())
        peft_model.merge_and_unload()
    shutil.rmtree(work, ignore_errors=True)
    # The service reports step 0 before its loop and every step after it, like the direct loop.
    return {
        "steps_per_second": (len(times) - 1) / (times[-1] - times[0]),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def _trials(home: Path, args: argparse.Namespace) -> tuple[dict[str, list[dict]], int]:
    """Prunes the reference model under ``home``, then runs the alternating child trials."""
    from pruning_service.pruner import CalibrationConfig, PruneConfig, run_prune

    # Quick: Taylor's gradients from a few short windows (the default calibration costs more
    # CPU than the rest of the quick run).
    few = {"calibration": CalibrationConfig(samples=4, sequence_length=32)} if args.quick else {}
    outcome = run_prune(
        PruneConfig(
            model="reference:tiny-llama",
            ratio=0.4,
            keep_first_layers=1,
            keep_last_layers=1,
            **few,
        ),
        checkpoints_dir=home / "checkpoints",
        checkpoint_id="pruned",
        models_root=home,
    )
    weight_bytes = sum(p.stat().st_size for p in outcome.path.glob("*.safetensors"))
    runs: dict[str, list[dict]] = {"service": [], "direct": []}
    for _ in range(args.trials):
        for kind in ("service", "direct"):
            if args.quick:  # the same trial in this process: no fresh torch import each
                runs[kind].append(_child(kind, outcome.path, args.steps, args.batch, args.length))
                continue
            command = [
                __file__,
                "--child",
                kind,
                "--checkpoint",
                str(outcome.path),
                "--steps",
                str(args.steps),
                "--batch",
                str(args.batch),
                "--length",
                str(args.length),
            ]
            runs[kind].append(json.loads(run_python(command).strip().splitlines()[-1]))
    return runs, weight_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--child", choices=("service", "direct"))
    parser.add_argument("--checkpoint", type=Path)
    add_arguments(parser)
    args = parse(parser, {"steps": 3, "batch": 2, "length": 32, "trials": 1})
    if args.child:
        result = _child(args.child, args.checkpoint, args.steps, args.batch, args.length)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="bench-recovery-home-") as folder:
        runs, weight_bytes = _trials(Path(folder), args)
    service = statistics.median(r["steps_per_second"] for r in runs["service"])
    direct = statistics.median(r["steps_per_second"] for r in runs["direct"])
    rss = statistics.median(r["peak_rss_bytes"] for r in runs["service"])
    best_service = max(r["steps_per_second"] for r in runs["service"])
    best_direct = max(r["steps_per_second"] for r in runs["direct"])
    summary = {
        "steps": args.steps,
        "tokens_per_step": args.batch * args.length,
        "trials": args.trials,
        "service_steps_per_second": round(service, 3),
        "direct_steps_per_second": round(direct, 3),
        "ratio_direct_over_service": round(direct / service, 3),
        # Other processes only ever slow a trial down: the fastest trial of each is the
        # figure least disturbed on a shared machine.
        "best_service_steps_per_second": round(best_service, 3),
        "best_direct_steps_per_second": round(best_direct, 3),
        "best_ratio_direct_over_service": round(best_direct / best_service, 3),
        "all_steps_per_second": {
            kind: [round(r["steps_per_second"], 3) for r in runs[kind]] for kind in runs
        },
        "target_ratio": 1.10,
        "service_peak_rss_bytes": rss,
        "weight_bytes": weight_bytes,
        "peak_rss_over_weights": round(rss / weight_bytes, 1),
        "note": "the tiny model's peak RSS is dominated by the Python, torch and peft runtime",
    }
    print(json.dumps(summary, indent=2))
    figures = [
        Figure("recovery: direct peft / service steps/s, best of trials",
               best_direct / best_service, TARGET),
        Figure("recovery: direct peft / service steps/s, median of trials", direct / service,
               TARGET),
        # No target: the tiny model's peak RSS is the Python, torch and peft runtime's.
        Figure("recovery: service peak RSS / weight bytes", rss / weight_bytes),
    ]  # fmt: skip
    report("recovery", figures, args, summary)


if __name__ == "__main__":
    main()
