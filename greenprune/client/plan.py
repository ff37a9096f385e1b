"""The plan of an experiment: its prune and eval steps, each keyed by a hash of its inputs.

The plan is deterministic before anything runs: every step's ``request_id`` is a hash of its
inputs. A prune step (one per model, ratio and calibration draw; ratio 0 writes an unpruned
copy) hashes the experiment name, the model, the pruning settings, the ratio and the seed: with
``pruning.seeds: N`` a pruned point has N steps, draw k seeded ``seed + k`` (draw 0 is the
step a single seed plans, with the same id). The energy profile measures draw 0 of each point
(the draws share the architecture; their energy differs by the noise the profile measures).
An eval step (one per prune step and task) hashes its prune step's request_id, the task and
the eval settings. The EvalService records each task of a
job as an eval run ``{job request_id}/{task}``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from greenprune.api.eval.v1 import eval_pb2
from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.client.spec import (
    Experiment,
    LoadedExperiment,
    VariantParts,
    variant_parts,
    variant_spelling,
)
from greenprune.core.limits import (
    PRUNE_SPEC_ENUM_DEFAULTS,
    SEMI_STRUCTURED,
    SEMI_STRUCTURED_RATIO,
    enum_number,
    method_value,
    prune_enum_name,
)

REQUEST_ID_HASH_CHARS = 24


def request_id(kind: str, inputs: dict[str, Any]) -> str:
    """Returns ``{kind}-{hash}``: a sha256 of the canonical JSON of ``inputs``, shortened."""
    canonical = json.dumps({"kind": kind, **inputs}, sort_keys=True, separators=(",", ":"))
    return f"{kind}-{hashlib.sha256(canonical.encode()).hexdigest()[:REQUEST_ID_HASH_CHARS]}"


@dataclass(frozen=True)
class PruneStep:
    """Prune one model at one ratio.

    Attributes:
        request_id: The idempotency key, a hash of the inputs.
        model: The model source.
        ratio: The target ratio; 0 writes an unpruned copy.
        spec: The PruneSpec to send.
        variant: The compression variant (``width``, ``depth``, ``int8``, ``width+int8``, ...).
        draw: The calibration draw of the point (``pruning.seeds``); 0 is the first.
    """

    request_id: str
    model: str
    ratio: float
    spec: pruning_pb2.PruneSpec = field(compare=False, repr=False)
    variant: str = "width"
    draw: int = 0

    @property
    def recovered(self) -> bool:
        """Whether the step tunes the pruned model back with LoRA (``recovery`` in the file)."""
        return self.spec.HasField("recovery")

    @property
    def distilled(self) -> bool:
        """Whether the recovery distills from the unpruned model (``losses: [distill]``)."""
        return self.recovered and self.spec.recovery.loss == pruning_pb2.RECOVERY_LOSS_DISTILL

    @property
    def label(self) -> str:
        """A short human name of the step."""
        return f"prune {self.point}"

    @property
    def point(self) -> str:
        """The model, ratio and what else tells this checkpoint apart, in words.

        e.g. ``reference:tiny-llama @ 0.50 (depth, LoRA-recovered, distilled)``.
        """
        parts = [] if self.variant == "width" else [self.variant]
        parts += ["LoRA-recovered"] if self.recovered else []
        parts += ["distilled"] if self.distilled else []
        parts += [f"draw {self.draw + 1}, seed {self.spec.seed}"] if self.draw else []
        suffix = f" ({', '.join(parts)})" if parts else ""
        return f"{self.model} @ {self.ratio:.2f}{suffix}"

    @property
    def is_baseline(self) -> bool:
        """Whether the step writes the unpruned, unquantized, unsparsified copy."""
        return self.ratio == 0 and self.spec.quantization == 0 and self.spec.sparsity == 0


@dataclass(frozen=True)
class EvalStep:
    """Evaluate one checkpoint (the result of ``prune``) on one task.

    Attributes:
        request_id: The idempotency key of the job, a hash of the inputs.
        prune: The prune step whose checkpoint is evaluated.
        task: The lm-eval task.
        spec: The EvalSpec to send, without the checkpoint id (known once pruning is done).
    """

    request_id: str
    prune: PruneStep
    task: str
    spec: eval_pb2.EvalSpec = field(compare=False, repr=False)

    @property
    def run_id(self) -> str:
        """The request_id of the eval run the EvalService records for the task."""
        return f"{self.request_id}/{self.task}"

    @property
    def label(self) -> str:
        """A short human name of the step."""
        return f"eval {self.prune.point} on {self.task}"


@dataclass(frozen=True)
class ProfileStep:
    """Profile the energy of every checkpoint of one model, in interleaved rounds.

    Attributes:
        request_id: The idempotency key of the job, a hash of the inputs.
        model: The model source.
        prunes: The prune steps whose checkpoints are profiled; the first is the baseline.
        spec: The EvalSpec to send, without checkpoint ids (known once pruning is done).
    """

    request_id: str
    model: str
    prunes: tuple[PruneStep, ...]
    spec: eval_pb2.EvalSpec = field(compare=False, repr=False)

    @property
    def label(self) -> str:
        """A short human name of the step."""
        return f"energy profile of {self.model} ({len(self.prunes)} checkpoints)"


Step = PruneStep | EvalStep | ProfileStep
"""Any step of a plan."""


@dataclass(frozen=True)
class Plan:
    """Every step of an experiment, in a fixed order.

    Attributes:
        experiment: The experiment name (the label jobs and runs carry).
        prune_steps: One per model and ratio, in file order.
        eval_steps: One per prune step and task, in file order.
        profile_steps: One per model when the energy profile is on.
        task_folders: The file's own task folders (resolved); the runner sends their files to
            the EvalService as content and names the stored sources in every eval step.
    """

    experiment: str
    prune_steps: tuple[PruneStep, ...]
    eval_steps: tuple[EvalStep, ...]
    profile_steps: tuple[ProfileStep, ...] = ()
    task_folders: tuple[Path, ...] = ()

    @property
    def steps(self) -> tuple[PruneStep | EvalStep | ProfileStep, ...]:
        """All steps: prune steps, then eval steps, then profiles."""
        return (*self.prune_steps, *self.eval_steps, *self.profile_steps)

    def recovered_pair(self) -> tuple[PruneStep, PruneStep]:
        """The first draw's unrecovered and recovered prune steps at the largest recovered ratio.

        Raises:
            ValueError: The plan recovers no checkpoint.
        """
        recovered = [step for step in self.prune_steps if step.recovered and step.draw == 0]
        if not recovered:
            raise ValueError(f"experiment {self.experiment!r} recovers no checkpoint")
        chosen = max(recovered, key=lambda step: step.ratio)
        plain = next(
            step
            for step in self.prune_steps
            if not step.recovered
            and (step.model, step.ratio, step.variant, step.draw)
            == (chosen.model, chosen.ratio, chosen.variant, chosen.draw)
        )
        return plain, chosen


_VARIANT_SETTINGS = {
    "depth_criterion": lambda structure, quantization: "depth" in structure,
    "depth_share": lambda structure, quantization: structure == "width-and-depth",
    "quantization_group_size": lambda structure, quantization: quantization == "int4",
}
"""Pruning settings that only some variants use, and which ones."""


def pruning_inputs(experiment: Experiment, variant: str = "width") -> dict[str, Any]:
    """The pruning settings that decide a checkpoint (the ratio aside).

    Settings only some variants use count for those alone, so that plain width pruning keeps
    the request ids it had before variants existed.
    """
    pruning = experiment.pruning.model_dump(exclude={"ratios", "variants", "seeds"})
    parts = variant_parts(variant)
    for name, used in _VARIANT_SETTINGS.items():
        if not used(parts.structure, parts.quantization):
            pruning.pop(name)
    inputs = {"pruning": pruning, "seed": experiment.seed}
    if variant != "width":
        inputs["variant"] = variant
    return inputs


def _variant_steps(experiment: Experiment, model: str) -> list[PruneStep]:
    """The prune steps of one model: every variant at every ratio, duplicates once.

    Quantization alone is planned once (unpruned); ratio 0 of any pruning variant is the
    baseline, or the variant's quantization of it. A point that prunes or zeroes weights by a
    score is planned once per calibration draw (``pruning.seeds``); the others draw nothing.
    """
    steps: dict[str, PruneStep] = {}
    for variant in experiment.pruning.variants:
        parts = variant_parts(variant)
        ratios = experiment.pruning.ratios if parts.takes_ratios else [_once_ratio(parts)]
        for ratio in ratios:
            # Ratio 0 removes and zeroes nothing of its own: the same checkpoint as the variant
            # without its structure and unstructured sparsity (2:4 and quantization stay).
            same = variant
            if ratio == 0:
                same = _at_ratio_zero(parts)
                ratio = _once_ratio(variant_parts(same))
            draws = experiment.pruning.seeds if _draws_calibration(ratio, same) else 1
            for draw in range(draws):
                inputs = pruning_inputs(experiment, same)
                inputs["seed"] = experiment.seed + draw
                if ratio == 0 and same != "width":
                    inputs["pruning"].pop("method")  # nothing is scored
                rid = request_id(
                    "prune",
                    {
                        "experiment": experiment.name,
                        "model": model,
                        "ratio": float(ratio),
                        **inputs,
                    },
                )
                spec = _prune_spec(experiment, model, ratio, same)
                spec.seed = experiment.seed + draw
                steps.setdefault(rid, PruneStep(rid, model, float(ratio), spec, same, draw))
    return list(steps.values())


def _draws_calibration(ratio: float, variant: str) -> bool:
    """Whether a point's checkpoint depends on a calibration draw (else one step suffices).

    Ratio 0 removes and zeroes nothing; 2:4 sparsity and quantization alone are drawn only
    when they score weights on calibration text (sparsity other than magnitude).
    """
    parts = variant_parts(variant)
    if parts.structure != "none" and ratio > 0:
        return True
    return parts.sparsity not in ("none", "magnitude")


def _once_ratio(parts: VariantParts) -> float:
    """The step ratio of a variant without a ratio of its own: 2:4's half, else 0."""
    return SEMI_STRUCTURED_RATIO if parts.sparsity_pattern == SEMI_STRUCTURED else 0.0


