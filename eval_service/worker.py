"""The eval job's body; runs in a spawned child process, never on the server's event loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eval_service.convert import config_from_stored


def warm(lane: str) -> None:
    """Readies a job process before its job arrives: imports, task index, CodeCarbon.

    Args:
        lane: The runner's lane: the device this process will evaluate on.
    """
    import datasets  # noqa: F401 - lm-eval loads task data with it
    import lm_eval  # noqa: F401
    from lm_eval.models.huggingface import HFLM  # noqa: F401
    from transformers import LlamaForCausalLM  # noqa: F401 - loads the Llama modelling code

    from eval_service import evaluator, metered_lm  # noqa: F401
    from eval_service.tasks import task_manager
    from greenprune import checkpoint, models  # noqa: F401
    from greenprune.energy import prime

    task_manager()
    prime(lane)


def run(
    spec: dict[str, Any], context: dict[str, Any], progress: Callable[[str, float], None]
) -> dict[str, Any]:
    """Loads the model, evaluates every task under the energy meter and returns plain data.

    Args:
        spec: The stored spec: ``checkpoint_id`` or ``model``, and ``config``.
        context: ``checkpoints_dir``, ``models_root`` and ``workdir``.
        progress: Reports (stage, fraction).

    Returns:
        ``{"model": base model source, "tasks": [...], "versions": {...}}``.
    """
    from eval_service.evaluator import resolve_device, run_eval
    from eval_service.task_index import local_task_names
    from eval_service.tasks import task_manager
    from greenprune import checkpoint
    from greenprune.models import load_source_model

    config = config_from_stored(spec)
    device = resolve_device(config.device)
    progress("loading", 0.0)
    if spec.get("checkpoint_id"):
        path = checkpoint.checkpoint_dir(Path(context["checkpoints_dir"]), spec["checkpoint_id"])
        model, tokenizer, manifest = checkpoint.load_checkpoint(path, device=device)
        base_model = manifest["source"]["model"]
    else:
        model, tokenizer = load_source_model(
            spec["model"], Path(context["models_root"]), device=device
        )
        base_model = spec["model"]
    manager = task_manager(
        [Path(p) for p in config.task_paths],
        include_defaults=not set(config.tasks) <= local_task_names(config.task_paths),
    )
    outcomes = run_eval(
        model,
        tokenizer,
        config,
        task_manager=manager,
        workdir=Path(context["workdir"]),
        progress=progress,
    )
    versions: dict[str, str] = {}
    tasks = []
    for outcome in outcomes:
        versions.update(outcome.versions)
        tasks.append(
            {
                "task": outcome.task,
                "samples": outcome.samples,
                "metrics": [dataclasses.asdict(m) for m in outcome.metrics],
                "energy": dataclasses.asdict(outcome.energy),
            }
        )
    return {"model": base_model, "tasks": tasks, "versions": versions}
