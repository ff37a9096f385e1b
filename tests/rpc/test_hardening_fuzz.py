"""Hypothesis over field values (not bytes): hostile strings, extreme numbers, unknown enums.

Every answer must be a clean status; INTERNAL and UNKNOWN are failures. The tally of codes is
printed (``-s``) for the hardening note.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenprune.rpc.server_thread import ServerThread
from tests.rpc.test_services import CLEAN, FULL_NAMES

HOSTILE_STRINGS = [
    "",
    "²",
    "9" * 30,
    "9223372036854775808",
    "-1",
    "a\x00b",
    "x" * 300,
    "y" * 5000,
    "../../../../etc",
    "/etc",
    "reference:nope",
    "jobs/",
    "pruneJobs/../x",
    "évaluation ✓",
    "\n\t",
]
INTS = [0, 1, -1, 2**31 - 1, -(2**31), 2**32, 2**63 - 1, -(2**63)]
FLOATS = [0.0, -0.0, 0.5, 0.9, -1.0, 1e308, -1e308, math.inf, -math.inf, math.nan, 5e-324]

_CPP_INT = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        if field.type == FieldDescriptor.TYPE_BYTES:
            return st.binary(max_size=32)
        return st.sampled_from(HOSTILE_STRINGS) | st.text(max_size=40)
    if cpp in _CPP_INT:
        low, high = _CPP_INT[cpp]
        picks = [v for v in INTS if low <= v <= high]
        return st.sampled_from(picks) | st.integers(low, high)
    if cpp in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
        return st.sampled_from(FLOATS) | st.floats(allow_nan=True, allow_infinity=True)
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return st.booleans()
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return st.sampled_from([*numbers, 999, -5])
    raise AssertionError(field.full_name)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of ``descriptor`` with a random subset of fields set to hostile values."""
    cls = GetMessageClass(descriptor)
    fields = [f for f in descriptor.fields if not (depth >= 3 and f.message_type is not None)]

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        for field in (
            draw(st.lists(st.sampled_from(fields), max_size=6, unique=True)) if fields else []
        ):
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                key_field = field.message_type.fields_by_name["key"]
                value_field = field.message_type.fields_by_name["value"]
                if value_field.message_type is None:
                    for _ in range(draw(st.integers(0, 2))):
                        getattr(message, field.name)[draw(_scalar(key_field))] = draw(
                            _scalar(value_field)
                        )
                continue
            if field.message_type is not None:
                if field.message_type.full_name.startswith("google.protobuf."):
                    continue
                strategy = messages(field.message_type, depth + 1)
                if field.is_repeated:
                    for item in draw(st.lists(strategy, max_size=2)):
                        getattr(message, field.name).add().CopyFrom(item)
                else:
                    getattr(message, field.name).CopyFrom(draw(strategy))
                continue
            if field.is_repeated:
                getattr(message, field.name).extend(draw(st.lists(_scalar(field), max_size=3)))
            else:
                setattr(message, field.name, draw(_scalar(field)))
        return message

    return build()


def _call(chan: grpc.Channel, service: str, method: Any, request: Message) -> grpc.StatusCode:
    path = f"/{service}/{method.name}"
    payload = request.SerializeToString()
    try:
        if method.server_streaming:
            for _ in chan.unary_stream(path)(payload, timeout=3):
                break
        else:
            chan.unary_unary(path)(payload, timeout=20)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(("kind", "examples"), [("results", 300), ("pruning", 150), ("eval", 150)])
def test_hostile_field_values_get_a_clean_status(
    kind: str, examples: int, service_factory: Callable[..., ServerThread]
) -> None:
    server = service_factory(kind)
    service = FULL_NAMES[kind]
    chan = grpc.insecure_channel(server.address)
    tally: Counter[str] = Counter()
    bad: list[tuple[str, str, str]] = []
    methods = list(service.methods)

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def probe(data: st.DataObject) -> None:
        method = data.draw(st.sampled_from(methods))
        request = data.draw(messages(method.input_type))
        code = _call(chan, service.full_name, method, request)
        tally[code.name] += 1
        allowed = CLEAN | (
            {grpc.StatusCode.DEADLINE_EXCEEDED} if method.server_streaming else set()
        )
        if code not in allowed:
            bad.append((method.name, code.name, str(request)[:300]))

    try:
        probe()
    finally:
        chan.close()
    print(f"\n{kind}: {sum(tally.values())} requests, codes {dict(tally)}, bad {len(bad)}")
    assert not bad, bad[:5]
