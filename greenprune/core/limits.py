"""Every bound, default and vocabulary of a request field, written once.

The services check requests against these tables and fill unset fields from them; the experiment
file's validation builds its pydantic fields from the same tables, so a file that validates is
never refused later by a service, with the same numbers in both messages. Keys are the fields'
paths inside their proto message (``calibration.samples`` in ``PruneSpec``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.core.errors import InvalidArgumentError

MAX_RATIO = 0.9
"""Ratios are fractions of prunable parameters in ``[0, MAX_RATIO)``."""

MAX_SEED = 2**32 - 1
"""torch, NumPy and lm-eval all take seeds up to this."""

MAX_NAME_CHARS = 256
"""Model names, task names, request ids, experiment names and other short strings."""

MAX_LIST_ITEMS = 64
"""Tasks, task folders, models and ratios in one request or file."""

MAX_TEXT_CHARS = 4096
"""Free text stored with a record (hardware descriptions, error messages)."""

MAX_TASK_SOURCE_FILES = 256
"""Files in one task source (task YAML and its data), sent as content to the EvalService."""

MAX_TASK_SOURCE_BYTES = 32 * 1024 * 1024
"""Bytes of all files of one task source together."""

TASK_SOURCE_SUFFIXES = frozenset({".yaml", ".yml", ".json", ".jsonl", ".csv", ".tsv", ".txt"})
"""The files a task source may hold; ``.py`` only where the operator allows task code."""

TASK_FOLDER_MAX_ENTRIES = 20 * MAX_TASK_SOURCE_FILES
"""Files and folders the client looks at in one task folder before refusing it as too large."""

TASK_YAML_MAX_BYTES = 1 << 20
"""Bytes of one task YAML file (or a file a task YAML includes), refused before parsing."""

TASK_YAML_MAX_DEPTH = 64
"""Nesting of mappings and lists in one task YAML file."""

TASK_YAML_MAX_NODES = 100_000
"""Scalars, mappings and lists in one task YAML file."""

TASK_YAML_MAX_FILES = 2000
"""Task YAML files read for one task folder or task source, includes counted."""

EXPERIMENT_FILE_MAX_BYTES = 1 << 20
"""Bytes of an experiment file, refused before reading."""

EXPERIMENT_FILE_MAX_DEPTH = 16
"""Nesting of mappings and lists in an experiment file (it needs 3)."""

EXPERIMENT_FILE_MAX_NODES = 100_000
"""Scalars, mappings and lists in an experiment file."""

MANIFEST_MAX_BYTES = 16 * 1024 * 1024
"""Bytes of a checkpoint manifest (``greenprune.json``) read by the services."""

MAX_CHECKPOINT_ENTRIES = 10_000
"""Files and folders in one checkpoint folder (a sharded model has a few hundred at most)."""

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""Serialized bytes a read response aims to stay under; longer results are paged."""

MAX_RECORD_BYTES = MAX_RESPONSE_BYTES - 64 * 1024
"""Serialized bytes of one recorded run, refused beyond: a page of ``List*Runs`` holds it whole."""

RECORD_NUMBER_BOUNDS: tuple[tuple[str, float], ...] = (
    ("joules", 1e12),
    ("watts", 1e7),
    ("seconds", 1e9),
    ("tokens", 1e15),
    ("bytes", 1e15),
    ("macs", 1e18),
)
"""The largest magnitude of a recorded number whose field name holds the word: no real run
comes near (a terajoule is a megawatt for eleven days; a billion seconds is 31 years;
a forward pass of a 70B model over 4096 tokens is 3e14 MACs)."""

MAX_RECORD_NUMBER = 1e15
"""The largest magnitude of any other recorded number (parameters, MACs, counts, scores)."""


def record_number_bound(name: str) -> float:
    """The largest magnitude a recorded number (or a view's column) of this name may hold.

    The ResultsService refuses a run holding a larger one, and the computed views read a larger
    one already stored as missing (out of range), so that no sum over them can overflow.
    """
    for word, bound in RECORD_NUMBER_BOUNDS:
        if word in name:
            return bound
    return MAX_RECORD_NUMBER


DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(?::\d{1,2})?")
"""Devices a job may ask for: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``."""

_METHOD_PREFIX = "PRUNING_METHOD_"


def method_name(value: int) -> str:
    """Returns the experiment-file spelling of a PruningMethod, e.g. ``magnitude-l1``."""
    try:
        name = pruning_pb2.PruningMethod.Name(value)
    except ValueError:
        return f"unknown-{value}"
    return name.removeprefix(_METHOD_PREFIX).lower().replace("_", "-")


