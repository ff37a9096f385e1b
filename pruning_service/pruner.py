"""Structural pruning of a causal LM into a checkpoint: the domain core of the PruningService.

``run_prune`` loads the model, plans how many heads and MLP channels each pruned layer keeps
so that the removed fraction of prunable parameters matches the target (see
:mod:`pruning_service.planning`), scores heads and channels with torch-pruning's importance
criteria on its dependency graph, cuts them, measures what was actually removed, and writes
the checkpoint atomically. Ratio 0 writes an unpruned copy through the same path. No grpc
here: the servicer converts messages and runs this in a child process.
"""

from __future__ import annotations

import gc
import platform
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from google.protobuf import json_format
from torch import nn

from greenprune.api.pruning.v1.pruning_pb2 import PruneResult, PruningMethod
from greenprune.core import kernels
from greenprune.core.architectures import (
    LayerGeometry,
    LayerShape,
    LlamaFamilyAdapter,
    adapter_for,
    architecture_name,
)
from greenprune.core.checkpoint import read_manifest, save_checkpoint, validate_checkpoint_id
from greenprune.core.errors import FailedPreconditionError, InvalidArgumentError
from greenprune.core.limits import (
    CALIBRATION_SOURCE_DEFAULT,
    DEPTH_CRITERIA,
    PRUNE_SPEC,
    PRUNING_METHODS,
    PRUNING_STRUCTURES,
    QUANTIZATIONS,
    SEMI_STRUCTURED,
    SPARSITIES,
    SPARSITY_PATTERNS,
    check,
    check_text,
    default,
    method_value,
)
from greenprune.core.models import (
    MODEL_FIELD,
    REFERENCE_PREFIX,
    is_causal_lm_config,
    load_model_at,
    local_model_path,
    looks_like_hub_id,
    read_local_config,
    resolve_model_source,
)
from greenprune.core.quantized import model_bytes
from pruning_service import (
    calibration,
    depth,
    graph,
    measure,
    planning,
    quantize,
    sparsity,
    surgery,
)

STAGES = ("loading", "calibrating", "pruning", "saving")
_STAGE_SPANS = {
    "loading": (0.0, 0.15),
    "calibrating": (0.15, 0.45),
    "pruning": (0.45, 0.8),
    "saving": (0.8, 1.0),
}

Progress = Callable[[str, float], None]


def noop(stage: str, fraction: float) -> None:
    """Ignores progress reports."""


@dataclass(frozen=True)
class CalibrationConfig:
    """Where Taylor importance gets its gradients from.

    Attributes:
        samples: Token windows to run.
        sequence_length: Tokens per window.
        source: ``reference`` (the reference corpus) or a text file under the models root.
    """

    samples: int = default(PRUNE_SPEC, "calibration.samples")
    sequence_length: int = default(PRUNE_SPEC, "calibration.sequence_length")
    source: str = CALIBRATION_SOURCE_DEFAULT


