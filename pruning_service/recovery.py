"""Recovery fine-tuning: LoRA on a pruned model, merged back into plain weights.

A prune job whose spec carries a ``RecoverySpec`` prunes as usual, then tunes LoRA adapters
(peft) on the pruned model on offline text (the reference corpus or a text file under the
models root), merges them with ``merge_and_unload`` and saves the merged model in the same safe
checkpoint format. The merged model has the pruned model's shapes and parameter count: the
adapters leave nothing behind. No grpc here.

What the tuning minimizes (``loss``):

- ``lm``: the causal language-model loss on the text.
- ``distill``: the KL divergence from the unpruned model's (the teacher's) next-token
  distributions to the pruned model's, both softened by ``temperature`` and scaled by its
  square (Hinton et al.), as Minitron recovers its pruned models.

A sparse model keeps its sparsity: merging the adapters fills its zeros, so the weights that
were zero before the tuning are zeroed again (2:4 stays 2:4) and counted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import (
    RECOVERY_LOSSES,
    RECOVERY_SOURCE_DEFAULT,
    RECOVERY_SPEC,
    RECOVERY_TARGET_MODULES_DEFAULT,
    check,
    check_text,
    default,
)

Progress = Callable[[str, float], None]
FIELD = "spec.recovery"
_LOSS_WINDOW = 5
"""Steps averaged for the first and last loss figures."""


def _noop(stage: str, fraction: float) -> None:
    """Ignores progress reports."""


@dataclass(frozen=True)
class RecoveryConfig:
    """How a pruned model is tuned back (mirrors ``RecoverySpec`` by field name).

    Attributes:
        rank: LoRA rank.
        alpha: LoRA alpha (the update is scaled by alpha / rank).
        target_modules: Module names (suffixes) that get adapters.
        steps: Optimizer steps.
        learning_rate: AdamW's peak learning rate (warm-up, then cosine decay to a tenth).
        batch_size: Token windows per step.
        sequence_length: Tokens per window.
        seed: Seeds the adapters' initialisation and the text's order.
        source: ``reference`` (the reference corpus) or a text file under the models root.
        loss: ``lm`` or ``distill`` (from the unpruned model).
        temperature: The softmax temperature of distillation.
    """

    rank: int = default(RECOVERY_SPEC, "rank")
    alpha: float = default(RECOVERY_SPEC, "alpha")
    target_modules: tuple[str, ...] = RECOVERY_TARGET_MODULES_DEFAULT
    steps: int = default(RECOVERY_SPEC, "steps")
    learning_rate: float = default(RECOVERY_SPEC, "learning_rate")
    batch_size: int = default(RECOVERY_SPEC, "batch_size")
    sequence_length: int = default(RECOVERY_SPEC, "sequence_length")
    seed: int = default(RECOVERY_SPEC, "seed")
    source: str = RECOVERY_SOURCE_DEFAULT
    loss: str = RECOVERY_LOSSES[0]
    temperature: float = default(RECOVERY_SPEC, "temperature")


def learning_rate_factor(step: int, steps: int) -> float:
    """Linear warm-up over the first tenth of the steps, then cosine decay to a tenth."""
    warmup = max(1, steps // 10)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def config_from_stored(spec: Mapping[str, Any]) -> RecoveryConfig | None:
    """The recovery settings of a stored PruneSpec (JSON dict), None when it has none."""
    stored = spec.get("recovery")
    if not stored:
        return None
    values: dict[str, Any] = {}
    for name in RecoveryConfig.__dataclass_fields__:
        if name in stored and stored[name] not in (None, "", []):
            values[name] = stored[name]
    if "target_modules" in values:
        values["target_modules"] = tuple(values["target_modules"])
    for name in ("rank", "steps", "batch_size", "sequence_length", "seed"):
        if name in values:
            values[name] = int(values[name])
    for name in ("alpha", "learning_rate", "temperature"):
        if name in values:
            values[name] = float(values[name])
    if "loss" in values:
        values["loss"] = _loss_spelling(values["loss"])
    return RecoveryConfig(**values)


def _loss_spelling(stored: Any) -> str:
    """``lm``/``distill`` of a stored loss: its proto name, number or spelling."""
    from greenprune.api.pruning.v1.pruning_pb2 import RecoveryLoss
    from greenprune.core.limits import enum_number, enum_spelling

    if isinstance(stored, int):
        number = stored
    elif str(stored).startswith("RECOVERY_LOSS_"):
        number = RecoveryLoss.Value(str(stored))
    else:
        number = enum_number(RecoveryLoss, str(stored))
    return enum_spelling(RecoveryLoss, number) if number else str(stored)


def validate(config: RecoveryConfig, models_root: Path) -> None:
    """Refuses settings outside ``limits.RECOVERY_SPEC`` or a text source outside the root.

    Raises:
        InvalidArgumentError: Naming the field (``spec.recovery.<name>``).
    """
    check(config, RECOVERY_SPEC, prefix=FIELD)
    if config.loss not in RECOVERY_LOSSES:
        raise InvalidArgumentError(
            f"{FIELD}.loss", f"{config.loss!r} is not one of {', '.join(RECOVERY_LOSSES)}"
        )
    if not config.target_modules:
        raise InvalidArgumentError(f"{FIELD}.target_modules", "names no module")
    for name in config.target_modules:
        check_text(f"{FIELD}.target_modules", name)
        if not name.replace("_", "").replace(".", "").isalnum():
            raise InvalidArgumentError(f"{FIELD}.target_modules", f"{name!r} is not a module name")
    check_text(f"{FIELD}.source", config.source)
    if config.source != RECOVERY_SOURCE_DEFAULT:
        from pruning_service.calibration import resolve_text_file

        try:
            resolve_text_file(config.source, models_root)
        except InvalidArgumentError as error:
            raise InvalidArgumentError(f"{FIELD}.source", error.message) from error


def training_windows(config: RecoveryConfig, tokenizer: Any, models_root: Path) -> torch.Tensor:
    """``(n, sequence_length)`` token windows of the recovery text, ``n <= steps * batch``."""
    from pruning_service.calibration import calibration_tokens

    return calibration_tokens(
        tokenizer,
        source=config.source,
        samples=max(config.batch_size, min(config.steps * config.batch_size, 4096)),
        sequence_length=config.sequence_length,
        seed=config.seed,
        models_root=models_root,
    )


def _target_names(model: nn.Module, wanted: tuple[str, ...]) -> list[str]:
    """The suffixes of ``wanted`` that name at least one Linear layer of ``model``."""
    present = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
    }
    found = [name for name in wanted if name in present]
    if not found:
        raise InvalidArgumentError(
            f"{FIELD}.target_modules",
            f"none of {list(wanted)} is a linear layer of the model (it has {sorted(present)})",
        )
    return found


def recover_model(
    model: nn.Module,
    tokenizer: Any,
    config: RecoveryConfig,
    *,
    models_root: Path,
    progress: Progress = _noop,
    windows: torch.Tensor | None = None,
    teacher: nn.Module | None = None,
    keep_zeros: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Tunes LoRA adapters on ``model``, merges them and returns the plain model and a record.

    Args:
        model: The pruned model (any shapes the loader supports); modified in place.
        tokenizer: Its tokenizer (for the text).
        config: The settings.
        models_root: Where a text file may come from.
        progress: Called with a stage (``recovering step i/N loss x``) and the fraction done.
        windows: Token windows to train on; None reads them from ``config.source``.
        teacher: The unpruned model, for ``distill`` (frozen, same tokenizer).
        keep_zeros: Zero again, after merging, every linear weight that was zero before (a
            model with weight sparsity keeps it).

    Returns:
        The merged model (no adapter modules left, the zeros it had kept) and the record
        stored in the manifest.
    """
    from peft import LoraConfig, get_peft_model

    if config.loss == "distill" and teacher is None:
        raise ValueError("distillation needs the unpruned model as its teacher")
    started = time.monotonic()
    zeros = _zero_masks(model) if keep_zeros else {}
    parameters_before = sum(p.numel() for p in model.parameters())
    if windows is None:
        windows = training_windows(config, tokenizer, models_root)
    targets = _target_names(model, config.target_modules)
    torch.manual_seed(config.seed)
    model.train()
    model.config.use_cache = False
    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            target_modules=targets,
            lora_dropout=0.0,
            bias="none",
            task_type="CAUSAL_LM",
        ),
    )
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, config.steps)
    )
    order = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    permutation = torch.randperm(len(windows), generator=order)
    cursor = 0
    progress(f"recovering step 0/{config.steps}", 0.0)
    for step in range(config.steps):
        if cursor + config.batch_size > len(permutation):
            permutation, cursor = torch.randperm(len(windows), generator=order), 0
        batch = windows[permutation[cursor : cursor + config.batch_size]]
        cursor += config.batch_size
        if config.loss == "distill":
            assert teacher is not None
            loss = distillation_loss(
                peft_model(input_ids=batch).logits, _logits(teacher, batch), config.temperature
            )
        else:
            loss = peft_model(input_ids=batch, labels=batch).loss
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError(f"recovery loss is {value} at step {step + 1}")
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(value)
        progress(
            f"recovering step {step + 1}/{config.steps} loss {losses[-1]:.3f}",
            (step + 1) / config.steps,
        )
    merged = peft_model.merge_and_unload()
    merged.eval()
    rezeroed = _rezero(merged, zeros)
    leftover = [name for name, _ in merged.named_modules() if "lora" in name.lower()]
    if leftover:
        raise RuntimeError(f"adapters left after merging: {leftover[:3]}")
    parameters_after = sum(p.numel() for p in merged.parameters())
    if parameters_after != parameters_before:
        raise RuntimeError(
            f"merging changed the parameter count: {parameters_before} -> {parameters_after}"
        )
    window = min(_LOSS_WINDOW, len(losses))
    record = {
        "settings": {**asdict(config), "target_modules": list(config.target_modules)},
        "method": "LoRA (peft), adapters merged with merge_and_unload",
        "loss": config.loss,
        "loss_description": _LOSS_WORDS[config.loss],
        "temperature": config.temperature if config.loss == "distill" else 0.0,
        "rezeroed_weights": rezeroed,
        "target_modules": targets,
        "steps": config.steps,
        "tokens": config.steps * config.batch_size * int(windows.shape[1]),
        "windows": int(windows.shape[0]),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "initial_loss": sum(losses[:window]) / window if window else 0.0,
        "final_loss": sum(losses[-window:]) / window if window else 0.0,
        "losses": [round(value, 5) for value in losses],
        "wall_seconds": round(time.monotonic() - started, 3),
        "peft_version": _version("peft"),
    }
    return merged, record


