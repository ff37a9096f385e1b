"""The Ray job backend: its overhead on one machine, and the control plane under a simulated sweep.

1. overhead (``--part overhead``): one prune job (reference model, magnitude 0.4) and one eval
   job (its checkpoint, ``greenprune_facts``) from Create to SUCCEEDED (work done and recorded)
   through real ResultsService, PruningService and EvalService processes, with
   ``backend=ray`` (a local Ray on this machine, warm actors) against ``backend=local`` (warm
   child processes); both stacks run side by side and the trials alternate, median of
   ``--trials``. Target: ray / local <= 1.15 each.
2. sweep (``--part sweep``): a local Ray with ``--gpus`` logical GPUs (a CPU machine can have
   them) and a stand-in eval worker that sleeps a drawn duration (log-normal, ``--median``
   seconds) and returns a realistic one-task EvalResult; ``--steps`` eval jobs go through the
   real EvalService (backend ray, one logical GPU per job, warm reused actors) and
   ResultsService. Prints steps/s scheduled and recorded, the p50/p99 delay between a job's
   end in its actor and its record, and the ResultsService's ingest rate.

Run: ``python bench/ray_overhead.py [--part overhead|sweep|both] [--steps 2000] [--gpus 64]
[--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.figures import Figure, add_arguments, at_least, at_most, parse, report  # noqa: E402

OVERHEAD_TARGET = at_most(1.15)
EVERY_STEP = at_least(1.0)
FINISHED_AT = "_standin_finished_at"
SLEPT = "_standin_seconds"
MEDIAN_VARIABLE = "GREENPRUNE_STANDIN_MEDIAN_SECONDS"  # read by the stand-in in the Ray workers


# -- the stand-in worker (runs in the Ray actors; keep its imports light) -------------------------


def standin(
    spec: dict[str, Any], context: dict[str, Any], progress: Callable[[str, float], None]
) -> dict[str, Any]:
    """Sleeps a drawn duration, reporting progress, and returns a realistic EvalResult dict."""
    rng = random.Random(context["job_id"])
    median = float(os.environ.get(MEDIAN_VARIABLE, "1.0"))
    seconds = median * rng.lognormvariate(0.0, 0.5)
    task = (spec.get("tasks") or ["task"])[0]
    progress("loading", 0.0)
    for step in range(4):
        time.sleep(seconds / 4)
        progress(f"evaluating {task}", (step + 1) / 4)
    joules = seconds * rng.uniform(150.0, 300.0)
    interval = {"median": joules, "low": joules * 0.95, "high": joules * 1.05, "count": 5}
    samples = 500
    return {
        "model": spec.get("model", "standin"),
        "versions": {"lm_eval": "0.4.13", "standin": "1"},
        "tasks": [
            {
                "task": task,
                "samples": samples,
                "metrics": [
                    {
                        "task": task,
                        "metric": "acc",
                        "value": rng.uniform(0.3, 0.9),
                        "stderr": 0.02,
                        "samples": samples,
                    }
                ],
                "energy": {
                    "components": [
                        {
                            "component": "gpu",
                            "method": "nvml",
                            "gross_joules": interval,
                            "net_joules": interval,
                            "idle_watts": 60.0,
                        }
                    ],
                    "headline_component": "gpu",
                    "net_joules": interval,
                    "gross_joules": interval,
                    "wall_seconds": {"median": seconds, "low": seconds, "high": seconds},
                    "tokens": samples * 64,
                    "samples": samples,
                    "joules_per_token": joules / (samples * 64),
                    "joules_per_sample": joules / samples,
                    "device_name": "simulated H100",
                    "hardware": "simulated",
                    "repeats": 5,
                    "repeat_net_joules": [joules] * 5,
                },
            }
        ],
        FINISHED_AT: time.time(),
        SLEPT: seconds,
    }


# -- helpers ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def local_ray(num_cpus: int, num_gpus: int) -> Iterator[str]:
    """A local Ray owned by this process; yields its GCS address for the services."""
    import ray

    context = ray.init(
        address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False
    )
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


@contextlib.contextmanager
def stack(
    home: Path, env_extra: dict[str, str], kinds: tuple[str, ...]
) -> Iterator[dict[str, str]]:
    """ResultsService plus the named worker services, SERVING; yields their addresses."""
    from bench.services import free_port, running_services
    from greenprune.rpc.client import wait_until_serving

    modules = {"pruning": "pruning_service.server", "eval": "eval_service.server"}
    addresses = {"results": f"127.0.0.1:{free_port()}"}
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "GREENPRUNE_HOME": str(home),
        "GREENPRUNE_RESULTS_PORT": addresses["results"].rsplit(":", 1)[1],
        **env_extra,
    }
    for kind in kinds:
        addresses[kind] = f"127.0.0.1:{free_port()}"
        prefix = f"GREENPRUNE_{kind.upper()}_"
        env[f"{prefix}PORT"] = addresses[kind].rsplit(":", 1)[1]
        env[f"{prefix}RESULTS_ADDRESS"] = addresses["results"]

    async def serving() -> None:
        for address in addresses.values():
            await wait_until_serving(address, timeout=300)

    with running_services(home, ("results_service.server", *(modules[k] for k in kinds)), env):
        asyncio.run(serving())
        yield addresses


def ray_env(address: str, kinds: tuple[str, ...], **extra: str) -> dict[str, str]:
    """The settings that put the named services on the Ray at ``address``."""
    env = {}
    for kind in kinds:
        prefix = f"GREENPRUNE_{kind.upper()}_"
        env[f"{prefix}BACKEND"] = "ray"
        env[f"{prefix}RAY_ADDRESS"] = address
        env.update({f"{prefix}{key.upper()}": value for key, value in extra.items()})
    return env


def _watch_until_done(watch: Callable[[], Any]) -> Any:
    last = None
    for update in watch():
        last = update
    return last


# -- part 1: overhead ------------------------------------------------------------------------------


def one_prune_and_eval(addresses: dict[str, str], tag: str) -> tuple[float, float | None]:
    """Seconds from Create to SUCCEEDED of a prune job and of an eval job of its checkpoint.

    The eval is left out (None) when the stack has no EvalService.
    """
    import grpc

    from greenprune.api.common.v1 import jobs_pb2
    from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc
    from greenprune.api.pruning.v1 import pruning_pb2, pruning_pb2_grpc

    with (
        grpc.insecure_channel(addresses["pruning"]) as pchan,
        grpc.insecure_channel(addresses.get("eval", addresses["pruning"])) as echan,
    ):
        prune = pruning_pb2_grpc.PruningServiceStub(pchan)
        spec = pruning_pb2.PruneSpec(
            model="reference:tiny-llama",
            method=pruning_pb2.PRUNING_METHOD_MAGNITUDE_L2,
            ratio=0.4,
            prune_attention_heads=True,
            prune_mlp=True,
        )
        started = time.perf_counter()
        request = pruning_pb2.CreatePruneJobRequest(request_id=f"{tag}-p", spec=spec)
        name = prune.CreatePruneJob(request, timeout=60).job.name
        _watch_until_done(
            lambda: prune.WatchPruneJob(pruning_pb2.WatchPruneJobRequest(name=name), timeout=600)
        )
        prune_seconds = time.perf_counter() - started
        job = prune.GetPruneJob(pruning_pb2.GetPruneJobRequest(name=name), timeout=10).job
        if job.status.state != jobs_pb2.JOB_STATE_SUCCEEDED:
            raise RuntimeError(f"prune {tag} failed: {job.status.error.message}")
        if "eval" not in addresses:
            return prune_seconds, None
        evaluate = eval_pb2_grpc.EvalServiceStub(echan)
        espec = eval_pb2.EvalSpec(
            checkpoint_id=job.result.checkpoint_id,
            tasks=["greenprune_facts"],
            limit=64,
            batch_size=16,
            device="cpu",
            repeats=1,
            warmup_batches=1,
            idle_seconds=0.3,
        )
        started = time.perf_counter()
        erequest = eval_pb2.CreateEvalJobRequest(request_id=f"{tag}-e", spec=espec)
        ename = evaluate.CreateEvalJob(erequest, timeout=60).job.name
        _watch_until_done(
            lambda: evaluate.WatchEvalJob(eval_pb2.WatchEvalJobRequest(name=ename), timeout=600)
        )
        eval_seconds = time.perf_counter() - started
        ejob = evaluate.GetEvalJob(eval_pb2.GetEvalJobRequest(name=ename), timeout=10).job
        if ejob.status.state != jobs_pb2.JOB_STATE_SUCCEEDED:
            raise RuntimeError(f"eval {tag} failed: {ejob.status.error.message}")
        return prune_seconds, eval_seconds


def overhead(trials: int, kinds: tuple[str, ...] = ("pruning", "eval")) -> dict[str, Any]:
    """Part 1; returns the medians and ratios (of the prune job alone without ``eval``)."""
    from greenprune.core.reference import ensure_reference_model

    ensure_reference_model()
    jobs = [{"pruning": "prune", "eval": "eval"}[kind] for kind in kinds]
    times: dict[str, dict[str, list[float]]] = {b: {j: [] for j in jobs} for b in ("local", "ray")}
    with (
        tempfile.TemporaryDirectory(prefix="gp-ray-bench-") as tmp,
        local_ray(num_cpus=2, num_gpus=0) as address,
        stack(Path(tmp) / "local", {}, kinds) as local,
        stack(Path(tmp) / "ray", ray_env(address, kinds), kinds) as remote,
    ):
        stacks = {"local": local, "ray": remote}
        for trial in range(trials):
            order = ("local", "ray") if trial % 2 == 0 else ("ray", "local")
            for backend in order:
                prune_s, eval_s = one_prune_and_eval(stacks[backend], f"{backend}-{trial}")
                times[backend]["prune"].append(prune_s)
                if eval_s is not None:
                    times[backend]["eval"].append(eval_s)
                evaluated = f", eval {eval_s:.2f} s" if eval_s is not None else ""
                print(f"trial {trial} {backend}: prune {prune_s:.2f} s{evaluated}")
    out: dict[str, Any] = {"trials": trials, "seconds": times}
    for kind in jobs:
        local_m = statistics.median(times["local"][kind])
        ray_m = statistics.median(times["ray"][kind])
        out[f"{kind}_median_local_s"] = round(local_m, 3)
        out[f"{kind}_median_ray_s"] = round(ray_m, 3)
        out[f"{kind}_ratio"] = round(ray_m / local_m, 3)
    return out


# -- part 2: the simulated sweep -------------------------------------------------------------------


async def _submit_all(address: str, steps: int, concurrency: int = 16) -> float:
    import grpc

    from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc

    tasks = ["greenprune_facts", "greenprune_arith"]
    async with grpc.aio.insecure_channel(address) as channel:
        stub = eval_pb2_grpc.EvalServiceStub(channel)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(steps):
            queue.put_nowait(index)

        async def submitter() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                spec = eval_pb2.EvalSpec(
                    model="reference:tiny-llama",
                    tasks=[tasks[index % 2]],
                    limit=100,
                    device="cpu",
                )
                request = eval_pb2.CreateEvalJobRequest(
                    request_id=f"step-{index}", spec=spec, experiment="sweep"
                )
                await stub.CreateEvalJob(request, timeout=120)

        started = time.time()
        await asyncio.gather(*(submitter() for _ in range(concurrency)))
        return time.time() - started


def _count_recorded(address: str) -> int:
    import grpc

    from greenprune.api.results.v1 import results_pb2, results_pb2_grpc

    ids: list[str] = []
    with grpc.insecure_channel(address) as channel:
        stub = results_pb2_grpc.ResultsServiceStub(channel)
        token = ""
        while True:
            page = stub.ListEvalRuns(
                results_pb2.ListEvalRunsRequest(
                    experiment="sweep", page_size=1000, page_token=token
                ),
                timeout=60,
            )
            ids += [run.request_id for run in page.runs]
            token = page.next_page_token
            if not token:
                break
    if len(ids) != len(set(ids)):
        raise RuntimeError(f"{len(ids) - len(set(ids))} runs were recorded twice")
    return len(ids)


def sweep(steps: int, gpus: int, median: float, cpus: int = 2) -> dict[str, Any]:
    """Part 2; returns the control plane's figures (``cpus``: of the local Ray)."""
    os.environ[MEDIAN_VARIABLE] = str(median)  # the local Ray's workers inherit it
    with (
        tempfile.TemporaryDirectory(prefix="gp-ray-sweep-") as tmp,
        local_ray(num_cpus=cpus, num_gpus=gpus) as address,
    ):
        home = Path(tmp)
        env = ray_env(
            address,
            ("eval",),
            job_worker="bench.ray_overhead:standin",
            ray_lane_resources="gpu",
            ray_num_gpus="1",
            reuse_job_process="true",
            max_queued_jobs=str(steps + 10),
            warm_job_process="false",
        )
        with stack(home, env, ("eval",)) as addresses:
            began = time.time()
            submit_s = asyncio.run(_submit_all(addresses["eval"], steps))
            table = home / "eval" / "jobs.sqlite"
            deadline = time.time() + max(600.0, steps * median * 2)
            while True:
                with contextlib.closing(sqlite3.connect(f"file:{table}?mode=ro", uri=True)) as db:
                    done = db.execute(
                        "SELECT count(*) FROM jobs WHERE state IN"
                        " ('SUCCEEDED', 'FAILED', 'CANCELLED')"
                    ).fetchone()[0]
                if done >= steps or time.time() > deadline:
                    break
                time.sleep(0.5)
            with contextlib.closing(sqlite3.connect(f"file:{table}?mode=ro", uri=True)) as db:
                rows = db.execute(
                    "SELECT state, create_time, start_time, end_time, result, error_message"
                    " FROM jobs"
                ).fetchall()
            recorded = _count_recorded(addresses["results"])
    ok = [r for r in rows if r[0] == "SUCCEEDED"]
    failed = [r for r in rows if r[0] != "SUCCEEDED"]
    starts = sorted(r[2] for r in ok)
    ends = sorted(r[3] for r in ok)
    finished = [json.loads(r[4])[FINISHED_AT] for r in ok]
    delays = sorted(r[3] - f for r, f in zip(ok, finished, strict=True))
    work = [r[3] - r[2] for r in ok]

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    if not ok:
        raise RuntimeError(f"no step succeeded: {sorted({str(r[5]) for r in failed})[:3]}")
    span = ends[-1] - began
    drawn = [json.loads(r[4])[SLEPT] for r in ok]
    return {
        "steps": steps,
        "logical_gpus": gpus,
        "median_job_seconds": median,
        "succeeded": len(ok),
        "not_succeeded": len(failed),
        "first_errors": sorted({str(r[5]) for r in failed})[:3],
        "recorded_in_results_service": recorded,
        "submit_seconds": round(submit_s, 2),
        "scheduled_steps_per_s": round(len(starts) / (starts[-1] - began), 2),
        "recorded_steps_per_s": round(len(ends) / span, 2),
        "ideal_steps_per_s": round(gpus / statistics.mean(drawn), 2) if drawn else None,
        "end_to_record_p50_s": round(pct(delays, 0.5), 3),
        "end_to_record_p99_s": round(pct(delays, 0.99), 3),
        "ingest_runs_per_s": round(len(ends) / max(ends[-1] - ends[0], 1e-9), 2),
        "mean_drawn_job_s": round(statistics.mean(drawn), 3),
        "mean_job_wall_s": round(statistics.mean(work), 3) if work else None,
        "makespan_s": round(span, 1),
    }


