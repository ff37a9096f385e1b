"""The prune job's body; runs in a spawned child process, never on the server's event loop."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from greenprune.core.message_records import to_json_dict

COST_IDLE_SECONDS = 1.0
"""The idle baseline of a prune job's meter (its CPU time when idle is near 0; a counter's
idle power is not), subtracted from the pruning's and recovery's windows."""


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
    from pruning_service import prune_messages, pruner  # noqa: F401

    prime("cpu")


def run(
    spec: dict[str, Any], context: dict[str, Any], progress: Callable[[str, float], None]
) -> dict[str, Any]:
    """Prunes under the energy meter and returns the PruneResult as the job table stores it.

    The meter's windows cover the work only (pruning; recovery's tuning), not loading or
    saving, and measure what the profile measures (CPU time where no counter can be read,
    with the same threads), net of an idle baseline, so the payback divides like by like.

    Args:
        spec: The stored PruneSpec.
        context: ``checkpoints_dir``, ``models_root``, ``job_id`` and ``workdir``.
        progress: Reports (stage, fraction).
    """
    from greenprune.core.energy.meter import EnergyMeter
    from greenprune.core.energy.readings import summarize
    from pruning_service import recovery as recovery_stage
    from pruning_service.prune_messages import config_from_stored
    from pruning_service.pruner import result_from_manifest, run_prune

    config = config_from_stored(spec)
    recovery = recovery_stage.config_from_stored(spec)
    if recovery is not None:  # before any work: a bad recovery spec fails the job at once
        recovery_stage.validate(recovery, Path(context["models_root"]))
    meter = EnergyMeter(device="cpu", workdir=Path(context["workdir"]))
    # The idle baseline is handled as the profile handles it: measured, then subtracted.
    meter.measure_idle(COST_IDLE_SECONDS)
    checkpoints_dir = Path(context["checkpoints_dir"])
    staging = Path(context["workdir"]) / "unrecovered"
    outcome = run_prune(
        config,
        checkpoints_dir=staging if recovery is not None else checkpoints_dir,
        checkpoint_id=checkpoint_id_for(context["job_id"]),
        models_root=Path(context["models_root"]),
        progress=progress
        if recovery is None
        else recovery_stage.scaled(progress, 0.0, recovery_stage.PRUNE_SHARE),
        meter=meter,
    )
    calibration = outcome.manifest.get("calibration") or {}
    windows = int(calibration.get("windows", 0))
    energy = summarize(
        [outcome.reading],
        meter,
        tokens=windows * int(calibration.get("sequence_length", 0)),
        samples=windows,
    )
    result = result_from_manifest(outcome.manifest, outcome.checkpoint_id, outcome.wall_seconds)
    result.energy.CopyFrom(energy)
    if recovery is not None:
        try:
            result = recovery_stage.recover_checkpoint(
                outcome.path,
                recovery,
                result,
                meter=meter,
                checkpoints_dir=checkpoints_dir,
                checkpoint_id=outcome.checkpoint_id,
                models_root=Path(context["models_root"]),
                progress=progress,
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return to_json_dict(result)