_LOSS_WORDS = {
    "lm": "causal language-model loss on the recovery text",
    "distill": "KL divergence from the unpruned model's softened next-token distributions "
    "(temperature squared times KL, per token)",
}


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> Any:
    """``T^2 * KL(teacher || student)`` of softened distributions, averaged over tokens.

    Args:
        student: ``(..., vocab)`` logits of the model being tuned.
        teacher: The unpruned model's logits for the same tokens.
        temperature: ``T``; above 1 softens both distributions.
    """
    vocab = student.shape[-1]
    log_student = torch.log_softmax(student.reshape(-1, vocab).float() / temperature, dim=-1)
    log_teacher = torch.log_softmax(teacher.reshape(-1, vocab).float() / temperature, dim=-1)
    divergence = torch.nn.functional.kl_div(
        log_student, log_teacher, log_target=True, reduction="batchmean"
    )
    return divergence * temperature**2


def _logits(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=tokens, use_cache=False).logits


def _zero_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Where each linear weight that holds zeros is zero."""
    masks = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.weight.is_floating_point():
            mask = module.weight.detach() == 0
            if mask.any():
                masks[name] = mask
    return masks


def _rezero(model: nn.Module, masks: dict[str, torch.Tensor]) -> int:
    """Zeroes again what merging the adapters filled; returns how many weights that was."""
    filled = 0
    with torch.no_grad():
        for name, mask in masks.items():
            weight = model.get_submodule(name).weight
            filled += int((weight[mask] != 0).sum())
            weight.masked_fill_(mask, 0.0)
    return filled


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def scaled(progress: Progress, start: float, end: float) -> Progress:
    """``progress`` with fractions mapped onto ``[start, end]`` of the whole job."""

    def report(stage: str, fraction: float) -> None:
        progress(stage, start + (end - start) * min(max(fraction, 0.0), 1.0))

    return report


PRUNE_SHARE = 0.5
"""The part of a recovered job's progress bar that pruning fills; the tune fills the rest."""