def method_value(name: str) -> int:
    """Returns the PruningMethod of a name written by ``method_name`` (UNSPECIFIED if unknown)."""
    try:
        return pruning_pb2.PruningMethod.Value(_METHOD_PREFIX + name.upper().replace("-", "_"))
    except ValueError:
        return pruning_pb2.PRUNING_METHOD_UNSPECIFIED


PRUNING_METHODS: tuple[str, ...] = tuple(
    method_name(v.number)
    for v in pruning_pb2.PruningMethod.DESCRIPTOR.values
    if v.number != pruning_pb2.PRUNING_METHOD_UNSPECIFIED
)
"""The pruning methods, in the proto enum's order (``magnitude-l1``, ..., ``random``)."""


@dataclass(frozen=True)
class Limit:
    """The allowed range of a numeric field and its default.

    Attributes:
        low: Smallest allowed value.
        high: Largest allowed value (or the bound it must stay below, see ``below_high``).
        default: What an unset field means; None when zero is a value of its own.
        below_high: Whether ``high`` itself is refused (``[low, high)``).
    """

    low: float
    high: float
    default: float | None = None
    below_high: bool = False

    def describe(self) -> str:
        """The range in words, e.g. ``in [1, 4096]``."""
        closing = ")" if self.below_high else "]"
        return f"in [{_number(self.low)}, {_number(self.high)}{closing}"

    def allows(self, value: Any) -> bool:
        """Whether ``value`` is a finite number in range."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value) or value < self.low:
            return False
        return value < self.high if self.below_high else value <= self.high

    def pydantic_bounds(self) -> dict[str, float]:
        """The bounds as ``pydantic.Field`` keywords."""
        return {"ge": self.low, ("lt" if self.below_high else "le"): self.high}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


PRUNE_SPEC: Mapping[str, Limit] = {
    "ratio": Limit(0.0, MAX_RATIO, below_high=True),
    "keep_first_layers": Limit(0, 1024, 0),
    "keep_last_layers": Limit(0, 1024, 0),
    "round_to": Limit(1, 1 << 16, 1),
    "seed": Limit(0, MAX_SEED, 0),
    "calibration.samples": Limit(1, 4096, 32),
    "calibration.sequence_length": Limit(8, 32768, 128),
    "depth_share": Limit(0.05, 1.0, 0.5),
    "quantization_group_size": Limit(32, 256, 32),
    "sparsity_ratio": Limit(0.0, MAX_RATIO, below_high=True),
}
"""Bounds and defaults of ``PruneSpec``'s numeric fields."""

EVAL_SPEC: Mapping[str, Limit] = {
    "num_fewshot": Limit(0, 32, 0),
    "limit": Limit(1, 1_000_000),
    "batch_size": Limit(1, 1024, 8),
    "repeats": Limit(1, 100, 3),
    "warmup_batches": Limit(0, 64, 2),
    "idle_seconds": Limit(0.0, 120.0, 5.0),
    "seed": Limit(0, MAX_SEED, 0),
}
"""Bounds and defaults of ``EvalSpec``'s numeric fields."""

PROFILE_SPEC: Mapping[str, Limit] = {
    "profile.prefill_tokens": Limit(8, 8192, 128),
    "profile.decode_tokens": Limit(1, 1024, 32),
    "profile.rounds": Limit(2, 100, 5),
    "profile.window_seconds": Limit(0.05, 60.0, 2.0),
}
"""Bounds and defaults of an energy profile (``EvalSpec.profile``)."""

PROFILE_AUTO_SPEC: Mapping[str, Limit] = {
    "profile.precision": Limit(0.005, 1.0, 0.05),
    "profile.max_rounds": Limit(2, 1000, 20),
}
"""Bounds and defaults of rounds that go on until the intervals are precise (``rounds: auto``
in the experiment file, a ``profile.precision`` above 0 in a request); checked and filled only
then, since a precision of 0 asks for exactly ``profile.rounds`` rounds."""

ANALYSIS_SPEC: Mapping[str, Limit] = {
    "analysis.accuracy_points": Limit(0.01, 50.0, 1.0),
    "analysis.energy_relative": Limit(0.001, 0.5, 0.03),
    "analysis.workload.prompt_tokens": Limit(1, 1_000_000),
    "analysis.workload.output_tokens": Limit(0, 1_000_000, 0),
    "analysis.workload.batch_size": Limit(0, 1024, 0),
}
"""Bounds and defaults of the equivalence margins (``margins:`` in the experiment file,
``EvalSpec.analysis``): accuracy in points, energy as a relative change; and of the declared
request mix (``workload:``; batch size 0: the largest profiled in both phases)."""

PRUNING_SEEDS = Limit(1, 16, 1)
"""``pruning.seeds``: the calibration draws each point is pruned with (one prune step each)."""

