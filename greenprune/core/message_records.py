"""Proto messages as the records that travel and are stored: JSON for job tables, dicts for code.

A job table keeps a job's spec and result as the message's JSON (``json_format``), so the
contract is the only schema; a domain dataclass whose field names match a message's converts
to and from it here, without a hand-written list of fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


def to_json_dict(message: Message) -> dict[str, Any]:
    """The message as JSON-ready data (proto field names, unset scalars left out)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def from_json_dict(data: dict[str, Any] | None, message_type: type[M]) -> M:
    """Parses :func:`to_json_dict` output (unknown fields from older versions are ignored)."""
    return json_format.ParseDict(data or {}, message_type(), ignore_unknown_fields=True)


def fields_of(message: Message) -> dict[str, Any]:
    """The message's fields as Python values: nested messages as dicts, repeated as lists.

    Fields with presence that are unset (``optional`` scalars, unset oneof members) are None.
    """
    values: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        if field.has_presence and field.message_type is None and not message.HasField(field.name):
            values[field.name] = None
            continue
        value = getattr(message, field.name)
        if field.message_type is not None and not _is_map(field):
            is_list = field.is_repeated
            values[field.name] = [fields_of(v) for v in value] if is_list else fields_of(value)
        elif field.is_repeated:
            values[field.name] = dict(value) if _is_map(field) else list(value)
        else:
            values[field.name] = value
    return values


def _is_map(field: Any) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def dataclass_from(cls: type, values: dict[str, Any]) -> Any:
    """Builds dataclass ``cls`` from same-named values, recursing into nested dataclasses.

    Keys the dataclass lacks are ignored; a list becomes a tuple where the field is a tuple.
    """
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name not in values:
            continue
        value = values[field.name]
        nested = _dataclass_type(cls, field)
        if nested is not None and isinstance(value, dict):
            value = dataclass_from(nested, value)
        elif isinstance(value, list) and str(field.type).startswith("tuple"):
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs)


def _dataclass_type(cls: type, field: dataclasses.Field[Any]) -> type | None:
    factory = field.default_factory
    if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
        return factory  # type: ignore[return-value]
    return None
