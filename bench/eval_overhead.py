"""EvalService overhead against lm-eval used directly, and metering on against off.

In one run, on the same random-initialised Llama (saved under a temporary models root with the
reference tokenizer) and the same local task:

1. direct: ``AutoModelForCausalLM.from_pretrained`` + ``lm_eval.simple_evaluate`` in this process
   (before and after the service run; their mean is the reference);
2. service: ``CreateEvalJob`` to SUCCEEDED through a real EvalService process (one repeat, no
   idle baseline, no warm-up), which adds the job's process, energy metering (with its wait
   for a quiet machine) and reporting to a real ResultsService;
3. metering: one metered ``run_eval`` repeat against ``simple_evaluate`` on one loaded model,
   alternating, the median of ``--trials`` each (wall time).

The direct runs use the torch threads the service's meter gives the model's calls.

Targets: service/direct <= 1.10 with the direct run at least 20 s; metered/unmetered <= 1.03.

Run: ``python bench/eval_overhead.py [--hidden 1536] [--layers 32] [--task greenprune_facts]
[--limit N] [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.figures import Figure, add_arguments, at_least, at_most, parse, report  # noqa: E402
from bench.services import worker_with_results  # noqa: E402

SERVICE_TARGET = at_most(1.10)
METERING_TARGET = at_most(1.03)
DIRECT_SECONDS = at_least(20.0)


def build_model(root: Path, hidden: int, layers: int) -> Path:
    """Saves a random Llama with the reference tokenizer under ``root/bench-model``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from greenprune.core.reference import ensure_reference_model

    reference = ensure_reference_model()
    tokenizer = AutoTokenizer.from_pretrained(reference)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=2,
        head_dim=hidden // 8,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    target = root / "bench-model"
    LlamaForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def same_threads_as_the_meter() -> None:
    """Gives torch the threads the service's meter runs the model's calls with."""
    import torch

    from greenprune.core.energy.cpu_time import measurement_threads

    torch.set_num_threads(measurement_threads("cpu"))


def direct(model_dir: Path, task: str, batch_size: int, limit: int | None) -> tuple[float, float]:
    """Returns (seconds with load, seconds of evaluation alone) of lm-eval used directly."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM  # noqa: F401

    from eval_service.tasks import task_manager

    same_threads_as_the_meter()
    manager = task_manager()  # imports and the task index before the clock, as in the service
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, backend="causal", batch_size=batch_size)
    evaluated = time.perf_counter()
    lm_eval.simple_evaluate(
        model=lm, tasks=[task], task_manager=manager, cache_requests=False, limit=limit
    )
    done = time.perf_counter()
    return done - started, done - evaluated


def metering(
    model_dir: Path, task: str, batch_size: int, limit: int | None, workdir: Path, trials: int
) -> tuple[float, float]:
    """Returns the median seconds of ``simple_evaluate`` and of one metered ``run_eval`` repeat.

    Both run on one loaded model in this process, alternating, ``trials`` times each.
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from eval_service.evaluator import EvalConfig, run_eval
    from eval_service.tasks import task_manager
    from greenprune.core.energy.meter import prime

    same_threads_as_the_meter()
    manager = task_manager()
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prime("cpu")  # CodeCarbon's one-off detection, done by the service's warm job process
    config = EvalConfig(
        tasks=(task,), batch_size=batch_size, device="cpu", repeats=1, warmup_batches=0,
        idle_seconds=0.0, limit=limit,
    )  # fmt: skip
    plain, metered = [], []
    for _ in range(trials):
        started = time.perf_counter()
        lm = HFLM(pretrained=model, tokenizer=tokenizer, backend="causal", batch_size=batch_size)
        lm_eval.simple_evaluate(
            model=lm, tasks=[task], task_manager=manager, cache_requests=False, limit=limit
        )
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        run_eval(model, tokenizer, config, task_manager=manager, workdir=workdir)
        metered.append(time.perf_counter() - started)
    return statistics.median(plain), statistics.median(metered)


def service(home: Path, task: str, batch_size: int, limit: int | None) -> float:
    """Returns the seconds from CreateEvalJob to SUCCEEDED through real service processes."""
    from greenprune.api.common.v1 import jobs_pb2
    from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc
    from greenprune.rpc.client import channel

    async def run(address: str) -> float:
        async with channel(address) as chan:
            stub = eval_pb2_grpc.EvalServiceStub(chan)
            spec = eval_pb2.EvalSpec(
                model="bench-model", tasks=[task], batch_size=batch_size, device="cpu",
                repeats=1, warmup_batches=0, idle_seconds=0.0,
            )  # fmt: skip
            if limit is not None:  # unset means every document; 0 is refused
                spec.limit = limit
            started = time.perf_counter()
            job = (
                await stub.CreateEvalJob(
                    eval_pb2.CreateEvalJobRequest(request_id="bench", spec=spec)
                )
            ).job
            async for update in stub.WatchEvalJob(eval_pb2.WatchEvalJobRequest(name=job.name)):
                job = update.job
            elapsed = time.perf_counter() - started
            if job.status.state != jobs_pb2.JOB_STATE_SUCCEEDED:
                raise RuntimeError(f"the eval job failed: {job.status.error.message}")
            return elapsed

    with worker_with_results(home, "eval") as address:
        return asyncio.run(run(address))


def main() -> None:
    """Runs the three measurements and prints the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1536)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--task", default="greenprune_facts")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--trials", type=int, default=3, help="metered and plain runs each")
    parser.add_argument("--limit", type=int, default=0, help="documents of the task; 0 for all")
    add_arguments(parser)
    args = parse(parser, {"hidden": 128, "layers": 2, "trials": 1, "limit": 8})
    limit = args.limit or None
    with tempfile.TemporaryDirectory(prefix="greenprune-bench-") as tmp:
        home = Path(tmp)
        model_dir = build_model(home / "models", args.hidden, args.layers)
        with_load, _ = direct(model_dir, args.task, args.batch_size, limit)
        through_service = service(home, args.task, args.batch_size, limit)
        # Quick: the one direct run stands for both (the same code, run once).
        again = with_load if args.quick else direct(model_dir, args.task, args.batch_size, limit)[0]
        direct_seconds = (with_load + again) / 2
        print(f"direct lm-eval with model load: {with_load:.1f} s, then {again:.1f} s")
        print(f"EvalService end to end: {through_service:.1f} s")
        plain, metered = metering(
            model_dir, args.task, args.batch_size, limit, home / "metered", args.trials
        )
        trials = f"median of {args.trials}"
        print(f"model loaded, {trials}: lm-eval {plain:.1f} s, metered {metered:.1f} s")
    figures = [
        Figure("eval: EvalService / lm-eval direct", through_service / direct_seconds,
               SERVICE_TARGET),
        Figure("eval: metered / unmetered run_eval", metered / plain, METERING_TARGET),
        # The service's fixed costs only vanish against a run long enough to dwarf them.
        Figure("eval: direct run length", direct_seconds, DIRECT_SECONDS, unit="s"),
    ]  # fmt: skip
    details = {"direct_s": [with_load, again], "service_s": through_service,
               "plain_s": plain, "metered_s": metered}  # fmt: skip
    report("eval_overhead", figures, args, details)


if __name__ == "__main__":
    main()