@dataclass(frozen=True)
class PruneConfig:
    """What to prune and how.

    Attributes:
        model: ``reference:NAME``, a directory under the models root, or a hub id.
        method: One of :data:`~greenprune.core.limits.PRUNING_METHODS`.
        ratio: Fraction of the prunable parameters to remove, ``0 <= ratio < MAX_RATIO``.
        prune_attention_heads: Remove whole attention heads.
        prune_mlp: Remove MLP channels.
        prune_hidden: Prune the hidden size (not supported; must stay False).
        keep_first_layers: Leading decoder layers left untouched.
        keep_last_layers: Trailing decoder layers left untouched.
        round_to: Kept MLP widths are multiples of this.
        calibration: Calibration data (used by ``taylor``).
        seed: Seeds calibration sampling and ``random`` importance.
        structure: ``width`` (heads and channels), ``depth`` (whole layers) or
            ``width-and-depth``; ``ratio`` is the total share either way.
        depth_criterion: How depth pruning picks layers (``block-influence`` or ``last``).
        depth_share: With ``width-and-depth``, the part of ``ratio`` removed as whole layers.
        quantization: ``none``, ``int8`` or ``int4`` weight-only, applied after pruning.
        quantization_group_size: Input channels per int4 group.
        sparsity: ``none``, ``magnitude``, ``wanda`` or ``sparsegpt``: weight sparsity of
            the pruned layers' projections, after the structural step, before quantization.
        sparsity_pattern: ``unstructured`` or ``2:4``.
        sparsity_ratio: The share of those weights to zero (2:4: 0 or 0.5, a half either way).
    """

    model: str
    method: str = "taylor"
    ratio: float = 0.2
    prune_attention_heads: bool = True
    prune_mlp: bool = True
    prune_hidden: bool = False
    keep_first_layers: int = default(PRUNE_SPEC, "keep_first_layers")
    keep_last_layers: int = default(PRUNE_SPEC, "keep_last_layers")
    round_to: int = default(PRUNE_SPEC, "round_to")
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    seed: int = default(PRUNE_SPEC, "seed")
    structure: str = PRUNING_STRUCTURES[0]
    depth_criterion: str = DEPTH_CRITERIA[0]
    depth_share: float = default(PRUNE_SPEC, "depth_share")
    quantization: str = QUANTIZATIONS[0]
    quantization_group_size: int = default(PRUNE_SPEC, "quantization_group_size")
    sparsity: str = SPARSITIES[0]
    sparsity_pattern: str = SPARSITY_PATTERNS[0]
    sparsity_ratio: float = 0.0


@dataclass
class PruneOutcome:
    """What ``run_prune`` produced.

    Attributes:
        checkpoint_id: The checkpoint's id.
        path: The checkpoint directory.
        manifest: The checkpoint's ``greenprune.json``.
        wall_seconds: Time from start to the checkpoint being in place.
        reading: The meter's reading of the pruning's own work (loading and saving are
            outside it), None when no meter was given.
    """

    checkpoint_id: str
    path: Path
    manifest: dict[str, Any]
    wall_seconds: float
    reading: Any = None


def result_from_manifest(
    manifest: dict[str, Any], checkpoint_id: str, wall_seconds: float
) -> PruneResult:
    """The PruneResult of a checkpoint: every result field the manifest holds, by name."""
    names = PruneResult.DESCRIPTOR.fields_by_name
    known = {key: value for key, value in manifest.items() if key in names and value is not None}
    known["versions"] = {key: str(value) for key, value in known.get("versions", {}).items()}
    result = json_format.ParseDict(known, PruneResult(), ignore_unknown_fields=True)
    result.checkpoint_id, result.wall_seconds = checkpoint_id, wall_seconds
    return result


def validate_config(config: PruneConfig, models_root: Path) -> nn.Module | None:
    """Checks a spec without loading weights, as far as the job would check it.

    Its fields first, then everything the job checks against the model's shape (layer counts
    to keep, reachable ratio, context length) on the model's skeleton, built from its config
    (a reference model's recipe, a local model's ``config.json``). A hub model's config is not
    fetched: its shape is checked by the job.

    Returns:
        The model's skeleton on the ``meta`` device (None for a hub id), for further checks.

    Raises:
        InvalidArgumentError: A field is out of range; the error names it.
        FailedPreconditionError: A local model's architecture is not supported.
    """
    _check_fields(config, models_root)
    if config.model.startswith(REFERENCE_PREFIX):
        from greenprune.core.reference import reference_model_config, reference_model_names

        name = config.model.removeprefix(REFERENCE_PREFIX)
        if name not in reference_model_names():
            known = ", ".join(reference_model_names())
            raise InvalidArgumentError(MODEL_FIELD, f"no reference model {name!r} (known: {known})")
        model_config = reference_model_config(name)
    else:
        local = local_model_path(config.model, models_root)
        if local is None:
            if not looks_like_hub_id(config.model):
                raise InvalidArgumentError(MODEL_FIELD, f"{config.model!r} names no model")
            return None
        raw = read_local_config(local)
        if not is_causal_lm_config(raw):
            raise InvalidArgumentError(
                MODEL_FIELD, f"{config.model!r} is not a causal language model"
            )
        from transformers import AutoConfig

        model_config = AutoConfig.from_pretrained(local, trust_remote_code=False)
    adapter = adapter_for(model_config)
    skeleton = _skeleton(model_config)
    _check_against_model(config, skeleton, adapter)
    return skeleton


