"""Does the energy profile see what pruning removes? The demo model at ratio 0.4 against 0.

In one run, on the reference model pruned as the demo prunes it (Taylor, first and last layer
kept), both checkpoints profiled in interleaved rounds at the profile's batch sizes:

1. precision: the width of the paired interval of the J/token change at the largest batch,
   relative to the baseline's J/token (a ratio of ratios: the interval is of ``new / base - 1``).
   Target: <= 0.10.
2. signal: energy saved per token divided by the share of MACs removed, at that batch.
   Target: >= 0.6 on CPU.
3. overhead: the profile's wall time against a bare torch loop doing the same forwards (the
   same models, batches, iteration counts and rounds, without metering). Target: <= 1.05.

Run: ``python bench/energy_signal.py [--rounds 5] [--window 2.0] [--batches 1 8 32]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--ratio", type=float, default=0.4)
    args = parser.parse_args()

    from eval_service.profile import ProfileConfig, _Workload, run_profile
    from greenprune.core.checkpoint import load_checkpoint
    from greenprune.core.stats import paired_ratio_change
    from pruning_service.pruner import PruneConfig, run_prune

    with tempfile.TemporaryDirectory(prefix="greenprune-bench-") as tmp:
        root = Path(tmp)
        ids = []
        for ratio in (0.0, args.ratio):
            config = PruneConfig(
                model="reference:tiny-llama",
                method="taylor",
                ratio=ratio,
                keep_first_layers=1,
                keep_last_layers=1,
            )
            outcome = run_prune(
                config, checkpoints_dir=root, checkpoint_id=f"r{ratio}", models_root=root
            )
            ids.append(outcome.checkpoint_id)
        loaded = [load_checkpoint(root / i, device="cpu") for i in ids]
        models = [model.eval() for model, _, _ in loaded]
        manifests = [manifest for _, _, manifest in loaded]
        config = ProfileConfig(
            checkpoint_ids=tuple(ids),
            batch_sizes=tuple(args.batches),
            prefill_tokens=128,
            decode_tokens=32,
            rounds=args.rounds,
            window_seconds=args.window,
            device="cpu",
            idle_seconds=0.0,
            seed=0,
        )
        marks: dict[str, float] = {}

        def progress(stage: str, fraction: float) -> None:
            if stage.startswith("round") and "rounds" not in marks:
                marks["rounds"] = time.perf_counter()

        started = time.perf_counter()
        result = run_profile(models, config, workdir=root, progress=progress)
        ended = time.perf_counter()
        profile_seconds, rounds_seconds = ended - started, ended - marks["rounds"]

        # The bare loop: the same forwards, without the meter, the quiet check or calibration.
        workloads = {
            (cid, batch): _Workload(model, config, batch, "cpu")
            for cid, model in zip(ids, models, strict=True)
            for batch in config.batch_sizes
        }
        iterations = {(p.checkpoint_id, p.phase, p.batch_size): p.iterations for p in result.points}
        for cid, phase, batch in iterations:
            workloads[cid, batch].run(phase, 1)  # the profile warms up the same way
        started = time.perf_counter()
        for point in result.points:
            workloads[point.checkpoint_id, point.batch_size].run(point.phase, point.iterations)
        bare_seconds = time.perf_counter() - started

    largest = max(args.batches)
    macs_share = manifests[1]["macs_after"] / manifests[1]["macs_before"]
    print(f"profile of {ids[0]} vs {ids[1]}: {args.rounds} rounds, windows >= {args.window} s")
    print(f"MACs of ratio {args.ratio}: {macs_share:.3f} of the base")
    for phase in ("prefill", "decode"):
        for batch in args.batches:
            per_round = {
                cid: [
                    p.net_joules / p.tokens
                    for p in sorted(result.points, key=lambda p: p.round)
                    if (p.checkpoint_id, p.phase, p.batch_size) == (cid, phase, batch)
                ]
                for cid in ids
            }
            change = paired_ratio_change(per_round[ids[0]], per_round[ids[1]])
            line = (
                f"{phase:7s} batch {batch:3d}: J/token change {change.median:+.3f} "
                f"[{change.low:+.3f}, {change.high:+.3f}]"
            )
            if batch == largest:
                width = change.high - change.low
                saved = -change.median / (1.0 - macs_share)
                line += f"  | interval width / base: {width:.3f} (target <= 0.10)"
                line += f"  | saved / MACs removed: {saved:.2f} (target >= 0.6)"
            print(line)
    print(
        f"measured rounds wall / bare torch loop: {rounds_seconds:.1f} / {bare_seconds:.1f} s = "
        f"{rounds_seconds / bare_seconds:.3f} (target <= 1.05)"
    )
    print(
        f"whole profile wall (with window calibration and the quiet check) / bare loop: "
        f"{profile_seconds / bare_seconds:.3f}"
    )


if __name__ == "__main__":
    main()
