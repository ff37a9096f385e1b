"""PruningService overhead, checkpoint loading and pruning memory on a ~200M-parameter Llama.

In one run, on a random-initialised Llama saved under a temporary models root:

1. service: ``CreatePruneJob`` to SUCCEEDED (checkpoint written and reported) through real
   PruningService and ResultsService processes, against ``run_prune`` (the same torch-pruning
   calls and save) timed inside one warm process, with the torch threads of the service's
   metered window; the median of ``--trials`` each. Target: <= 1.15.
2. loading: a non-uniform checkpoint (first and last layer kept) with greenprune's loader,
   against ``from_pretrained`` of a uniform checkpoint of about the same size, each in a fresh
   process. Target: <= 1.2.
3. memory: peak RSS of the process that pruned, against the bytes of the weights. Target: <= 2.5.

Run: ``python bench/prune_overhead.py [--layers 18] [--hidden 1024] [--method magnitude-l2]
[--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import asyncio
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

from bench.figures import Figure, add_arguments, at_most, parse, report  # noqa: E402
from bench.services import run_code, worker_with_results  # noqa: E402

SERVICE_TARGET = at_most(1.15)
LOADER_TARGET = at_most(1.2)
MEMORY_TARGET = at_most(2.5)


def build_model(models_root: Path, hidden: int, layers: int) -> tuple[Path, int]:
    """Saves a random Llama with the reference tokenizer; returns its folder and weight bytes."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from greenprune.core.reference import ensure_reference_model

    tokenizer = AutoTokenizer.from_pretrained(ensure_reference_model())
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=int(hidden * 2.75),
        num_hidden_layers=layers,
        num_attention_heads=16,
        num_key_value_heads=4,
        head_dim=hidden // 16,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    target = models_root / "bench-200m"
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target, weight_bytes


def _config(method: str, ratio: float, keep: int) -> dict[str, object]:
    return {
        "model": "bench-200m",
        "method": method,
        "ratio": ratio,
        "keep_first_layers": keep,
        "keep_last_layers": keep,
        "calibration": {"samples": 8, "sequence_length": 128, "source": "reference"},
    }


DIRECT = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from pruning_service.pruner import CalibrationConfig, PruneConfig, run_prune
import torch, torch_pruning, transformers  # imported before the clock starts
from transformers import LlamaForCausalLM  # transformers' lazy Llama import, as a warm service
from greenprune.core.energy.cpu_time import measurement_threads
torch.set_num_threads(measurement_threads("cpu"))  # the threads of the service's metered window
spec = json.loads({spec!r})
config = PruneConfig(**{{**spec, "calibration": CalibrationConfig(**spec["calibration"])}})
started = time.perf_counter()
outcome = run_prune(config, checkpoints_dir=Path({out!r}), checkpoint_id={cid!r},
                    models_root=Path({root!r}))
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"seconds": seconds, "peak_rss": peak,
                   "path": str(outcome.path), "parameters": outcome.manifest["parameters_after"]}}))
"""

LOAD = """
import sys, time
sys.path.insert(0, {repo!r})
import torch, transformers
from greenprune.core.checkpoint import load_checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer
started = time.perf_counter()
if {loader!r} == "greenprune":
    load_checkpoint({path!r})
else:
    AutoModelForCausalLM.from_pretrained({path!r}); AutoTokenizer.from_pretrained({path!r})