def main() -> None:
    """Runs the parts asked for and prints their figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("overhead", "sweep", "both"), default="both")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--gpus", type=int, default=64)
    parser.add_argument("--median", type=float, default=2.0, help="median stand-in job seconds")
    add_arguments(parser)
    args = parse(parser, {"trials": 1, "steps": 8, "gpus": 2, "median": 0.2})
    figures, details = [], {}
    # Quick: the sweep alone (its stack, Ray actors, records); the overhead part starts two
    # more stacks and a second Ray, and tests/rpc/test_ray.py already runs prune and eval jobs
    # on Ray against local ones. `--quick --part overhead` runs it with the prune job alone.
    part = "sweep" if args.quick and args.part == "both" else args.part
    if part in ("overhead", "both"):
        kinds = ("pruning",) if args.quick else ("pruning", "eval")
        result = details["overhead"] = overhead(args.trials, kinds)
        print(json.dumps(result, indent=2))
        for kind in [kind for kind in ("prune", "eval") if f"{kind}_ratio" in result]:
            figures.append(
                Figure(f"ray: {kind} job, ray / local backend, medians", result[f"{kind}_ratio"],
                       OVERHEAD_TARGET)
            )  # fmt: skip
    if part in ("sweep", "both"):
        # Quick: a Ray of one CPU (it starts an idle worker per CPU; the jobs ask for GPUs).
        cpus = 1 if args.quick else 2
        result = details["sweep"] = sweep(args.steps, args.gpus, args.median, cpus)
        print(json.dumps(result, indent=2))
        steps = result["steps"]
        figures += [
            Figure("ray sweep: steps succeeded (share)", result["succeeded"] / steps, EVERY_STEP),
            Figure("ray sweep: steps recorded once (share)",
                   result["recorded_in_results_service"] / steps, EVERY_STEP),
            # How close the control plane comes to keeping every logical GPU busy: a finding.
            Figure(f"ray sweep: recorded steps/s / ideal for {args.gpus} GPUs",
                   result["recorded_steps_per_s"] / result["ideal_steps_per_s"]),
        ]  # fmt: skip
    report("ray_overhead", figures, args, details)


if __name__ == "__main__":
    main()