def recover_checkpoint(
    unrecovered: Path,
    config: RecoveryConfig,
    pruning: Any,
    *,
    meter: Any,
    checkpoints_dir: Path,
    checkpoint_id: str,
    models_root: Path,
    progress: Progress = _noop,
) -> Any:
    """Tunes the checkpoint at ``unrecovered`` under its own meter window and saves the result.

    Args:
        unrecovered: The pruned checkpoint (a staging copy the caller deletes afterwards).
        config: The recovery settings.
        pruning: The pruning's ``PruneResult`` (its energy, wall time and lineage are kept).
        meter: The job's ``EnergyMeter``; the tune gets a window of its own.
        checkpoints_dir: Where the recovered checkpoint is written.
        checkpoint_id: The job's checkpoint id.
        models_root: Where a text file may come from.
        progress: The job's progress callback (this stage fills its second half).

    Returns:
        The job's ``PruneResult``: the recovered checkpoint's figures, the pruning's energy in
        ``energy`` and the tune's in ``recovery``.
    """
    from greenprune.api.pruning.v1.pruning_pb2 import PruneResult
    from greenprune.core.checkpoint import load_checkpoint, read_manifest, save_checkpoint
    from greenprune.core.energy.readings import summarize
    from pruning_service.pruner import result_from_manifest

    started = time.monotonic()
    validate(config, models_root)
    report = scaled(progress, PRUNE_SHARE, 0.97)
    report("recovering: loading", 0.0)
    model, tokenizer, manifest = load_checkpoint(unrecovered)
    windows = training_windows(config, tokenizer, models_root)
    teacher = None
    if config.loss == "distill":
        from greenprune.core.models import load_source_model

        teacher, _ = load_source_model(manifest["source"]["model"], models_root)
        teacher.eval()
    with meter.window() as reading:
        merged, record = recover_model(
            model,
            tokenizer,
            config,
            models_root=models_root,
            progress=report,
            windows=windows,
            teacher=teacher,
            keep_zeros=bool(manifest.get("sparsity")),
        )
    del teacher
    energy = summarize(
        [reading], meter, tokens=record["tokens"], samples=config.steps * config.batch_size
    )
    record["parent_content_hash"] = manifest.get("content_hash", "")
    record["parent"] = {
        "content_hash": manifest.get("content_hash", ""),
        "spec": manifest.get("spec"),
        "note": "the pruned checkpoint before recovery; a prune job of the same spec without"
        " recovery writes the same weights",
    }
    progress("saving", 0.98)
    complete = {
        key: value
        for key, value in manifest.items()
        if key not in ("format", "format_version", "checkpoint_id", "content_hash")
        and key not in ("bytes_on_disk", "weight_files")
    }
    complete["recovery"] = record
    complete["method_family"] = method_family(manifest.get("method_family", "width"), config)
    path = save_checkpoint(merged, tokenizer, complete, Path(checkpoints_dir), checkpoint_id)
    progress("saving", 1.0)
    result = result_from_manifest(
        read_manifest(path), checkpoint_id, pruning.wall_seconds + time.monotonic() - started
    )
    result.energy.CopyFrom(pruning.energy)
    recovery = result.recovery
    recovery.energy.CopyFrom(energy)
    recovery.steps = record["steps"]
    recovery.tokens = record["tokens"]
    recovery.initial_loss = record["initial_loss"]
    recovery.final_loss = record["final_loss"]
    recovery.trainable_parameters = record["trainable_parameters"]
    recovery.wall_seconds = record["wall_seconds"]
    recovery.parent_content_hash = record["parent_content_hash"]
    recovery.loss = record["loss"]
    recovery.temperature = record["temperature"]
    recovery.rezeroed_weights = record["rezeroed_weights"]
    assert isinstance(result, PruneResult)
    return result


