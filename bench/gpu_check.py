"""GPU check: the reference model unpruned and pruned at 0.2 and 0.4, evaluated on CUDA.

Prints, per checkpoint and task, the energy method, net energy, J/token, and the ratio of
energy saved to MACs removed. Run by ``bench/gpu_check.sh`` on a machine with a GPU.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def main() -> int:
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
        repeats=5,
        warmup_batches=4,
        idle_seconds=5.0,
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