ADJUSTMENTS: tuple[str, ...] = ("holm", "bh", "none")
"""Adjustments of a family's verdicts (``margins.adjustment``); the first is the default."""

PROFILE_AUTO_FIRST_ROUNDS = 3
"""The rounds ``rounds: auto`` measures before it first looks at the intervals."""

PROFILE_THREADS = Limit(1, 1024)
"""``profile.threads`` when set (0 in a request, ``auto`` in the file: half the usable CPUs)."""

PROFILE_BATCH_SIZE = Limit(1, 1024)
"""Each of ``profile.batch_sizes``."""

PROFILE_BATCH_SIZES_DEFAULT = (1, 8, 32)
"""The profile's batch sizes when none are named."""

CALIBRATION_SOURCE_DEFAULT = "reference"
"""Calibration text when none is named: the reference corpus."""

DEVICE_DEFAULT = "auto"
"""The device when none is named."""


def default(limits: Mapping[str, Limit], path: str) -> Any:
    """The default of a field (for dataclass and pydantic defaults)."""
    return limits[path].default


def _parent(message: Any, path: str) -> tuple[Any, str]:
    *parents, name = path.split(".")
    for part in parents:
        message = getattr(message, part)
    return message, name


def fill_defaults(message: Any, limits: Mapping[str, Limit]) -> None:
    """Sets each zero field whose limit refuses zero (zero can only mean unset) to its default."""
    for path, limit in limits.items():
        if limit.default is None or limit.low <= 0:
            continue
        parent, name = _parent(message, path)
        if not getattr(parent, name):
            setattr(parent, name, type(getattr(parent, name))(limit.default))


def check(spec: Any, limits: Mapping[str, Limit], prefix: str = "spec") -> None:
    """Refuses the first field of ``spec`` (a message or a dataclass) outside its limit.

    Unset optional fields (None, or a message field without presence) are skipped; integral
    limits refuse non-integers. Raises :class:`InvalidArgumentError` naming the field.
    """
    for path, limit in limits.items():
        parent, name = _parent(spec, path)
        descriptor = getattr(parent, "DESCRIPTOR", None)
        if descriptor is not None:
            field = descriptor.fields_by_name[name]
            if field.has_presence and not parent.HasField(name):
                continue
        value = getattr(parent, name)
        if value is None:
            continue
        integral = isinstance(limit.low, int) and isinstance(limit.high, int)
        if not limit.allows(value) or (integral and not isinstance(value, int)):
            raise InvalidArgumentError(f"{prefix}.{path}", f"{value!r} is not {limit.describe()}")


def quoted(value: object, max_chars: int = 80) -> str:
    """``repr`` of at most ``max_chars`` characters of a value, for error messages."""
    text = value if isinstance(value, str) else str(value)
    return repr(text[:max_chars]) + ("..." if len(text) > max_chars else "")