def method_family(pruned: str, config: RecoveryConfig) -> str:
    """The family of a recovered checkpoint: ``width+lora``, ``wanda-2:4+lora-distill``."""
    return f"{pruned}+lora" + ("-distill" if config.loss == "distill" else "")


def normalize(recovery: Any) -> None:
    """Fills a ``RecoverySpec`` message's unset fields with the defaults of ``RECOVERY_SPEC``."""
    from greenprune.core.limits import fill_defaults

    fill_defaults(recovery, RECOVERY_SPEC)
    if not recovery.target_modules:
        recovery.target_modules.extend(RECOVERY_TARGET_MODULES_DEFAULT)
    recovery.source = recovery.source or RECOVERY_SOURCE_DEFAULT


def validate_spec(spec: Any, models_root: Path, skeleton: nn.Module | None = None) -> None:
    """Checks the ``recovery`` of a (normalized) ``PruneSpec`` message, if it has one.

    With the model's ``skeleton`` (see ``pruner.validate_config``), also that the target
    modules name linear layers of the model, as the job checks (pruning keeps module names).
    """
    if not spec.HasField("recovery"):
        return
    from greenprune.core.message_records import to_json_dict

    config = config_from_stored(to_json_dict(spec))
    if config is not None:
        validate(config, models_root)
        if skeleton is not None:
            _target_names(skeleton, config.target_modules)
