"""``from_pb``/``to_pb`` for the EvalService: protobuf on one side, plain data on the other."""

from __future__ import annotations

import dataclasses
from typing import Any

from eval_service.evaluator import EvalConfig
from greenprune.api.eval.v1 import eval_pb2
from greenprune.rpc.convert import energy_report_to_pb, job_status_to_pb
from greenprune.rpc.jobs import Job

COLLECTION = "evalJobs"


def spec_from_pb(
    spec: eval_pb2.EvalSpec, default_batch_size: int, default_repeats: int
) -> dict[str, Any]:
    """Converts an EvalSpec to plain data: the subject plus an :class:`EvalConfig`.

    Returns:
        ``{"checkpoint_id": str, "model": str, "config": EvalConfig}``.
    """
    config = EvalConfig(
        tasks=tuple(spec.tasks),
        task_paths=tuple(spec.task_paths),
        num_fewshot=spec.num_fewshot,
        limit=spec.limit if spec.HasField("limit") else None,
        batch_size=spec.batch_size or default_batch_size,
        device=spec.device or "auto",
        repeats=spec.repeats or default_repeats,
        warmup_batches=spec.warmup_batches,
        idle_seconds=spec.idle_seconds,
        seed=spec.seed,
    )
    return {"checkpoint_id": spec.checkpoint_id, "model": spec.model, "config": config}


def stored_spec(subject: dict[str, Any]) -> dict[str, Any]:
    """Returns the subject with its config as JSON-serialisable data (what the job table stores)."""
    return {**subject, "config": dataclasses.asdict(subject["config"])}


def config_from_stored(data: dict[str, Any]) -> EvalConfig:
    """Rebuilds the EvalConfig of a stored spec."""
    fields = dict(data["config"])
    fields["tasks"] = tuple(fields["tasks"])
    fields["task_paths"] = tuple(fields["task_paths"])
    return EvalConfig(**fields)


def spec_to_pb(data: dict[str, Any]) -> eval_pb2.EvalSpec:
    """Converts a stored spec back to an EvalSpec."""
    config = data["config"]
    spec = eval_pb2.EvalSpec(
        tasks=config["tasks"],
        task_paths=config["task_paths"],
        num_fewshot=config["num_fewshot"],
        batch_size=config["batch_size"],
        device=config["device"],
        repeats=config["repeats"],
        warmup_batches=config["warmup_batches"],
        idle_seconds=config["idle_seconds"],
        seed=config["seed"],
    )
    if config["limit"] is not None:
        spec.limit = config["limit"]
    if data.get("checkpoint_id"):
        spec.checkpoint_id = data["checkpoint_id"]
    else:
        spec.model = data.get("model", "")
    return spec


def task_result_to_pb(task: dict[str, Any]) -> eval_pb2.TaskResult:
    """Converts one task of the worker's result to a TaskResult."""
    metrics = []
    for metric in task["metrics"]:
        value = eval_pb2.MetricValue(
            task=metric["task"],
            metric=metric["metric"],
            value=metric["value"],
            samples=metric["samples"],
        )
        if metric.get("stderr") is not None:
            value.stderr = metric["stderr"]
        metrics.append(value)
    return eval_pb2.TaskResult(
        task=task["task"],
        metrics=metrics,
        samples=task["samples"],
        energy=energy_report_to_pb(task["energy"]),
    )


def result_to_pb(result: dict[str, Any]) -> eval_pb2.EvalResult:
    """Converts the worker's result (see ``eval_service.worker``) to an EvalResult."""
    return eval_pb2.EvalResult(
        tasks=[task_result_to_pb(task) for task in result["tasks"]],
        versions=result["versions"],
    )


def job_to_pb(job: Job) -> eval_pb2.EvalJob:
    """Converts a job record to an EvalJob."""
    message = eval_pb2.EvalJob(
        name=f"{COLLECTION}/{job.id}", status=job_status_to_pb(job), spec=spec_to_pb(job.spec)
    )
    if job.result is not None and job.state == "SUCCEEDED":
        message.result.CopyFrom(result_to_pb(job.result))
    return message