def _at_ratio_zero(parts: VariantParts) -> str:
    """The variant that a variant is at ratio 0 (``width`` when nothing is left)."""
    kept = VariantParts(
        "none",
        parts.quantization,
        "none" if parts.unstructured_sparsity else parts.sparsity,
        parts.sparsity_pattern,
    )
    return variant_spelling(kept) or "width"


def _with_recovery(experiment: Experiment, steps: list[PruneStep]) -> list[PruneStep]:
    """``steps``, then a LoRA-recovered copy of each step whose ratio ``recovery`` names.

    One copy per loss of ``recovery.losses``: it prunes as its step does, then tunes;
    quantized steps get none. Its request id hashes the step's and the recovery settings (the
    loss and temperature only for distillation, so LM-loss copies keep the ids they had).
    """
    recovery = experiment.recovery
    settings = recovery.model_dump(exclude={"ratios", "losses", "temperature"})
    recovered = []
    for step in steps:
        if step.ratio not in recovery.ratios or step.spec.quantization != 0:
            continue
        for loss in recovery.losses:
            chosen = dict(settings)
            if loss != "lm":
                chosen.update(loss=loss, temperature=recovery.temperature)
            fields = {**chosen, "seed": experiment.seed}
            fields["loss"] = prune_enum_name_of_loss(loss)
            spec = pruning_pb2.PruneSpec()
            spec.CopyFrom(step.spec)
            spec.recovery.CopyFrom(json_format.ParseDict(fields, pruning_pb2.RecoverySpec()))
            rid = request_id("prune", {"pruned": step.request_id, "recovery": chosen})
            recovered.append(PruneStep(rid, step.model, step.ratio, spec, step.variant, step.draw))
    return [*steps, *recovered]