def warm_validation() -> None:
    """Does the one-off work of a first :func:`validate_config` (transformers' lazy imports).

    A server calls it at start, so that its first request is as quick as the next ones.
    """
    from transformers import AutoConfig

    tiny = AutoConfig.for_model(
        "llama",
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=128,
    )
    adapter_for(tiny)
    _skeleton(tiny)


def _skeleton(model_config: Any) -> nn.Module:
    """The model of ``model_config`` on the meta device: shapes without memory."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(model_config, trust_remote_code=False)


def _check_fields(config: PruneConfig, models_root: Path) -> None:
    if not isinstance(config.model, str) or not config.model.strip():
        raise InvalidArgumentError(MODEL_FIELD, "is empty; name a model")
    check_text(MODEL_FIELD, config.model)
    if config.method not in PRUNING_METHODS:
        allowed = ", ".join(PruningMethod.Name(method_value(m)) for m in PRUNING_METHODS)
        raise InvalidArgumentError("spec.method", f"must be one of {allowed}")
    check(config, PRUNE_SPEC)
    for name, allowed in (
        ("structure", PRUNING_STRUCTURES),
        ("depth_criterion", DEPTH_CRITERIA),
        ("quantization", QUANTIZATIONS),
        ("sparsity", SPARSITIES),
        ("sparsity_pattern", SPARSITY_PATTERNS),
    ):
        if getattr(config, name) not in allowed:
            raise InvalidArgumentError(f"spec.{name}", f"must be one of {', '.join(allowed)}")
    quantize.check_quantization(config.quantization, config.quantization_group_size)
    sparsity.check_spec(config.sparsity, config.sparsity_pattern, config.sparsity_ratio)
    if config.prune_hidden:
        raise InvalidArgumentError("spec.prune_hidden", "pruning the hidden size is not supported")
    sparse = config.sparsity != "none"
    if (config.ratio > 0 or sparse) and not (config.prune_attention_heads or config.prune_mlp):
        raise InvalidArgumentError(
            "spec.prune_mlp", "nothing to prune: enable prune_attention_heads or prune_mlp"
        )
    check_text("spec.calibration.source", config.calibration.source)
    if config.calibration.source != calibration.REFERENCE_SOURCE:
        calibration.resolve_text_file(config.calibration.source, models_root)


def _kept_layers(config: PruneConfig, layer_count: int) -> list[int]:
    if config.keep_first_layers + config.keep_last_layers >= layer_count:
        raise InvalidArgumentError(
            "spec.keep_last_layers",
            f"keep_first_layers + keep_last_layers = "
            f"{config.keep_first_layers + config.keep_last_layers} leaves none of the "
            f"model's {layer_count} layers to prune",
        )
    first = range(config.keep_first_layers)
    last = range(layer_count - config.keep_last_layers, layer_count)
    return sorted(set(first) | set(last))


def _source_geometry(model: nn.Module, adapter: LlamaFamilyAdapter) -> LayerGeometry:
    layers = adapter.decoder_layers(model)
    geometries = {adapter.layer_geometry(layer) for layer in layers}
    if len(geometries) != 1:
        raise FailedPreconditionError("the source model's decoder layers differ in shape")
    return geometries.pop()


def _check_against_model(
    config: PruneConfig, model: nn.Module, adapter: LlamaFamilyAdapter
) -> None:
    """The checks that need the model's shape: layers to keep, reachable ratio, context."""
    plan = _depth_plan(config, len(adapter.decoder_layers(model)))
    layer_plan = _plan(replace(config, ratio=plan.width_ratio), model, adapter)
    if config.sparsity != "none" and config.sparsity_pattern == SEMI_STRUCTURED:
        sparsity.check_planned_widths(_input_widths(config, model, layer_plan.shape))
    context = getattr(model.config, "max_position_embeddings", None)
    length = config.calibration.sequence_length
    calibrates = (
        (config.method == "taylor" and plan.width_ratio > 0)
        or (plan.remove > 0 and config.depth_criterion == "block-influence")
        or config.sparsity in sparsity.CALIBRATED
    )
    if calibrates and context and length > context:
        raise InvalidArgumentError(
            "spec.calibration.sequence_length", f"{length} exceeds the model's context of {context}"
        )


