"""The prune job's body; runs in a spawned child process, never on the server's event loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

LAYER_FIELDS = ("index", "attention_heads", "key_value_heads", "intermediate_size", "kept")


def checkpoint_id_for(job_id: str) -> str:
    """Returns the checkpoint id of a job: one per attempt, never chosen by a client."""
    return f"ckpt-{job_id}"


def warm(lane: str) -> None:
    """Readies a job process before its job arrives: imports, then CodeCarbon's detection.

    Args:
        lane: The runner's lane (prune jobs run on the CPU whatever it is).
    """
    import torch_pruning  # noqa: F401
    from transformers import LlamaForCausalLM  # noqa: F401 - loads the Llama modelling code

    from greenprune.energy import prime
    from pruning_service import convert, pruner  # noqa: F401

    prime("cpu")


def run(
    spec: dict[str, Any], context: dict[str, Any], progress: Callable[[str, float], None]
) -> dict[str, Any]:
    """Prunes under the energy meter and returns the result as plain data.

    Args:
        spec: The stored :class:`~pruning_service.pruner.PruneConfig`.
        context: ``checkpoints_dir``, ``models_root``, ``job_id`` and ``workdir``.
        progress: Reports (stage, fraction).

    Returns:
        The fields of a PruneResult, with ``energy`` as an EnergyReport's dict.
    """
    from greenprune.energy import EnergyMeter, summarize
    from pruning_service.convert import config_from_dict
    from pruning_service.pruner import run_prune

    config = config_from_dict(spec)
    meter = EnergyMeter(device="cpu", workdir=Path(context["workdir"]))
    with meter.window() as reading:
        outcome = run_prune(
            config,
            checkpoints_dir=Path(context["checkpoints_dir"]),
            checkpoint_id=checkpoint_id_for(context["job_id"]),
            models_root=Path(context["models_root"]),
            progress=progress,
        )
    manifest = outcome.manifest
    calibration = manifest.get("calibration") or {}
    windows = int(calibration.get("windows", 0))
    energy = summarize(
        [reading],
        meter,
        tokens=windows * int(calibration.get("sequence_length", 0)),
        samples=windows,
    )
    return {
        "checkpoint_id": outcome.checkpoint_id,
        "parameters_before": manifest["parameters_before"],
        "parameters_after": manifest["parameters_after"],
        "prunable_parameters_before": manifest["prunable_parameters_before"],
        "prunable_parameters_after": manifest["prunable_parameters_after"],
        "achieved_ratio": manifest["achieved_ratio"],
        "macs_before": manifest["macs_before"],
        "macs_after": manifest["macs_after"],
        "bytes_on_disk": manifest["bytes_on_disk"],
        "layers": [{k: layer[k] for k in LAYER_FIELDS} for layer in manifest["layers"]],
        "wall_seconds": outcome.wall_seconds,
        "uniform": manifest["uniform"],
        "content_hash": manifest["content_hash"],
        "architecture": manifest["architecture"],
        "versions": {k: str(v) for k, v in manifest.get("versions", {}).items()},
        "energy": dataclasses.asdict(energy),
    }
