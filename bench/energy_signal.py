"""Does the energy profile see what pruning removes, and give the same verdicts on every run?

The demo's checkpoints (the reference model pruned with Taylor scores at 0.2 and 0.4, first and
last layer kept; the LoRA-recovered one is left out to save time) are profiled as the demo
profiles them (`energy:` of experiments/demo.yaml unless overridden), several times in a row and
once more beside a busy loop pinned to one CPU. Printed, as ratios:

1. precision: the relative width of the 95% interval of ratio 0.4's prefill J/token change at
   the largest batch (high - low of ``new / base - 1``). Required <= 0.10, aimed at <= 0.05.
2. reproducibility: the verdict (lower, higher, inconclusive) of every prefill
   comparison at batch 8 and 32 in each run; how many agree across the runs (target: all).
3. robustness: the same verdicts with and without the busy neighbour (target: all).
4. signal: the CPU figure saved at 0.4, largest batch, over the share of MACs removed
   (target: within 0.6-1.2).

Run: ``python bench/energy_signal.py [--runs 3] [--window 0.5] [--precision 0.05]
[--max-rounds 10] [--batches 1 8 32] [--no-neighbour] [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.figures import Figure, add_arguments, at_least, at_most, between, parse, report  # noqa: E402

RATIOS = (0.0, 0.2, 0.4)
VERDICT_BATCHES = (8, 32)
PRECISION_TARGET = at_most(0.10)
AGREEMENT_TARGET = at_least(1.0)
SIGNAL_TARGET = between(0.6, 1.2)
"""Energy saved over MACs removed: the meter follows the work pruning removes."""


def _demo_energy() -> dict[str, Any]:
    import yaml

    return yaml.safe_load((REPO / "experiments" / "demo.yaml").read_text())["energy"]


def _prune(root: Path, quick: bool = False) -> tuple[list[str], list[Any], list[dict[str, Any]]]:
    """Prunes the demo's checkpoints (quick: Taylor calibrated on a few short windows)."""
    from greenprune.core.checkpoint import load_checkpoint
    from pruning_service.pruner import CalibrationConfig, PruneConfig, run_prune

    few = {"calibration": CalibrationConfig(samples=4, sequence_length=32)} if quick else {}
    ids = []
    for ratio in RATIOS:
        config = PruneConfig(
            model="reference:tiny-llama",
            method="taylor",
            ratio=ratio,
            keep_first_layers=1,
            keep_last_layers=1,
            **few,
        )
        checkpoint_id = f"r{ratio}"
        run_prune(config, checkpoints_dir=root, checkpoint_id=checkpoint_id, models_root=root)
        ids.append(checkpoint_id)
    loaded = [load_checkpoint(root / i, device="cpu") for i in ids]
    return ids, [model.eval() for model, _, _ in loaded], [m for _, _, m in loaded]


def _neighbour() -> subprocess.Popen[bytes]:
    """A busy loop pinned to the last usable CPU, for at most an hour."""
    cpu = sorted(os.sched_getaffinity(0))[-1]
    code = f"import os, time\nos.sched_setaffinity(0, {{{cpu}}})\nend = time.time() + 3600\n"
    code += "while time.time() < end: pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def _changes(result: Any, ids: list[str]) -> dict[tuple[str, int, str], Any]:
    from greenprune.core.stats import paired_ratio_change

    changes = {}
    for phase in ("prefill", "decode"):
        for batch in sorted({p.batch_size for p in result.points}):
            per_round = {
                cid: {
                    p.round: p.net_joules / p.tokens
                    for p in result.points
                    if (p.checkpoint_id, p.phase, p.batch_size) == (cid, phase, batch)
                }
                for cid in ids
            }
            for cid in ids[1:]:
                rounds = sorted(set(per_round[ids[0]]) & set(per_round[cid]))
                changes[phase, batch, cid] = paired_ratio_change(
                    [per_round[ids[0]][r] for r in rounds], [per_round[cid][r] for r in rounds]
                )
    return changes


def _verdict(change: Any) -> str:
    if change.high < 0:
        return "lower"
    return "higher" if change.low > 0 else "inconclusive"