def check_text(field: str, value: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """Refuses a string that is too long or holds control characters, quoting a short prefix."""
    if len(value) > max_chars:
        raise InvalidArgumentError(
            field, f"is {len(value)} characters long (at most {max_chars}): {value[:40]!r}..."
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidArgumentError(field, f"holds control characters: {value[:40]!r}")
    return value


def check_device(field: str, device: str) -> str:
    """Refuses a device name outside :data:`DEVICE_PATTERN`."""
    if not DEVICE_PATTERN.fullmatch(device):
        raise InvalidArgumentError(
            field, f"unknown device {device[:40]!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        )
    return device


def enum_spelling(enum: Any, value: int) -> str:
    """The experiment-file spelling of a proto enum value: ``PRUNING_STRUCTURE_DEPTH`` -> ``depth``.

    The prefix is the enum's name in upper snake case, as buf's lint rules require.
    """
    try:
        name = enum.Name(value)
    except ValueError:
        return f"unknown-{value}"
    spelled = _DIGITS_JOINED.sub(":", name.removeprefix(_enum_prefix(enum)))
    return spelled.lower().replace("_", "-")


def enum_number(enum: Any, spelling: str) -> int:
    """The proto enum value of an experiment-file spelling (0, UNSPECIFIED, if unknown)."""
    name = spelling.upper().replace("-", "_").replace(":", "_")
    try:
        return int(enum.Value(_enum_prefix(enum) + name))
    except ValueError:
        return 0


_DIGITS_JOINED = re.compile(r"(?<=\d)_(?=\d)")
"""An underscore between digits in a value name is a colon in its spelling (``2_4`` -> ``2:4``)."""


def _enum_prefix(enum: Any) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.DESCRIPTOR.name).upper() + "_"


PRUNE_SPEC_ENUM_DEFAULTS: Mapping[str, str] = {
    "structure": "width",
    "depth_criterion": "block-influence",
    "quantization": "none",
    "sparsity": "none",
    "sparsity_pattern": "unstructured",
}
"""What an UNSPECIFIED value of a ``PruneSpec`` enum field means (``method`` has no default)."""


def enum_vocabulary(field: str) -> tuple[str, ...]:
    """The spellings a ``PruneSpec`` enum field accepts, its default first."""
    enum = pruning_pb2.PruneSpec.DESCRIPTOR.fields_by_name[field].enum_type
    names = [enum_spelling(_EnumView(enum), v.number) for v in enum.values if v.number]
    return (PRUNE_SPEC_ENUM_DEFAULTS[field], *[n for n in names if n != _default(field)])


def _default(field: str) -> str:
    return PRUNE_SPEC_ENUM_DEFAULTS[field]


class _EnumView:
    """``Name``/``Value`` of an enum descriptor, like the generated enum wrappers."""

    def __init__(self, descriptor: Any) -> None:
        self.DESCRIPTOR = descriptor

    def Name(self, number: int) -> str:  # noqa: N802 - the wrapper's spelling
        try:
            return self.DESCRIPTOR.values_by_number[number].name
        except KeyError as error:
            raise ValueError(number) from error

    def Value(self, name: str) -> int:  # noqa: N802 - the wrapper's spelling
        try:
            return self.DESCRIPTOR.values_by_name[name].number
        except KeyError as error:
            raise ValueError(name) from error


def prune_enum_spelling(field: str, value: int) -> str:
    """The spelling of a ``PruneSpec`` enum field's value; UNSPECIFIED reads as the default."""
    if value == 0 and field in PRUNE_SPEC_ENUM_DEFAULTS:
        return PRUNE_SPEC_ENUM_DEFAULTS[field]
    enum = pruning_pb2.PruneSpec.DESCRIPTOR.fields_by_name[field].enum_type
    return enum_spelling(_EnumView(enum), value)


def prune_enum_name(field: str, spelling: str) -> str:
    """The proto value name of a ``PruneSpec`` enum field's spelling (for ``ParseDict``).

    A default spelling with no value of its own (``none``) is the UNSPECIFIED value.
    """
    enum = _EnumView(pruning_pb2.PruneSpec.DESCRIPTOR.fields_by_name[field].enum_type)
    return enum.Name(enum_number(enum, spelling))


PRUNING_STRUCTURES = enum_vocabulary("structure")
"""``width`` (the default), ``depth``, ``width-and-depth``."""

DEPTH_CRITERIA = enum_vocabulary("depth_criterion")
"""``block-influence`` (the default), ``last``."""

QUANTIZATIONS = enum_vocabulary("quantization")
"""``none`` (the default), ``int8``, ``int4`` (weight-only)."""

SPARSITIES = enum_vocabulary("sparsity")
"""``none`` (the default), ``magnitude``, ``wanda``, ``sparsegpt`` (weight sparsity)."""

SPARSITY_PATTERNS = enum_vocabulary("sparsity_pattern")
"""``unstructured`` (the default), ``2:4``."""

SEMI_STRUCTURED = "2:4"
"""The semi-structured pattern: two of every four consecutive weights of a row are zero."""

SEMI_STRUCTURED_RATIO = 0.5
"""The share of the weights the 2:4 pattern zeroes."""

RECOVERY_LOSSES = tuple(
    enum_spelling(pruning_pb2.RecoveryLoss, v.number)
    for v in pruning_pb2.RecoveryLoss.DESCRIPTOR.values
    if v.number
)
"""``lm`` (the default: the causal language-model loss), ``distill`` (from the unpruned model)."""

RECOVERY_SPEC: Mapping[str, Limit] = {
    "rank": Limit(1, 256, 8),
    "alpha": Limit(0.001, 1024.0, 16.0),
    "steps": Limit(1, 100_000, 50),
    "learning_rate": Limit(1e-6, 1.0, 2e-3),
    "batch_size": Limit(1, 1024, 8),
    "sequence_length": Limit(8, 32768, 64),
    "seed": Limit(0, MAX_SEED, 0),
    "temperature": Limit(0.05, 100.0, 1.0),
}
"""Bounds and defaults of ``RecoverySpec``'s numeric fields (LoRA recovery after pruning);
filled only when a spec asks for recovery, so an unset ``recovery`` stays unset."""

RECOVERY_TARGET_MODULES_DEFAULT = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
"""LoRA's target modules when none are named: every projection of a Llama-family layer."""

RECOVERY_SOURCE_DEFAULT = "reference"
"""Recovery text when none is named: the reference corpus."""