print(time.perf_counter() - started)
"""


def direct(
    models_root: Path, out: Path, checkpoint_id: str, spec: dict[str, object], fresh: bool = True
) -> dict[str, float]:
    """Runs ``run_prune`` in a fresh process (imports before the clock) and returns figures.

    With ``fresh`` False (quick mode) the same code runs in this process.
    """
    os.sync()  # earlier checkpoints' dirty pages are not written back during this run
    code = DIRECT.format(
        repo=str(REPO),
        spec=json.dumps(spec),
        out=str(out),
        cid=checkpoint_id,
        root=str(models_root),
    )
    return json.loads(run_code(code, fresh=fresh).strip().splitlines()[-1])


def load_seconds(path: str, loader: str, fresh: bool = True) -> float:
    """Seconds to load a checkpoint in a fresh process (imports done before timing).

    With ``fresh`` False (quick mode) the same code runs in this process.
    """
    code = LOAD.format(repo=str(REPO), path=path, loader=loader)
    return float(run_code(code, fresh=fresh).strip().splitlines()[-1])


def service(home: Path, spec: dict[str, object], trials: int, settle: float) -> list[float]:
    """Seconds from CreatePruneJob to SUCCEEDED through real service processes, per trial.

    The trials run one after another on one service, ``settle`` seconds apart, so that each
    job finds the service idle and its job process warm, as a first job does.
    """
    from greenprune.api.common.v1 import jobs_pb2
    from greenprune.api.pruning.v1 import pruning_pb2, pruning_pb2_grpc
    from greenprune.core.limits import method_value
    from greenprune.rpc.client import channel

    calibration = spec["calibration"]
    assert isinstance(calibration, dict)
    message = pruning_pb2.PruneSpec(
        model=str(spec["model"]),
        method=method_value(str(spec["method"])),
        ratio=float(spec["ratio"]),  # type: ignore[arg-type]
        prune_attention_heads=True,
        prune_mlp=True,
        keep_first_layers=int(spec["keep_first_layers"]),  # type: ignore[arg-type]
        keep_last_layers=int(spec["keep_last_layers"]),  # type: ignore[arg-type]
        calibration=pruning_pb2.CalibrationSpec(**calibration),
    )

    async def run(address: str, trial: int) -> float:
        async with channel(address) as chan:
            stub = pruning_pb2_grpc.PruningServiceStub(chan)
            started = time.perf_counter()
            request = pruning_pb2.CreatePruneJobRequest(request_id=f"bench-{trial}", spec=message)
            job = (await stub.CreatePruneJob(request)).job
            async for update in stub.WatchPruneJob(pruning_pb2.WatchPruneJobRequest(name=job.name)):
                job = update.job
            elapsed = time.perf_counter() - started
            if job.status.state != jobs_pb2.JOB_STATE_SUCCEEDED:
                raise RuntimeError(f"the prune job failed: {job.status.error.message}")
            return elapsed

    seconds = []
    with worker_with_results(home, "pruning") as address:
        for trial in range(trials):
            if trial:
                time.sleep(settle)
            os.sync()
            seconds.append(asyncio.run(run(address, trial)))
    return seconds


def _seconds(values: list[float]) -> str:
    trials = ", ".join(f"{v:.2f}" for v in values)
    return f"median {statistics.median(values):.2f} s ({trials})"


def main() -> None:
    """Runs the measurements and prints the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=18)
    parser.add_argument("--method", default="magnitude-l2")
    parser.add_argument("--ratio", type=float, default=0.2)
    parser.add_argument("--trials", type=int, default=3, help="service and direct runs each")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds between service jobs")
    parser.add_argument("--load-trials", type=int, default=2, help="fresh loads of each kind")
    add_arguments(parser)
    quick = {"hidden": 128, "layers": 4, "trials": 1, "settle": 0.0, "load_trials": 1}
    args = parse(parser, quick)
    with tempfile.TemporaryDirectory(prefix="greenprune-bench-") as tmp:
        home = Path(tmp)
        models_root = home / "models"
        model_dir, weight_bytes = build_model(models_root, args.hidden, args.layers)
        print(f"model: {weight_bytes / 4 / 1e6:.1f} M parameters, {weight_bytes / 2**20:.0f} MiB")
        spec = _config(args.method, args.ratio, keep=0)
        fresh = not args.quick  # quick: the direct runs and loads in this process
        runs = [
            direct(models_root, home / "direct", f"uniform-{trial}", spec, fresh)
            for trial in range(args.trials)
        ]
        one_process = runs[0]
        direct_seconds = [run["seconds"] for run in runs]
        print(f"run_prune in one process: {_seconds(direct_seconds)}")
        through_service = service(home, spec, args.trials, args.settle)
        print(f"PruningService end to end: {_seconds(through_service)}")
        rss = max(run["peak_rss"] for run in runs)
        kept_spec = _config(args.method, args.ratio, keep=1)
        kept = direct(models_root, home / "direct", "kept", kept_spec, fresh)
        loads = range(args.load_trials)
        loader = min(load_seconds(kept["path"], "greenprune", fresh) for _ in loads)
        plain = min(load_seconds(one_process["path"], "from_pretrained", fresh) for _ in loads)
        print(f"load: non-uniform (loader) {loader:.2f} s, uniform (from_pretrained) {plain:.2f} s")
        ratio = statistics.median(through_service) / statistics.median(direct_seconds)
        peak = max(rss, kept["peak_rss"])
        del model_dir
    figures = [
        Figure("prune: PruningService / run_prune, medians", ratio, SERVICE_TARGET),
        Figure("prune: non-uniform loader / from_pretrained", loader / plain, LOADER_TARGET),
        Figure("prune: peak RSS / weight bytes", peak / weight_bytes, MEMORY_TARGET),
    ]
    details = {
        "parameters": weight_bytes / 4,
        "direct_s": direct_seconds,
        "service_s": through_service,
        "load_s": {"loader": loader, "from_pretrained": plain},
    }
    report("prune_overhead", figures, args, details)


if __name__ == "__main__":
    main()
