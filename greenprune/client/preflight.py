"""Before the first job: send the plan's task folders as content, and have every step checked.

Each pending prune and eval step is sent once with ``validate_only``, so a task the EvalService
does not know, a model it cannot find or a value over one of its limits is refused before any
checkpoint is written, not after the prunes ran. Eval steps are checked against their base
model, since their checkpoints do not exist yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import grpc

from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc
from greenprune.api.pruning.v1 import pruning_pb2, pruning_pb2_grpc
from greenprune.client.plan import EvalStep, PruneStep, Step
from greenprune.client.task_files import read_task_folder
from greenprune.core.errors import GreenpruneError, InvalidArgumentError

REFUSALS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
"""The codes that mean the step can never run as written (others are raised as they are)."""


class PlanRefusedError(GreenpruneError):
    """The services refused steps of the plan; nothing was submitted."""


async def upload_task_sources(
    channel: grpc.aio.Channel, folders: Sequence[Path], timeout: float
) -> list[str]:
    """Sends each folder's task files to the EvalService; returns the stored sources' names.

    Raises:
        PlanRefusedError: A folder cannot be read or the service refused its files.
    """
    stub = eval_pb2_grpc.EvalServiceStub(channel)
    names = []
    for index, folder in enumerate(folders):
        field = f"eval.task_paths[{index}]"
        try:
            source = await asyncio.to_thread(read_task_folder, folder, field)
            response = await stub.CreateTaskSource(
                eval_pb2.CreateTaskSourceRequest(task_source=source), timeout=timeout
            )
        except InvalidArgumentError as exc:
            raise PlanRefusedError(f"nothing was submitted: {exc}") from None
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in REFUSALS:
                raise
            raise PlanRefusedError(
                f"nothing was submitted: the eval service refused the task files of {folder}:"
                f" {exc.details()}"
            ) from None
        names.append(response.task_source.name)
    return names


def _checks(steps: Sequence[Step], task_sources: Sequence[str]) -> list[tuple[str, str, object]]:
    """The distinct (service, label, request) checks of the pending steps."""
    checks: dict[bytes, tuple[str, str, object]] = {}
    for step in steps:
        if isinstance(step, PruneStep):
            request: object = pruning_pb2.CreatePruneJobRequest(spec=step.spec, validate_only=True)
            service = "pruning"
        elif isinstance(step, EvalStep):
            spec = eval_pb2.EvalSpec()
            spec.CopyFrom(step.spec)
            spec.model = step.prune.model
            spec.task_sources.extend(task_sources)
            request = eval_pb2.CreateEvalJobRequest(spec=spec, validate_only=True)
            service = "eval"
        else:
            continue  # a profile names checkpoints that do not exist yet
        key = service.encode() + request.SerializeToString(deterministic=True)  # type: ignore[attr-defined]
        checks.setdefault(key, (service, step.label, request))
    return list(checks.values())


async def check_steps(
    steps: Sequence[Step],
    pruning: grpc.aio.Channel,
    eval_: grpc.aio.Channel,
    task_sources: Sequence[str],
    timeout: float,
) -> int:
    """Has the services check every pending step; returns how many distinct checks ran.

    Raises:
        PlanRefusedError: Listing every refused step with the field and reason.
    """
    stubs = {
        "pruning": pruning_pb2_grpc.PruningServiceStub(pruning).CreatePruneJob,
        "eval": eval_pb2_grpc.EvalServiceStub(eval_).CreateEvalJob,
    }
    checks = _checks(steps, task_sources)

    async def one(service: str, label: str, request: object) -> str | None:
        try:
            await stubs[service](request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in REFUSALS:
                raise
            return f"{label}: {exc.details()}"
        return None

    refusals = await asyncio.gather(*(one(*check) for check in checks))
    refused = list(dict.fromkeys(r for r in refusals if r is not None))
    if refused:
        lines = "\n".join(f"  {line}" for line in refused)
        raise PlanRefusedError(
            f"the services refused {len(refused)} step(s); nothing was submitted:\n{lines}"
        )
    return len(checks)
