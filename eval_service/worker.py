"""The eval job's body; runs in a spawned child process, never on the server's event loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from greenprune.api.eval.v1 import eval_pb2
from greenprune.core.message_records import to_json_dict


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
    from greenprune.core import checkpoint, models  # noqa: F401
    from greenprune.core.energy.meter import prime

    task_manager()
    prime(lane)


def run(
    spec: dict[str, Any], context: dict[str, Any], progress: Callable[[str, float], None]
) -> dict[str, Any]:
    """Loads the model, evaluates every task under the energy meter and returns plain data.

    Args:
        spec: The stored EvalSpec.
        context: ``checkpoints_dir``, ``models_root`` and ``workdir``.
        progress: Reports (stage, fraction).

    Returns:
        The EvalResult as the job table stores it.
    """
    from eval_service.errors import library_failures
    from eval_service.eval_messages import config_from_spec, spec_from_stored
    from eval_service.evaluator import resolve_device, run_eval
    from eval_service.task_index import local_task_names
    from eval_service.tasks import task_manager
    from eval_service.tasks.sources import source_folders
    from greenprune.core import checkpoint
    from greenprune.core.models import load_source_model

    message = spec_from_stored(spec)
    if message.HasField("profile"):
        return to_json_dict(_profile(message, context, progress))
    config = config_from_spec(message)
    device = resolve_device(config.device)
    progress("loading", 0.0)
    if message.checkpoint_id:
        path = checkpoint.checkpoint_dir(Path(context["checkpoints_dir"]), message.checkpoint_id)
        model, tokenizer, manifest = checkpoint.load_checkpoint(path, device=device)
        base_model = manifest["source"]["model"]
    else:
        model, tokenizer = load_source_model(
            message.model, Path(context["models_root"]), device=device
        )
        base_model = message.model
    folders = list(config.task_paths)
    if config.task_sources:
        sources = source_folders(Path(context["task_sources_dir"]), config.task_sources)
        folders += [str(folder) for folder in sources]
    manager = task_manager(
        [Path(p) for p in folders],
        include_defaults=not set(config.tasks) <= local_task_names(folders),
    )
    subject = (
        f"checkpoint {message.checkpoint_id!r}"
        if message.checkpoint_id
        else f"model {message.model!r}"
    )
    with library_failures(subject):
        outcomes = run_eval(
            model,
            tokenizer,
            config,
            task_manager=manager,
            workdir=Path(context["workdir"]),
            progress=progress,
        )
    result = eval_pb2.EvalResult(model=base_model)
    for outcome in outcomes:
        result.versions.update(outcome.versions)
        result.tasks.append(outcome.to_pb())
    return to_json_dict(result)


def _profile(
    spec: eval_pb2.EvalSpec, context: dict[str, Any], progress: Callable[[str, float], None]
) -> eval_pb2.EvalResult:
    """Loads every checkpoint of a profile job and measures them in interleaved rounds."""
    from eval_service.eval_messages import profile_config
    from eval_service.evaluator import resolve_device
    from eval_service.profile import run_profile
    from greenprune.core import checkpoint, kernels

    device = resolve_device(spec.device)
    config = profile_config(spec, device)
    models, paths, base_model = [], [], ""
    for index, checkpoint_id in enumerate(config.checkpoint_ids):
        progress(f"loading {checkpoint_id}", 0.0)
        path = checkpoint.checkpoint_dir(Path(context["checkpoints_dir"]), checkpoint_id)
        model, _, manifest = checkpoint.load_checkpoint(path, device=device)
        model.eval()
        paths.append(kernels.prepare(model, manifest, device))
        models.append(model)
        if index == 0:
            base_model = manifest["source"]["model"]
    profile = run_profile(
        models, config, workdir=Path(context["workdir"]), progress=progress, kernel_paths=paths
    )
    return eval_pb2.EvalResult(model=base_model, profile=profile)
