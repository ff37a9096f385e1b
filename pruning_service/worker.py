"""The prune job's body; runs in a spawned child process, never on the server's event loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from greenprune.core.records import to_json_dict


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

    from greenprune.core.energy.meter import prime
    from pruning_service import convert, pruner  # noqa: F401

    prime("cpu")


def run(
    spec: dict[str, Any], context: dict[str, Any], progress: Callable[[str, float], None]
) -> dict[str, Any]:
    """Prunes under the energy meter and returns the PruneResult as the job table stores it.

    Args:
        spec: The stored PruneSpec.
        context: ``checkpoints_dir``, ``models_root``, ``job_id`` and ``workdir``.
        progress: Reports (stage, fraction).
    """
    from greenprune.core.energy.meter import EnergyMeter
    from greenprune.core.energy.records import summarize
    from pruning_service.convert import config_from_stored
    from pruning_service.pruner import result_from_manifest, run_prune

    config = config_from_stored(spec)
    meter = EnergyMeter(device="cpu", workdir=Path(context["workdir"]))
    with meter.window() as reading:
        outcome = run_prune(
            config,
            checkpoints_dir=Path(context["checkpoints_dir"]),
            checkpoint_id=checkpoint_id_for(context["job_id"]),
            models_root=Path(context["models_root"]),
            progress=progress,
        )
    calibration = outcome.manifest.get("calibration") or {}
    windows = int(calibration.get("windows", 0))
    energy = summarize(
        [reading],
        meter,
        tokens=windows * int(calibration.get("sequence_length", 0)),
        samples=windows,
    )
    result = result_from_manifest(outcome.manifest, outcome.checkpoint_id, outcome.wall_seconds)
    result.energy.CopyFrom(energy)
    return to_json_dict(result)