def _input_widths(config: PruneConfig, model: nn.Module, shape: LayerShape) -> dict[str, int]:
    """The input width of each projection kind sparsity touches in the pruned layers."""
    hidden = int(model.config.hidden_size)
    widths: dict[str, int] = {}
    if config.prune_attention_heads:
        widths.update({"self_attn.q/k/v_proj": hidden})
        widths["self_attn.o_proj"] = shape.attention_heads * shape.head_dim
    if config.prune_mlp:
        widths.update({"mlp.gate/up_proj": hidden, "mlp.down_proj": shape.intermediate_size})
    return widths


def _depth_plan(config: PruneConfig, layer_count: int) -> depth.DepthPlan:
    """How many layers depth pruning removes and the ratio left to width pruning."""
    return depth.plan_depth(
        structure=config.structure,
        ratio=config.ratio,
        depth_share=config.depth_share,
        layers=layer_count,
        kept=_kept_layers(config, layer_count),
    )


def _plan(config: PruneConfig, model: nn.Module, adapter: LlamaFamilyAdapter) -> planning.LayerPlan:
    """The shape of every pruned layer.

    When every layer is pruned the result is uniform and its config must load with plain
    ``from_pretrained``, so only head counts the config class accepts are planned (Llama's
    config, for one, wants the hidden size to be a multiple of the query heads).
    """
    uniform = config.keep_first_layers == config.keep_last_layers == 0
    geometry = _source_geometry(model, adapter)
    return planning.plan_layer(
        geometry,
        config.ratio,
        attention=config.prune_attention_heads,
        mlp=config.prune_mlp,
        round_to=config.round_to,
        layout_allowed=_config_accepts(model.config, geometry.shape.head_dim) if uniform else None,
    )


def _config_accepts(model_config: Any, head_dim: int) -> Callable[[int, int], bool]:
    """Whether the config class accepts a uniform ``(query heads, key/value heads)`` layout."""
    base = model_config.to_dict()

    def accepts(heads: int, kv_heads: int) -> bool:
        changed = {**base, "num_attention_heads": heads, "num_key_value_heads": kv_heads}
        try:
            type(model_config).from_dict({**changed, "head_dim": head_dim})
        except Exception:  # noqa: BLE001 - any refusal of the config class means "no"
            return False
        return True

    return accepts


def _prunable_modules(
    config: PruneConfig, adapter: LlamaFamilyAdapter, layers: list[nn.Module]
) -> list[nn.Module]:
    modules: list[nn.Module] = []
    for layer in layers:
        if config.prune_attention_heads:
            modules.extend(adapter.attention_projections(layer))
        if config.prune_mlp:
            modules.extend(adapter.mlp_projections(layer))
    return modules