def main() -> None:
    demo = _demo_energy()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=float, default=float(demo["window_seconds"]))
    parser.add_argument("--precision", type=float, default=float(demo.get("precision", 0.05)))
    parser.add_argument("--max-rounds", type=int, default=int(demo.get("max_rounds", 10)))
    parser.add_argument("--batches", type=int, nargs="+", default=list(demo["batch_sizes"]))
    parser.add_argument("--prefill-tokens", type=int, default=int(demo["prefill_tokens"]))
    parser.add_argument("--decode-tokens", type=int, default=int(demo["decode_tokens"]))
    parser.add_argument("--no-neighbour", action="store_true")
    add_arguments(parser)
    quick = {"runs": 1, "window": 0.05, "precision": 0.0, "max_rounds": 0, "batches": [8],
             "prefill_tokens": 32, "decode_tokens": 4, "no_neighbour": True}  # fmt: skip
    args = parse(parser, quick)

    from eval_service.profile import ProfileConfig, run_profile
    from greenprune.core.limits import PROFILE_AUTO_FIRST_ROUNDS

    with tempfile.TemporaryDirectory(prefix="greenprune-bench-") as tmp:
        root = Path(tmp)
        ids, models, manifests = _prune(root, args.quick)
        config = ProfileConfig(
            checkpoint_ids=tuple(ids),
            batch_sizes=tuple(args.batches),
            prefill_tokens=args.prefill_tokens,
            decode_tokens=args.decode_tokens,
            rounds=PROFILE_AUTO_FIRST_ROUNDS,
            window_seconds=args.window,
            device="cpu",
            idle_seconds=0.0 if args.quick else 1.0,  # quick: no idle baseline
            seed=0,
            precision=args.precision,
            max_rounds=args.max_rounds,
        )
        plan = [("quiet", False)] * args.runs + ([] if args.no_neighbour else [("busy", True)])
        runs: list[tuple[str, Any, dict[tuple[str, int, str], Any]]] = []
        for index, (label, busy) in enumerate(plan):
            neighbour = _neighbour() if busy else None
            started, load = time.perf_counter(), os.getloadavg()[0]
            try:
                result = run_profile(models, config, workdir=root, progress=lambda *_: None)
            finally:
                if neighbour is not None:
                    neighbour.kill()
                    neighbour.wait(10)
            seconds = time.perf_counter() - started
            name = f"run {index + 1} ({'beside a busy loop on one CPU' if busy else 'as is'})"
            print(
                f"{name}: {result.rounds} rounds in {seconds:.0f} s, load average "
                f"{load:.1f} -> {os.getloadavg()[0]:.1f}; {result.stop_reason}; "
                f"{result.remeasured_windows} windows measured again, "
                f"{result.disturbed_windows} kept disturbed; {result.threads} thread(s)",
                flush=True,
            )
            runs.append((label, result, _changes(result, ids)))

    largest = max(args.batches)
    base_macs = manifests[0]["macs_after"] or manifests[0]["macs_before"]
    macs_share = manifests[2]["macs_after"] / base_macs
    print(f"MACs of ratio 0.4: {macs_share:.3f} of the base; method {runs[0][1].energy_method}")
    for (label, _, changes), index in zip(runs, range(1, len(runs) + 1), strict=True):
        print(f"run {index} ({label}):")
        for (phase, batch, cid), change in sorted(changes.items()):
            print(
                f"  {phase:7s} batch {batch:3d} {cid}: {change.median:+.3f} "
                f"[{change.low:+.3f}, {change.high:+.3f}] width {change.high - change.low:.3f} "
                f"-> {_verdict(change)}"
            )
    widths, signals = [], []
    for _, _, changes in runs:
        change = changes["prefill", largest, ids[2]]
        widths.append(change.high - change.low)
        signals.append(-change.median / (1.0 - macs_share))
    quiet = [changes for label, _, changes in runs if label == "quiet"]
    figures = [
        Figure(
            f"energy: widest 95% interval, 0.4 prefill batch {largest} (aimed <= 0.05)",
            max(widths),
            PRECISION_TARGET,
        ),
        Figure("energy: CPU figure saved / MACs removed, 0.4, median of runs",
               statistics.median(signals), SIGNAL_TARGET),
    ]  # fmt: skip
    keys = [("prefill", b, cid) for b in VERDICT_BATCHES if b in args.batches for cid in ids[1:]]
    if keys:
        agree = sum(len({_verdict(c[key]) for c in quiet}) == 1 for key in keys)
        figures.append(
            Figure(f"energy: verdicts agreeing over {len(quiet)} runs (share)", agree / len(keys),
                   AGREEMENT_TARGET)
        )  # fmt: skip
    busy = [changes for label, _, changes in runs if label == "busy"]
    if keys and busy and quiet:
        same = sum(_verdict(busy[0][key]) == _verdict(quiet[-1][key]) for key in keys)
        figures.append(
            Figure("energy: verdicts unchanged beside a busy loop (share)", same / len(keys),
                   AGREEMENT_TARGET)
        )  # fmt: skip
    details = {"widths": widths, "signals": signals, "macs_share": macs_share,
               "runs": [label for label, _, _ in runs]}  # fmt: skip
    report("energy_signal", figures, args, details)


if __name__ == "__main__":
    main()