def prune_enum_name_of_loss(loss: str) -> str:
    """The ``RecoveryLoss`` value name of a file spelling (``distill``)."""
    return pruning_pb2.RecoveryLoss.Name(enum_number(pruning_pb2.RecoveryLoss, loss))


def eval_inputs(experiment: Experiment) -> dict[str, Any]:
    """The eval settings that decide a measurement (the task aside)."""
    settings = experiment.eval.model_dump(exclude={"tasks"})
    return {"eval": settings, "seed": experiment.seed}


def plan_experiment(loaded: LoadedExperiment) -> Plan:
    """Returns the deterministic plan of an experiment file."""
    experiment = loaded.experiment
    prune_steps = [
        s
        for model in experiment.models
        for s in _with_recovery(experiment, _variant_steps(experiment, model))
    ]
    task_folders = tuple((loaded.base_dir / p).resolve() for p in experiment.eval.task_paths)
    eval_steps = []
    for prune in prune_steps:
        for task in experiment.eval.tasks:
            rid = request_id(
                "eval", {"prune": prune.request_id, "task": task, **eval_inputs(experiment)}
            )
            eval_steps.append(EvalStep(rid, prune, task, _eval_spec(experiment, task)))
    profile_steps = []
    if experiment.energy.profile:
        for model in experiment.models:
            # The baseline first: the lowest ratio (ratio 0 when the file lists it), then every
            # variant's checkpoint (unquantized before quantized at equal ratios).
            prunes = sorted(
                (s for s in prune_steps if s.model == model and s.draw == 0),
                key=lambda s: (s.ratio, not s.is_baseline),
            )
            inputs = {
                "prunes": [s.request_id for s in prunes],
                "energy": experiment.energy.model_dump(),
                "device": experiment.eval.device,
                "idle_seconds": experiment.eval.idle_seconds,
                "seed": experiment.seed,
            }
            profile_steps.append(
                ProfileStep(
                    request_id("profile", inputs), model, tuple(prunes), _profile_spec(experiment)
                )
            )
    return Plan(
        experiment.name,
        tuple(prune_steps),
        tuple(eval_steps),
        tuple(profile_steps),
        task_folders,
    )