class _Reporter:
    """Maps per-stage fractions onto the overall 0..1 progress."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._done = 0.0

    def __call__(self, stage: str, within: float = 0.0) -> None:
        start, end = _STAGE_SPANS[stage]
        overall = round(start + (end - start) * min(max(within, 0.0), 1.0), 6)
        self._done = max(self._done, overall)
        self._progress(stage, self._done)


def run_prune(
    config: PruneConfig,
    *,
    checkpoints_dir: Path,
    checkpoint_id: str,
    models_root: Path,
    progress: Progress = noop,
    meter: Any = None,
) -> PruneOutcome:
    """Prunes a model as the spec says and writes the checkpoint.

    Args:
        config: The spec.
        checkpoints_dir: Where checkpoints live.
        checkpoint_id: The new checkpoint's id.
        models_root: The only tree local models and calibration files may come from.
        progress: Called with a stage (``loading``, ``calibrating``, ``pruning``,
            ``saving``) and the overall fraction done.
        meter: An ``EnergyMeter`` whose window covers the pruning's work (calibration,
            scoring, surgery, counting): loading and saving stay outside it, as they do for
            the inference the payback compares it with.

    Returns:
        The checkpoint's id, directory, manifest and the wall time.

    Raises:
        InvalidArgumentError: A spec field is unusable (the error names it).
        FailedPreconditionError: Unsupported architecture, or the checkpoint id is taken.
    """
    started = time.monotonic()
    validate_checkpoint_id(checkpoint_id)
    if (Path(checkpoints_dir) / checkpoint_id).exists():
        raise FailedPreconditionError(f"checkpoint {checkpoint_id!r} exists already")
    validate_config(config, models_root)
    report = _Reporter(progress)
    report("loading")
    location = resolve_model_source(config.model, models_root)
    model, tokenizer = load_model_at(location, config.model)
    with meter.window() if meter is not None else nullcontext() as reading:
        manifest = prune_model(
            config, model, tokenizer, models_root=models_root, progress=progress, loaded=True
        )
    manifest["source"] = {"model": config.model, "resolved": str(location)}
    manifest["prune_wall_seconds"] = round(time.monotonic() - started, 3)
    report("saving")
    path = save_checkpoint(model, tokenizer, manifest, Path(checkpoints_dir), checkpoint_id)
    report("saving", 1.0)
    return PruneOutcome(
        checkpoint_id=checkpoint_id,
        path=path,
        manifest=read_manifest(path),
        wall_seconds=time.monotonic() - started,
        reading=reading,
    )


def prune_model(
    config: PruneConfig,
    model: nn.Module,
    tokenizer: Any,
    *,
    models_root: Path,
    progress: Progress = noop,
    loaded: bool = False,
) -> dict[str, Any]:
    """Prunes a loaded model in place and returns its manifest (not yet saved).

    ``config.model`` is only recorded; the model given is the one pruned. Kept layers,
    embeddings and norms are left bitwise unchanged.

    Args:
        config: The spec (already checked with :func:`validate_config` where possible).
        model: A supported causal LM.
        tokenizer: Its tokenizer (for calibration text).
        models_root: Where a calibration text file may come from.
        progress: As for :func:`run_prune` (stages up to ``pruning``).
        loaded: Whether the ``loading`` stage was reported already.

    Returns:
        The manifest: shapes, parameter counts, MACs, ratios, versions.
    """
    started = time.monotonic()
    report = _Reporter(progress)
    if not loaded:
        report("loading")
    _check_fields(config, models_root)
    torch.manual_seed(config.seed)
    adapter = adapter_for(model.config)
    _check_against_model(config, model, adapter)
    layers = list(adapter.decoder_layers(model))
    layers_before = len(layers)
    kept = _kept_layers(config, layers_before)
    depth_plan = _depth_plan(config, layers_before)
    width = replace(config, ratio=depth_plan.width_ratio)
    pruned = [layers[i] for i in range(len(layers)) if i not in kept]
    original_shape = adapter.layer_shape(pruned[0])
    parameters_before = measure.count_parameters([model])
    prunable_before = measure.count_parameters(_prunable_modules(config, adapter, pruned))
    macs_length = measure.macs_sequence_length(model)
    macs_before = measure.count_macs(model, macs_length)
    bytes_before = model_bytes(model)
    report("loading", 1.0)

    report("calibrating")
    tokens: torch.Tensor | None = None
    scores: list[float] | None = None
    removed: list[int] = []
    if depth_plan.remove and config.depth_criterion == "block-influence":
        tokens = _calibration_tokens(config, tokenizer, models_root)
        scores = depth.block_influence(
            model, adapter, tokens, progress=lambda f: report("calibrating", f / 2)
        )
    if depth_plan.remove:
        removed = depth.choose_layers(
            config.depth_criterion, scores, kept, depth_plan.remove, layers_before
        )
        depth.remove_layers(model, adapter, removed)
        layers = list(adapter.decoder_layers(model))
        kept = _kept_layers(config, len(layers)) if len(layers) > len(kept) else kept
        pruned = [layers[i] for i in range(len(layers)) if i not in kept]
    plan = _plan(width, model, adapter)
    prunable = _prunable_modules(config, adapter, pruned)
    needs_pruning = bool(pruned) and plan.shape != original_shape
    if needs_pruning and config.method == "taylor":
        if tokens is None:
            tokens = _calibration_tokens(config, tokenizer, models_root)
        trainable = [p for module in prunable for p in module.parameters()]
        calibration.accumulate_gradients(
            model, tokens, trainable, progress=lambda f: report("calibrating", 0.5 + f / 2)
        )
    report("pruning")
    if needs_pruning:
        _prune_layers(width, model, adapter, pruned, plan.shape, report)
    sparsity_record = None
    if config.sparsity != "none":
        if tokens is None and config.sparsity in sparsity.CALIBRATED:
            tokens = _calibration_tokens(config, tokenizer, models_root)
        sparsity_record = sparsity.sparsify(
            model,
            adapter,
            targets=lambda layer: _prunable_modules(config, adapter, [layer]),
            sparsified_layers={i for i in range(len(layers)) if i not in kept},
            criterion=config.sparsity,
            pattern=config.sparsity_pattern,
            ratio=config.sparsity_ratio,
            tokens=tokens,
            progress=lambda f: report("pruning", 0.5 + f / 2),
        )
    calibration_record = None
    if tokens is not None:
        calibration_record = {
            "source": config.calibration.source,
            "windows": int(tokens.shape[0]),
            "sequence_length": int(tokens.shape[1]),
        }

    shapes = [adapter.layer_shape(layer) for layer in layers]
    uniform = len(set(shapes)) == 1
    model.config.head_dim = original_shape.head_dim
    if uniform:
        adapter.write_uniform_shape(model, shapes[0])
    prunable_after = measure.count_parameters(_prunable_modules(config, adapter, pruned))
    achieved = 1.0 - prunable_after / prunable_before if prunable_before else 0.0
    expected = 1.0 - (1.0 - depth_plan.depth_ratio) * (1.0 - depth_plan.width_ratio)
    if abs(achieved - expected) > planning.RATIO_TOLERANCE:
        raise RuntimeError(f"pruning removed {achieved:.4f} of prunable parameters, not {expected}")
    source_indices = [i for i in range(layers_before) if i not in set(removed)]
    manifest = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {"model": config.model, "resolved": None},
        "architecture": architecture_name(model.config),
        "model_type": model.config.model_type,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "spec": asdict(config),
        "method": config.method,
        "method_family": method_family(config),
        "structure": config.structure,
        "target_ratio": config.ratio,
        "achieved_ratio": achieved,
        "depth_ratio": depth_plan.depth_ratio,
        "width_ratio": depth_plan.width_ratio,
        "depth_criterion": config.depth_criterion if removed else None,
        "layers_before": layers_before,
        "layers_after": len(layers),
        "removed_layers": removed,
        "layer_scores": scores,
        "uniform": uniform,
        "kept_layers": kept,
        "head_dim": original_shape.head_dim,
        "layers": [
            {
                "index": i,
                "source_index": source_indices[i],
                "kept": i in kept,
                "attention_heads": shape.attention_heads,
                "key_value_heads": shape.key_value_heads,
                "intermediate_size": shape.intermediate_size,
            }
            for i, shape in enumerate(shapes)
        ],
        "parameters_before": parameters_before,
        "parameters_after": measure.count_parameters([model]),
        "prunable_parameters_before": prunable_before,
        "prunable_parameters_after": prunable_after,
        "prunable_scope": _describe_scope(config),
        "macs_before": macs_before,
        "macs_after": measure.count_macs(model, macs_length),
        "macs_sequence_length": macs_length,
        "macs_batch_size": 1,
        "macs_method": "torch.utils.flop_counter.FlopCounterMode, eager attention, no KV cache;"
        " MACs = FLOPs / 2",
        "calibration": calibration_record,
        "bytes_in_memory_before": bytes_before,
        "bytes_in_memory": model_bytes(model),
        "quantization": None,
        "versions": library_versions(),
        **_sparsity_facts(config, model, sparsity_record, prunable_before, macs_length),
    }
    if config.quantization != "none":
        report("pruning", 1.0)
        record = quantize.quantize_model(
            model, adapter, config.quantization, config.quantization_group_size
        )
        manifest.update(
            quantization=record,
            bytes_in_memory=record["bytes_in_memory"],
            quantization_bits=record["bits"],
            quantization_scheme=record["scheme"],
            quantization_library=f"{record['library']} {record['library_version']}",
        )
        manifest["versions"][record["library"]] = record["library_version"]
    for kind in kernels.DEVICE_KINDS:
        path = kernels.predicted_path(manifest, kind)
        manifest[f"{kind}_kernel"] = json_format.MessageToDict(
            path, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
    manifest["prune_wall_seconds"] = round(time.monotonic() - started, 3)
    return manifest


def _sparsity_facts(
    config: PruneConfig,
    model: nn.Module,
    record: dict[str, Any] | None,
    prunable_before: int,
    macs_length: int,
) -> dict[str, Any]:
    """The manifest's sparsity fields: what was zeroed, its share, and its 2:4 linears."""
    if record is None:
        return {"sparsity": "", "sparsity_record": None, "zeroed_parameters": 0, "zeroed_share": 0}
    return {
        "sparsity": sparsity.describe(config.sparsity, config.sparsity_pattern),
        "sparsity_record": record,
        "zeroed_parameters": record["zeroed"],
        "zeroed_share": record["zeroed"] / prunable_before if prunable_before else 0.0,
        **sparsity.semi_structured_record(model, macs_length),
    }


