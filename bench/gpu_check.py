"""GPU check: the reference model unpruned and pruned at 0.2 and 0.4, evaluated on CUDA.

Prints, per checkpoint and task, the energy method, net energy, J/token, and the ratio of
energy saved to MACs removed (target: energy_signal's, 0.6-1.2). Run by ``bench/gpu_check.sh``
on a machine with a GPU, and by ``python -m bench`` where CUDA exists.

Run: ``python bench/gpu_check.py [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.energy_signal import SIGNAL_TARGET  # noqa: E402
from bench.figures import Figure, add_arguments, parse, report  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup-batches", type=int, default=4)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    add_arguments(parser)
    args = parse(parser, {"repeats": 1, "warmup_batches": 0, "idle_seconds": 0.0})
    import torch

    from eval_service.evaluator import EvalConfig, run_eval
    from eval_service.tasks import task_manager
    from greenprune.core.checkpoint import load_checkpoint
    from greenprune.core.reference import ensure_reference_model
    from pruning_service.pruner import PruneConfig, run_prune

    if not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU", file=sys.stderr)
        return 2
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    reference = ensure_reference_model(log=print)
    work = Path(tempfile.mkdtemp(prefix="greenprune-gpu-"))
    manager = task_manager()
    config = EvalConfig(
        tasks=("greenprune_facts", "greenprune_arith"),
        batch_size=32,
        device="cuda:0",
        repeats=args.repeats,
        warmup_batches=args.warmup_batches,
        idle_seconds=args.idle_seconds,
    )
    rows = []
    for ratio in (0.0, 0.2, 0.4):
        outcome = run_prune(
            PruneConfig(
                model="reference:tiny-llama",
                method="taylor",
                ratio=ratio,
                keep_first_layers=1,
                keep_last_layers=1,
            ),
            checkpoints_dir=work,
            checkpoint_id=f"gpu-{int(ratio * 100):02d}",
            models_root=reference.parent,
        )
        model, tokenizer, manifest = load_checkpoint(outcome.path, device="cuda:0")
        for task in run_eval(model, tokenizer, config, task_manager=manager, workdir=work / "eval"):
            accuracy = next((m.value for m in task.metrics if m.metric == "acc"), float("nan"))
            rows.append((ratio, manifest["macs_after"], task, accuracy))
        del model
        torch.cuda.empty_cache()
    baseline = {task.task: (macs, task) for ratio, macs, task, _ in rows if ratio == 0.0}
    print("ratio task method net_J [low, high] J/token acc energy_saved/MACs_removed")
    figures = []
    for ratio, macs, task, accuracy in rows:
        energy = task.energy
        base_macs, base = baseline[task.task]
        saved = 1 - energy.net_joules.median / base.energy.net_joules.median
        removed = 1 - macs / base_macs
        ratio_text = f"{saved / removed:.2f}" if removed > 0 else "-"
        method = next(
            c.method for c in energy.components if c.component == energy.headline_component
        )
        print(
            f"{ratio:.1f} {task.task} {method} {energy.net_joules.median:.3f} "
            f"[{energy.net_joules.low:.3f}, {energy.net_joules.high:.3f}] "
            f"{energy.joules_per_token:.3e} {accuracy:.3f} {ratio_text}"
        )
        if removed > 0:
            name = f"gpu: energy saved / MACs removed, {ratio:.1f} {task.task}"
            figures.append(Figure(name, saved / removed, SIGNAL_TARGET))
    report("gpu_check", figures, args, {"device": torch.cuda.get_device_name(0)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