def _prune_spec(
    experiment: Experiment, model: str, ratio: float, variant: str = "width"
) -> pruning_pb2.PruneSpec:
    """The file's pruning section as a PruneSpec, field by field name (the proto is the schema).

    The variant sets ``structure``, ``quantization`` and the sparsity (``ratio`` is the
    structure's; ``sparsity_ratio`` is the step's ratio for unstructured sparsity alone, a half
    for 2:4); enum fields are spelled as in the file
    (``block-influence``) and become their proto names here.
    """
    values = experiment.pruning.model_dump(exclude={"ratios", "variants", "seeds"})
    values["method"] = pruning_pb2.PruningMethod.Name(method_value(values["method"]))
    parts = variant_parts(variant)
    values.update(structure="width" if parts.structure == "none" else parts.structure)
    values.update(quantization=parts.quantization, sparsity=parts.sparsity)
    values.update(sparsity_pattern=parts.sparsity_pattern)
    if parts.sparsity != "none":
        # The step's ratio is the structure's; without one, unstructured sparsity's own.
        sparse_share = ratio if parts.unstructured_sparsity else SEMI_STRUCTURED_RATIO
        structural = ratio if parts.structure != "none" else 0.0
        values.update(sparsity_ratio=sparse_share)
        ratio = structural
    for name in PRUNE_SPEC_ENUM_DEFAULTS:
        values[name] = prune_enum_name(name, values[name])
    values.update(model=model, ratio=float(ratio), seed=experiment.seed)
    return json_format.ParseDict(values, pruning_pb2.PruneSpec())


def analysis(experiment: Experiment) -> dict[str, Any]:
    """The file's margins and workload as an ``Analysis`` (recorded with every run).

    Neither is part of a step's id. Changing them re-judges the recorded runs once a run of
    the experiment is recorded with them; it never repeats an evaluation.
    """
    values = experiment.margins.model_dump()
    if experiment.workload is not None:
        values["workload"] = experiment.workload.model_dump()
    return values


def _eval_spec(experiment: Experiment, task: str) -> eval_pb2.EvalSpec:
    """The file's eval section as an EvalSpec for one task (task sources are added on upload)."""
    values = experiment.eval.model_dump(exclude={"tasks", "task_paths", "limit"})
    spec = json_format.ParseDict(
        {**values, "tasks": [task], "seed": experiment.seed, "analysis": analysis(experiment)},
        eval_pb2.EvalSpec(),
    )
    if experiment.eval.limit is not None:
        spec.limit = experiment.eval.limit
    return spec


def _profile_spec(experiment: Experiment) -> eval_pb2.EvalSpec:
    """The energy profile's EvalSpec, without checkpoint ids."""
    profile = experiment.energy.profile_fields()
    return json_format.ParseDict(
        {
            "device": experiment.eval.device,
            "idle_seconds": experiment.eval.idle_seconds,
            "seed": experiment.seed,
            "profile": profile,
            "analysis": analysis(experiment),
        },
        eval_pb2.EvalSpec(),
    )
