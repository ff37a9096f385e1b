"""The experiment file: a YAML document validated by pydantic models.

A wrong file raises :class:`ExperimentFileError`, whose message names the file, the line and
the field of every problem (``demo.yaml:7 pruning.ratios[2]: must be < 0.9``). Line numbers
come from the YAML node tree (:func:`greenprune.core.safe_yaml.load_yaml`, which also refuses
tags, anchors, merge keys and repeated keys), matched to pydantic's error locations.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from greenprune.core.errors import InvalidArgumentError
from greenprune.core.file_read import RefusedFileError, read_regular_file
from greenprune.core.limits import (
    ADJUSTMENTS,
    ANALYSIS_SPEC,
    CALIBRATION_SOURCE_DEFAULT,
    DEPTH_CRITERIA,
    DEVICE_DEFAULT,
    DEVICE_PATTERN,
    EVAL_SPEC,
    EXPERIMENT_FILE_MAX_BYTES,
    EXPERIMENT_FILE_MAX_DEPTH,
    EXPERIMENT_FILE_MAX_NODES,
    MAX_LIST_ITEMS,
    MAX_NAME_CHARS,
    MAX_RATIO,
    PROFILE_AUTO_FIRST_ROUNDS,
    PROFILE_AUTO_SPEC,
    PROFILE_BATCH_SIZE,
    PROFILE_BATCH_SIZES_DEFAULT,
    PROFILE_SPEC,
    PROFILE_THREADS,
    PRUNE_SPEC,
    PRUNING_METHODS,
    PRUNING_SEEDS,
    QUANTIZATIONS,
    RECOVERY_LOSSES,
    RECOVERY_SOURCE_DEFAULT,
    RECOVERY_SPEC,
    RECOVERY_TARGET_MODULES_DEFAULT,
    SEMI_STRUCTURED,
    SPARSITIES,
    Limit,
)
from greenprune.core.safe_yaml import YamlRules, load_yaml

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ADDRESS = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:\d{1,5}$")


def _check_ratio(value: float) -> float:
    if not 0.0 <= value < MAX_RATIO:
        raise ValueError(
            f"must be >= 0 and < {MAX_RATIO}" if value < 0 else f"must be < {MAX_RATIO}"
        )
    return value


def _check_address(value: str | None) -> str | None:
    if value is not None and not _ADDRESS.match(value):
        raise ValueError("must look like HOST:PORT, for example 127.0.0.1:50051")
    return value


def _unique(values: Sequence[Any]) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"lists {value!r} twice")
        seen.add(value)


STRUCTURE_PARTS = ("width", "depth")
"""Variant parts that remove parameters (at each of the file's ratios)."""

QUANTIZATION_PARTS = QUANTIZATIONS[1:]
"""Variant parts that quantize the weights (``int8``, ``int4``)."""


SPARSITY_PARTS = tuple(
    f"{criterion}{suffix}" for criterion in SPARSITIES[1:] for suffix in ("", f"-{SEMI_STRUCTURED}")
)
"""Variant parts that zero weights: ``wanda`` (unstructured, at each of the file's ratios),
``wanda-2:4`` (two of every four: a half), and the same for ``magnitude`` and ``sparsegpt``."""


class VariantParts(NamedTuple):
    """What a compression variant does, as ``PruneSpec`` spellings.

    Attributes:
        structure: ``width``, ``depth``, ``width-and-depth`` or ``none``.
        quantization: ``none``, ``int8`` or ``int4``.
        sparsity: ``none``, ``magnitude``, ``wanda`` or ``sparsegpt``.
        sparsity_pattern: ``unstructured`` or ``2:4``.
    """

    structure: str
    quantization: str
    sparsity: str = "none"
    sparsity_pattern: str = "unstructured"

    @property
    def takes_ratios(self) -> bool:
        """Whether the variant is planned at each of the file's ratios (else once)."""
        return self.structure != "none" or self.unstructured_sparsity

    @property
    def unstructured_sparsity(self) -> bool:
        """Whether the variant zeroes an unstructured share of the weights (the file's ratio)."""
        return self.sparsity != "none" and self.sparsity_pattern != SEMI_STRUCTURED


def variant_parts(text: str) -> VariantParts:
    """What a compression variant such as ``width+wanda-2:4+int8`` does.

    A variant joins parts with ``+``: ``width`` and/or ``depth`` (pruned at every ratio of
    the file; both together is ``width-and-depth``), at most one weight sparsity (after the
    structural step) and at most one of ``int8``/``int4`` (weight-only quantization, last).
    Unstructured sparsity alone zeroes the file's ratio of the weights; 2:4 zeroes a half, so
    alone it is planned once, and after a structure it zeroes half of what is left. A
    variant of quantization alone has the structure ``none`` and is planned once, unpruned.

    Raises:
        ValueError: A part is unknown or repeated, two quantizations or two sparsities are
            combined, or unstructured sparsity follows a structure.
    """
    parts = [part.strip() for part in str(text).split("+")]
    known = (*STRUCTURE_PARTS, *SPARSITY_PARTS, *QUANTIZATION_PARTS)
    for part in parts:
        if part not in known:
            raise ValueError(
                f"unknown compression {part!r} in {text!r} (known: {', '.join(known)}, "
                "joined with '+', e.g. width+int8)"
            )
    _unique(parts)
    quantization = [p for p in parts if p in QUANTIZATION_PARTS]
    if len(quantization) > 1:
        raise ValueError(f"{text!r} combines {' and '.join(quantization)}; choose one")
    sparsities = [p for p in parts if p in SPARSITY_PARTS]
    if len(sparsities) > 1:
        raise ValueError(f"{text!r} combines {' and '.join(sparsities)}; choose one")
    removes = [p for p in STRUCTURE_PARTS if p in parts]
    structure = "width-and-depth" if len(removes) == 2 else (removes[0] if removes else "none")
    sparsity, _, pattern = (sparsities[0] if sparsities else "none").partition("-")
    result = VariantParts(
        structure, quantization[0] if quantization else "none", sparsity, pattern or "unstructured"
    )
    if result.unstructured_sparsity and structure != "none":
        raise ValueError(
            f"{text!r} follows {'+'.join(removes)} with unstructured {sparsity}: both would take "
            f"the file's ratio; use {sparsity}-{SEMI_STRUCTURED} after a structure, or list "
            f"{sparsity} as a variant of its own"
        )
    return result


def parse_variant(text: str) -> tuple[str, str]:
    """The ``(structure, quantization)`` of a compression variant (see :func:`variant_parts`)."""
    parts = variant_parts(text)
    return parts.structure, parts.quantization


def variant_spelling(parts: VariantParts) -> str:
    """The canonical spelling of a variant: structure, sparsity, quantization, joined by ``+``."""
    removes = {"width-and-depth": ["width", "depth"], "none": []}.get(
        parts.structure, [parts.structure]
    )
    sparsity = []
    if parts.sparsity != "none":
        suffix = f"-{SEMI_STRUCTURED}" if parts.sparsity_pattern == SEMI_STRUCTURED else ""
        sparsity = [parts.sparsity + suffix]
    quantization = [] if parts.quantization == "none" else [parts.quantization]
    return "+".join([*removes, *sparsity, *quantization])


def _check_variant(text: str) -> str:
    return variant_spelling(variant_parts(text))


Ratio = Annotated[float, AfterValidator(_check_ratio)]
Variant = Annotated[str, AfterValidator(_check_variant)]
Address = Annotated[str | None, AfterValidator(_check_address)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _bounded(limit: Limit) -> Any:
    """A pydantic field with the bounds and default of a service's :class:`Limit`."""
    return Field(default=limit.default, **limit.pydantic_bounds())


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
Method = Literal[PRUNING_METHODS]  # the proto enum's names, in its order


class Calibration(_Strict):
    """The text the Taylor method computes gradients on."""

    samples: int = _bounded(PRUNE_SPEC["calibration.samples"])
    sequence_length: int = _bounded(PRUNE_SPEC["calibration.sequence_length"])
    source: Name = CALIBRATION_SOURCE_DEFAULT


class Pruning(_Strict):
    """How every model is pruned; one prune step per ratio."""

    method: Method = "taylor"
    ratios: list[Ratio] = Field(min_length=1, max_length=MAX_LIST_ITEMS)
    keep_first_layers: int = _bounded(PRUNE_SPEC["keep_first_layers"])
    keep_last_layers: int = _bounded(PRUNE_SPEC["keep_last_layers"])
    round_to: int = _bounded(PRUNE_SPEC["round_to"])
    prune_attention_heads: bool = True
    prune_mlp: bool = True
    calibration: Calibration = Field(default_factory=Calibration)
    variants: list[Variant] = Field(
        default_factory=lambda: ["width"], min_length=1, max_length=MAX_LIST_ITEMS
    )
    depth_criterion: Literal[DEPTH_CRITERIA] = DEPTH_CRITERIA[0]
    depth_share: float = _bounded(PRUNE_SPEC["depth_share"])
    quantization_group_size: int = _bounded(PRUNE_SPEC["quantization_group_size"])
    seeds: int = _bounded(PRUNING_SEEDS)

    @field_validator("ratios")
    @classmethod
    def _distinct_ratios(cls, ratios: list[float]) -> list[float]:
        _unique(ratios)
        return ratios

    @field_validator("variants")
    @classmethod
    def _distinct_variants(cls, variants: list[str]) -> list[str]:
        _unique(variants)
        return variants


class Eval(_Strict):
    """How every checkpoint is evaluated; one eval step per checkpoint and task."""

    tasks: list[Name] = Field(min_length=1, max_length=MAX_LIST_ITEMS)
    task_paths: list[Name] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    num_fewshot: int = _bounded(EVAL_SPEC["num_fewshot"])
    limit: int | None = _bounded(EVAL_SPEC["limit"])
    batch_size: int = _bounded(EVAL_SPEC["batch_size"])
    repeats: int = _bounded(EVAL_SPEC["repeats"])
    warmup_batches: int = _bounded(EVAL_SPEC["warmup_batches"])
    idle_seconds: float = _bounded(EVAL_SPEC["idle_seconds"])
    device: str = DEVICE_DEFAULT

    @field_validator("tasks")
    @classmethod
    def _distinct_tasks(cls, tasks: list[str]) -> list[str]:
        _unique(tasks)
        return tasks

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not DEVICE_PATTERN.fullmatch(device):
            raise ValueError("must be auto, cpu, cuda or cuda:N")
        return device


class Energy(_Strict):
    """The steady-state energy profile of every model's checkpoints, in interleaved rounds.

    ``rounds`` is a number, or ``auto``: rounds go on until every comparison's 95% interval
    is narrower than ``precision`` (relative to the baseline), at most ``max_rounds``.
    ``threads`` is the torch threads while measuring (``auto``: half the usable CPUs).
    """

    profile: bool = True
    batch_sizes: list[int] = Field(
        default_factory=lambda: list(PROFILE_BATCH_SIZES_DEFAULT),
        min_length=1,
        max_length=MAX_LIST_ITEMS,
    )
    prefill_tokens: int = _bounded(PROFILE_SPEC["profile.prefill_tokens"])
    decode_tokens: int = _bounded(PROFILE_SPEC["profile.decode_tokens"])
    rounds: int | Literal["auto"] = PROFILE_SPEC["profile.rounds"].default
    precision: float | None = Field(
        default=None, **PROFILE_AUTO_SPEC["profile.precision"].pydantic_bounds()
    )
    max_rounds: int | None = Field(
        default=None, **PROFILE_AUTO_SPEC["profile.max_rounds"].pydantic_bounds()
    )
    window_seconds: float = _bounded(PROFILE_SPEC["profile.window_seconds"])
    threads: int | Literal["auto"] = "auto"

    @field_validator("batch_sizes")
    @classmethod
    def _valid_batch_sizes(cls, sizes: list[int]) -> list[int]:
        _unique(sizes)
        for size in sizes:
            if not PROFILE_BATCH_SIZE.allows(size):
                raise ValueError(f"{size} is not {PROFILE_BATCH_SIZE.describe()}")
        return sizes

    @field_validator("rounds", "threads", mode="before")
    @classmethod
    def _count_or_auto(cls, value: Any, info: ValidationInfo) -> Any:
        limit = PROFILE_SPEC["profile.rounds"] if info.field_name == "rounds" else PROFILE_THREADS
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not limit.allows(value):
            raise ValueError(f"must be auto or an integer {limit.describe()}")
        return value

    @model_validator(mode="after")
    def _auto_settings(self) -> Energy:
        if self.rounds != "auto":
            given = [name for name in ("precision", "max_rounds") if getattr(self, name)]
            if given:
                raise ValueError(
                    f"{' and '.join(given)} set with rounds: {self.rounds}; precision and "
                    "max_rounds belong to rounds: auto"
                )
        elif self.max_rounds is not None and self.max_rounds < PROFILE_AUTO_FIRST_ROUNDS:
            raise ValueError(
                f"max_rounds must be at least {PROFILE_AUTO_FIRST_ROUNDS}, the rounds "
                "rounds: auto measures before it first looks at the intervals"
            )
        return self

    def profile_fields(self) -> dict[str, Any]:
        """The ``ProfileSpec`` fields of this section (without checkpoint ids)."""
        values = self.model_dump(exclude={"profile", "rounds", "precision", "max_rounds"})
        values["threads"] = 0 if self.threads == "auto" else self.threads
        if self.rounds != "auto":
            return {**values, "rounds": self.rounds}
        auto = PROFILE_AUTO_SPEC
        return {
            **values,
            "rounds": PROFILE_AUTO_FIRST_ROUNDS,
            "precision": self.precision or auto["profile.precision"].default,
            "max_rounds": self.max_rounds or auto["profile.max_rounds"].default,
        }


class Services(_Strict):
    """Where the services are; unset ones are the local stack (see ``greenprune up``)."""

    pruning: Address = None
    eval: Address = None
    results: Address = None


class Recovery(_Strict):
    """LoRA recovery fine-tuning: one extra prune step, tuned and merged, per ratio and loss.

    ``lm`` is the language-model loss; ``distill`` the KL from the unpruned model's softened
    distributions at ``temperature``.
    """

    ratios: list[Ratio] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    rank: int = _bounded(RECOVERY_SPEC["rank"])
    alpha: float = _bounded(RECOVERY_SPEC["alpha"])
    target_modules: list[Name] = Field(
        default_factory=lambda: list(RECOVERY_TARGET_MODULES_DEFAULT),
        min_length=1,
        max_length=MAX_LIST_ITEMS,
    )
    steps: int = _bounded(RECOVERY_SPEC["steps"])
    learning_rate: float = _bounded(RECOVERY_SPEC["learning_rate"])
    batch_size: int = _bounded(RECOVERY_SPEC["batch_size"])
    sequence_length: int = _bounded(RECOVERY_SPEC["sequence_length"])
    source: Name = RECOVERY_SOURCE_DEFAULT
    losses: list[Literal[RECOVERY_LOSSES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: [RECOVERY_LOSSES[0]], min_length=1, max_length=len(RECOVERY_LOSSES)
    )
    temperature: float = _bounded(RECOVERY_SPEC["temperature"])

    @field_validator("losses")
    @classmethod
    def _distinct_losses(cls, losses: list[str]) -> list[str]:
        _unique(losses)
        return losses

    @field_validator("ratios")
    @classmethod
    def _recoverable_ratios(cls, ratios: list[float]) -> list[float]:
        _unique(ratios)
        if any(ratio <= 0 for ratio in ratios):
            raise ValueError("ratio 0 is the unpruned baseline: there is nothing to recover")
        return ratios


class Margins(_Strict):
    """How the experiment's comparisons are judged (``greenprune.core.verdicts``).

    A change whose test puts it inside ``± accuracy_points`` (points of accuracy) or
    ``± energy_relative`` (a share of the baseline's energy) is *equivalent*; the verdicts of a
    family (the primary comparison, the rest) are adjusted with ``adjustment``.
    """

    accuracy_points: float = _bounded(ANALYSIS_SPEC["analysis.accuracy_points"])
    energy_relative: float = _bounded(ANALYSIS_SPEC["analysis.energy_relative"])
    adjustment: Literal[ADJUSTMENTS] = ADJUSTMENTS[0]  # type: ignore[valid-type]


class Workload(_Strict):
    """A declared request mix: the results price each request with the profile's J/token.

    Energy per request = prefill J/token x ``prompt_tokens`` + decode J/token x
    ``output_tokens``, at ``batch_size`` (0: the largest batch size profiled in both phases);
    the payback is then also given in requests.
    """

    prompt_tokens: int = Field(**ANALYSIS_SPEC["analysis.workload.prompt_tokens"].pydantic_bounds())
    output_tokens: int = _bounded(ANALYSIS_SPEC["analysis.workload.output_tokens"])
    batch_size: int = _bounded(ANALYSIS_SPEC["analysis.workload.batch_size"])


class Experiment(_Strict):
    """One experiment: every model at every ratio, evaluated on every task."""

    name: str
    models: list[Name] = Field(min_length=1, max_length=MAX_LIST_ITEMS)
    pruning: Pruning
    eval: Eval
    energy: Energy = Field(default_factory=Energy)
    services: Services = Field(default_factory=Services)
    recovery: Recovery = Field(default_factory=Recovery)
    margins: Margins = Field(default_factory=Margins)
    workload: Workload | None = None
    seed: int = _bounded(PRUNE_SPEC["seed"])

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(
                "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return name

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, models: list[str]) -> list[str]:
        _unique(models)
        from greenprune.core.reference.build import reference_model_names

        known = reference_model_names()
        for model in models:
            if model.startswith("reference:") and model.removeprefix("reference:") not in known:
                raise ValueError(
                    f"no reference model {model[:60]!r} (known: "
                    + ", ".join(f"reference:{name}" for name in known)
                    + ")"
                )
        return models

    @model_validator(mode="after")
    def _recovered_ratios_are_pruned(self) -> Experiment:
        missing = [r for r in self.recovery.ratios if r not in self.pruning.ratios]
        if missing:
            raise ValueError(
                f"recovery.ratios {missing} are not in pruning.ratios {self.pruning.ratios}"
            )
        return self


@dataclass(frozen=True)
class Problem:
    """One problem in an experiment file.

    Attributes:
        line: The 1-based line the problem is on.
        field: The dotted path of the field, for example ``pruning.ratios[2]``.
        message: What is wrong.
    """

    line: int
    field: str
    message: str


class ExperimentFileError(InvalidArgumentError):
    """An experiment file is not valid; the message lists every problem, one per line.

    Args:
        path: The file.
        problems: What is wrong, with lines and fields.
    """

    def __init__(self, path: Path, problems: Sequence[Problem]) -> None:
        self.path = path
        self.problems = list(problems)
        first = self.problems[0]
        super().__init__(first.field, first.message)
        self.args = ("\n".join(self.format(problem) for problem in self.problems),)

    def format(self, problem: Problem) -> str:
        """Returns ``FILE:LINE FIELD: MESSAGE`` for one problem."""
        where = f"{self.path.name}:{problem.line}"
        return (
            f"{where} {problem.field}: {problem.message}"
            if problem.field
            else (f"{where} {problem.message}")
        )

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class LoadedExperiment:
    """A validated experiment and the file it came from.

    Attributes:
        experiment: The validated experiment.
        path: The absolute path of the file.
    """

    experiment: Experiment
    path: Path

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the file are resolved from."""
        return self.path.parent


def load_experiment(path: str | Path) -> LoadedExperiment:
    """Reads and validates an experiment file.

    Directories, FIFOs, devices and files over ``EXPERIMENT_FILE_MAX_BYTES`` are refused before
    anything is read; ``eval.task_paths`` must stay inside the file's folder.

    Args:
        path: The YAML file.

    Returns:
        The experiment and its absolute path.

    Raises:
        ExperimentFileError: The file is not valid YAML or not a valid experiment.
        FileNotFoundError: The file does not exist.
    """
    file = Path(path).absolute()
    try:
        content, _ = read_regular_file(file, EXPERIMENT_FILE_MAX_BYTES, name=file.name)
    except RefusedFileError as exc:
        raise ExperimentFileError(file, [Problem(exc.line or 1, exc.where, exc.rule)]) from None
    file = file.resolve()
    experiment, root = _parse(content, file)
    _check_task_paths(experiment, root, file)
    return LoadedExperiment(experiment, file)


EXPERIMENT_RULES = YamlRules(
    max_bytes=EXPERIMENT_FILE_MAX_BYTES,
    max_depth=EXPERIMENT_FILE_MAX_DEPTH,
    max_nodes=EXPERIMENT_FILE_MAX_NODES,
)
"""What an experiment file may hold: no tags, anchors, aliases, merge keys or repeated keys."""


def parse_experiment(text: str | bytes, path: Path = Path("experiment.yaml")) -> Experiment:
    """Validates the YAML ``text`` of an experiment file named ``path`` (used in messages)."""
    return _parse(text, path)[0]


def _parse(text: str | bytes, path: Path) -> tuple[Experiment, yaml.Node]:
    try:
        loaded = load_yaml(text, path.name, EXPERIMENT_RULES)
    except RefusedFileError as exc:
        raise ExperimentFileError(path, [Problem(exc.line or 1, exc.where, exc.rule)]) from None
    root, data = loaded.node, loaded.data
    if root is None:
        raise ExperimentFileError(path, [Problem(1, "", "the file is empty")])
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise ExperimentFileError(
            path, [Problem(root.start_mark.line + 1, "", "must be a mapping of fields")]
        )
    try:
        return Experiment.model_validate(data), root
    except ValidationError as exc:
        problems = [_problem(error, root) for error in exc.errors()]
        raise ExperimentFileError(path, sorted(problems, key=lambda p: p.line)) from None


def _check_task_paths(experiment: Experiment, root: yaml.Node, file: Path) -> None:
    """Refuses task folders outside the experiment file's folder (never walked, never sent)."""
    problems = []
    for index, entry in enumerate(experiment.eval.task_paths):
        loc = ("eval", "task_paths", index)
        try:
            folder = (file.parent / entry).resolve()
        except (OSError, RuntimeError, ValueError):
            problems.append(Problem(_node_line(root, loc), field_path(loc), "not a usable path"))
            continue
        if not folder.is_relative_to(file.parent):
            problems.append(
                Problem(
                    _node_line(root, loc),
                    field_path(loc),
                    f"{entry!r} leads outside the experiment's folder {str(file.parent)!r}",
                )
            )
    if problems:
        raise ExperimentFileError(file, problems)


# -- mapping pydantic errors to lines -----------------------------------------------------------


def field_path(loc: Sequence[str | int]) -> str:
    """Returns the dotted path of a pydantic location: ``("a", "b", 2)`` -> ``a.b[2]``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _node_line(root: yaml.Node, loc: Sequence[str | int]) -> int:
    """Returns the line of the deepest node of ``loc`` that exists in the YAML tree."""
    node, line = root, root.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    child, line = value, key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """Returns the pydantic model class that holds the field at ``loc``, if any."""
    model: type[BaseModel] = Experiment
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _message(error: Any) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    loc = error["loc"]
    if kind == "extra_forbidden":
        model = _model_at(loc)
        known = sorted(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown field (allowed: {', '.join(known)}){hint}"
    simple = {
        "missing": "is required",
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be a whole number",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "string_type": "must be a string",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "list_type": "must be a list",
        "model_type": "must be a mapping of fields",
        "model_attributes_type": "must be a mapping of fields",
        "dict_type": "must be a mapping of fields",
    }
    if kind in simple:
        return simple[kind]
    bounds = {
        "greater_than": ">",
        "greater_than_equal": ">=",
        "less_than": "<",
        "less_than_equal": "<=",
    }
    if kind in bounds:
        limit = next(iter(context.values()), "")
        return f"must be {bounds[kind]} {limit}"
    if kind == "literal_error":
        return f"must be one of: {context.get('expected', '')}".replace("'", "")
    if kind == "too_short":
        return f"must have at least {context.get('min_length')} item(s)"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_long":
        return f"must have at most {context.get('max_length')} item(s)"
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    return str(error["msg"])


def _problem(error: Any, root: yaml.Node) -> Problem:
    loc = tuple(error["loc"])
    return Problem(_node_line(root, loc), field_path(loc), _message(error))