def method_family(config: PruneConfig) -> str:
    """The compression family of a spec: ``width``, ``depth``, ``int8``, ``width+wanda-2:4``, ...

    ``baseline`` when nothing is removed or quantized.
    """
    parts = []
    if config.ratio > 0:
        parts += {"width": ["width"], "depth": ["depth"]}.get(config.structure, ["width", "depth"])
    if config.sparsity != "none":
        parts.append(sparsity.describe(config.sparsity, config.sparsity_pattern))
    if config.quantization != "none":
        parts.append(config.quantization)
    return "+".join(parts) or "baseline"


def _calibration_tokens(config: PruneConfig, tokenizer: Any, models_root: Path) -> torch.Tensor:
    return calibration.calibration_tokens(
        tokenizer,
        source=config.calibration.source,
        samples=config.calibration.samples,
        sequence_length=config.calibration.sequence_length,
        seed=config.seed,
        models_root=models_root,
    )


def _prune_layers(
    config: PruneConfig,
    model: nn.Module,
    adapter: LlamaFamilyAdapter,
    layers: list[nn.Module],
    planned: LayerShape,
    report: _Reporter,
) -> None:
    """Scores every pruned layer on the dependency graph, drops the graph, then cuts."""
    dependency_graph = graph.build_dependency_graph(model) if adapter.traceable else None
    importance = graph.importance_for(config.method)
    scores = [
        graph.score_layer(
            dependency_graph,
            adapter,
            layer,
            importance,
            attention=config.prune_attention_heads,
            mlp=config.prune_mlp,
        )
        for layer in layers
    ]
    # The traced graph holds autograd nodes that pin the unpruned weights: release it (and
    # the calibration gradients) before cutting, so old and new weights never coexist.
    del dependency_graph
    for parameter in model.parameters():
        parameter.grad = None
    gc.collect()
    report("pruning", 0.3)
    for index, (layer, layer_scores) in enumerate(zip(layers, scores, strict=True)):
        if config.prune_attention_heads:
            surgery.prune_attention(adapter, model, layer, layer_scores, planned)
        if config.prune_mlp:
            surgery.prune_mlp(adapter, layer, layer_scores, planned)
        report("pruning", 0.3 + 0.7 * (index + 1) / len(layers))


def _describe_scope(config: PruneConfig) -> str:
    kinds = [
        name
        for name, enabled in (
            ("attention projections", config.prune_attention_heads),
            ("MLP projections", config.prune_mlp),
        )
        if enabled
    ]
    return " and ".join(kinds or ["nothing"]) + " of the layers not kept"


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shaped a checkpoint."""
    versions = {"python": platform.python_version()}
    for package in (
        "greenprune",
        "torch",
        "transformers",
        "torch-pruning",
        "safetensors",
        "tokenizers",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions
