"""Walking and filling proto messages by descriptor: every scalar path, and values out of bounds."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


def message_class(descriptor: Any) -> Any:
    from google.protobuf.message_factory import GetMessageClass

    return GetMessageClass(descriptor)


Step = tuple[str, Any]
"""A step of a field path: (field name, index) where index is None (singular), an int (a
repeated element), "append", "map" (a map value) or "mapkey" (a map key)."""


def scalar_paths(
    message: Any, wanted: Callable[[Any], bool], prefix: tuple[Step, ...] = (), depth: int = 0
) -> list[tuple[Step, ...]]:
    """Paths to every scalar field that ``wanted(field_descriptor)`` selects.

    Set and settable submessages are entered; repeated ones through their first element.
    """
    found: list[tuple[Step, ...]] = []
    for fd in message.DESCRIPTOR.fields:
        if fd.message_type is not None:
            if fd.message_type.GetOptions().map_entry:
                if wanted(fd.message_type.fields_by_name["value"]):
                    found.append((*prefix, (fd.name, "map")))
                if wanted(fd.message_type.fields_by_name["key"]):
                    found.append((*prefix, (fd.name, "mapkey")))
                continue
            if fd.message_type.full_name.startswith("google.protobuf.") or depth >= 6:
                continue
            if is_repeated(fd):
                items = getattr(message, fd.name)
                if len(items):
                    found += scalar_paths(items[0], wanted, (*prefix, (fd.name, 0)), depth + 1)
            else:
                sub = getattr(message, fd.name)
                found += scalar_paths(sub, wanted, (*prefix, (fd.name, None)), depth + 1)
        elif wanted(fd):
            if is_repeated(fd):
                step = 0 if len(getattr(message, fd.name)) else "append"
                found.append((*prefix, (fd.name, step)))
            else:
                found.append((*prefix, (fd.name, None)))
    return found


def is_repeated(fd: Any) -> bool:
    if hasattr(fd, "is_repeated"):
        return bool(fd.is_repeated)
    return bool(fd.label == fd.LABEL_REPEATED)


def apply_path(message: Any, path: Sequence[Step], value: Any) -> None:
    """Sets the field at ``path`` of ``message`` to ``value``."""
    *parents, (name, how) = path
    for parent, index in parents:
        message = getattr(message, parent) if index is None else getattr(message, parent)[index]
    if how is None:
        setattr(message, name, value)
    elif how == "append":
        getattr(message, name).append(value)
    elif how == "map":
        getattr(message, name)["k"] = value
    elif how == "mapkey":
        container = getattr(message, name)
        value_fd = message.DESCRIPTOR.fields_by_name[name].message_type.fields_by_name["value"]
        container[value] = "v" if value_fd.cpp_type == value_fd.CPPTYPE_STRING else 0
    else:
        getattr(message, name)[how] = value


def path_text(path: Sequence[Step]) -> str:
    """``result.metrics[0].value`` for a path."""
    parts = []
    for name, how in path:
        parts.append(name + (f"[{how}]" if isinstance(how, int) else f"<{how}>" if how else ""))
    return ".".join(parts)


def is_double(fd: Any) -> bool:
    return fd.cpp_type in (fd.CPPTYPE_DOUBLE, fd.CPPTYPE_FLOAT)


def is_string(fd: Any) -> bool:
    return fd.cpp_type == fd.CPPTYPE_STRING and fd.type != fd.TYPE_BYTES


def is_int(fd: Any) -> bool:
    return fd.cpp_type in INT_RANGES


INT_RANGES: dict[int, tuple[int, int]] = {}


def init_int_ranges() -> None:
    from google.protobuf.descriptor import FieldDescriptor as F

    INT_RANGES.update(
        {
            F.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
            F.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
            F.CPPTYPE_UINT32: (0, 2**32 - 1),
            F.CPPTYPE_UINT64: (0, 2**64 - 1),
        }
    )


def field_at(message_type: Any, path: str) -> Any:
    """The field descriptor of a dotted path (``calibration.samples``) of a message class."""
    descriptor = message_type.DESCRIPTOR
    *parents, name = path.split(".")
    for part in parents:
        descriptor = descriptor.fields_by_name[part].message_type
    return descriptor.fields_by_name[name]


def set_dotted(message: Any, path: str, value: Any) -> None:
    """Sets a dotted path (``calibration.samples``) of ``message``."""
    *parents, name = path.split(".")
    for part in parents:
        message = getattr(message, part)
    setattr(message, name, value)


def out_of_bounds(limit: Any, fd: Any) -> tuple[list[tuple[str, Any]], int]:
    """Values outside ``limit`` that the field can hold.

    Returns:
        The (label, value) pairs, and how many were skipped because they are zero, which
        proto3 reads as unset (the service fills the default).
    """
    if is_int(fd):
        low, high = INT_RANGES[fd.cpp_type]
        above = int(limit.high) if limit.below_high else int(limit.high) + 1
        candidates = [
            ("low-1", int(limit.low) - 1),
            ("high" if limit.below_high else "high+1", above),
            ("type min", low),
            ("type max", high),
        ]
        candidates = [(label, v) for label, v in candidates if low <= v <= high]
    else:
        above = (
            ("high", limit.high)
            if limit.below_high
            else ("just above high", math.nextafter(limit.high, math.inf))
        )
        candidates = [
            ("low-1", limit.low - 1),
            ("just below low", math.nextafter(limit.low, -math.inf)),
            above,
            ("high+1", limit.high + 1),
            ("1e308", 1e308),
            ("-1e308", -1e308),
            ("nan", math.nan),
            ("inf", math.inf),
            ("-inf", -math.inf),
        ]
    values: list[tuple[str, Any]] = []
    seen: set[Any] = set()
    skipped = 0
    for label, value in candidates:
        key = "nan" if isinstance(value, float) and math.isnan(value) else value
        if key in seen or (
            not (isinstance(value, float) and math.isnan(value)) and limit.allows(value)
        ):
            continue
        seen.add(key)
        if value == 0 and not fd.has_presence:
            skipped += 1  # proto3: zero is "unset" and takes the default
            continue
        values.append((label, value))
    return values, skipped
