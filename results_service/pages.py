"""The ResultsService's boundary: view names, filters, pages of runs and tables, exports.

The run messages themselves need no conversion: the store keeps and returns them as they are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, TypeVar

from google.protobuf import struct_pb2
from google.protobuf.message import Message

from greenprune.api.results.v1 import results_pb2
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import MAX_TEXT_CHARS
from greenprune.rpc.common_messages import parse_page_token
from results_service.store import ViewFilter, ViewTable

M = TypeVar("M", bound=Message)


# Views -------------------------------------------------------------------------------------

VIEW_NAMES: dict[int, str] = {
    value: results_pb2.View.Name(value).removeprefix("VIEW_").lower()
    for value in results_pb2.View.values()
    if value != results_pb2.VIEW_UNSPECIFIED
}
"""The store's view name of every View value but UNSPECIFIED."""

EXPORT_FORMATS: dict[int, str] = {
    results_pb2.EXPORT_FORMAT_CSV: "csv",
    results_pb2.EXPORT_FORMAT_PARQUET: "parquet",
}
"""The store's format name of every ExportFormat value but UNSPECIFIED."""


def view_filter_from_pb(view_filter: results_pb2.ViewFilter) -> ViewFilter:
    """Returns the store's filter of a ViewFilter."""
    return ViewFilter(view_filter.experiment, view_filter.model, view_filter.task)


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat() + ("Z" if value.tzinfo is None else "")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _row_to_pb(row: list[Any]) -> struct_pb2.ListValue:
    message = struct_pb2.ListValue()
    message.extend([_cell(value) for value in row])
    return message


# Pages -------------------------------------------------------------------------------------

TRUNCATION_MARKER = "…[truncated {removed} bytes]"
"""Ends a string value cut because its message was too large for one response."""

KEPT_STRING_BYTES = MAX_TEXT_CHARS
"""What a cut string keeps: as much as the service accepts in a free-text field today."""

TOKEN_ROOM = 64
"""Bytes kept free in a response for its next_page_token and the other small fields."""


def cut_text(value: str, keep: int = KEPT_STRING_BYTES) -> str:
    """Returns ``value`` cut to its first ``keep`` UTF-8 bytes and :data:`TRUNCATION_MARKER`.

    A value no longer than ``keep`` bytes is returned as it is.
    """
    if len(value) * 4 <= keep:
        return value
    encoded = value.encode("utf-8")
    if len(encoded) <= keep:
        return value
    kept = encoded[:keep].decode("utf-8", "ignore")
    return kept + TRUNCATION_MARKER.format(removed=len(encoded) - len(kept.encode("utf-8")))


def cap_strings(message: Message, keep: int = KEPT_STRING_BYTES) -> None:
    """Cuts, in place, every string anywhere in ``message`` (map keys too) with ``cut_text``."""
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _cap_map(value, field.message_type.fields_by_name["value"], keep)
        elif field.message_type is not None:
            for item in value if field.is_repeated else [value]:
                cap_strings(item, keep)
        elif field.type == field.TYPE_STRING:
            if field.is_repeated:
                value[:] = [cut_text(item, keep) for item in value]
            elif cut_text(value, keep) is not value:
                setattr(message, field.name, cut_text(value, keep))


def _cap_map(entries: Any, value_field: Any, keep: int) -> None:
    for key in list(entries):
        item = entries[key]
        if value_field.message_type is not None:
            cap_strings(item, keep)
        new_key = cut_text(key, keep) if isinstance(key, str) else key
        new_item = cut_text(item, keep) if isinstance(item, str) else item
        if new_key is key and new_item is item:
            continue
        if value_field.message_type is None:
            del entries[key]
            entries[new_key] = new_item
        else:
            kept = type(item)()
            kept.CopyFrom(item)
            del entries[key]
            entries[new_key].CopyFrom(kept)


_CUT_STRING_BYTES = (KEPT_STRING_BYTES, 512, 64)
"""What cut strings keep, tried in turn, when a message is too large for a response alone."""


def fit(message: M, budget: int) -> M:
    """Returns ``message``, or a copy cut to at most ``budget`` serialized bytes.

    Its strings are cut first (``cap_strings``, keeping less and less); a record still too
    large (thousands of list entries: only a store written before records were bounded holds
    one) then loses the second half of its largest list, in turn, until it fits. The promise
    is the response size: one stored record never makes a page fail.
    """
    if message.ByteSize() <= budget:
        return message
    for keep in _CUT_STRING_BYTES:
        cut = type(message)()
        cut.CopyFrom(message)
        cap_strings(cut, keep)
        if cut.ByteSize() <= budget:
            return cut
    while cut.ByteSize() > budget and _halve_largest_list(cut):
        pass
    return cut


def _halve_largest_list(message: Message) -> bool:
    """Drops the second half of the largest repeated field anywhere in ``message``."""
    largest: tuple[int, Any] | None = None
    stack = [message]
    while stack:
        current = stack.pop()
        for field, value in current.ListFields():
            if field.is_repeated and len(value) > 1:
                size = sum(
                    item.ByteSize() if isinstance(item, Message) else len(str(item))
                    for item in value
                )
                if largest is None or size > largest[0]:
                    largest = (size, value)
            if field.message_type is not None and not field.message_type.GetOptions().map_entry:
                stack.extend(value if field.is_repeated else [value])
    if largest is None:
        return False
    values = largest[1]
    del values[(len(values) + 1) // 2 :]
    return True


def _entry_bytes(size: int) -> int:
    """The bytes a message of ``size`` bytes takes as an element of a repeated field."""
    return 2 + size.bit_length() // 7 + size


def take_page(messages: Iterable[M], budget: int) -> list[M]:
    """Takes ``messages`` while they fit ``budget`` serialized bytes together.

    The first is always taken: when it alone is larger than ``budget``, it is cut to fit
    (``fit``: its strings, then its largest lists), so that one oversized record is still
    served rather than failing the call. At most one message past the page is drawn from
    ``messages``.
    """
    page: list[M] = []
    total = 0
    for message in messages:
        size = _entry_bytes(message.ByteSize())
        if page and total + size > budget:
            break
        if not page and size > budget:
            message = fit(message, budget - (size - message.ByteSize()))
            size = _entry_bytes(message.ByteSize())
        page.append(message)
        total += size
    return page


def runs_page(
    runs: list[M], offset: int, next_offset: int | None, budget: int
) -> tuple[list[M], str]:
    """Returns the runs of a store page that fit ``budget``, and the next page's token.

    Args:
        runs: A page of the store (``ResultsStore.list_runs``).
        offset: The page's offset.
        next_offset: The store's offset of the next page, None when the page was the last.
        budget: The response's size in bytes.
    """
    page = take_page(iter(runs), budget - TOKEN_ROOM)
    if len(page) < len(runs):
        next_offset = offset + len(page)
    return page, "" if next_offset is None else str(next_offset)


def table_page(
    table: ViewTable, offset: int, limit: int | None, budget: int
) -> tuple[results_pb2.Table, str]:
    """Returns the rows of a view from ``offset`` that fit ``budget``, and the next page's token.

    Numbers travel as doubles, timestamps as RFC 3339 UTC text.

    Args:
        table: The whole view.
        offset: The rows to skip.
        limit: The most rows to return; None for as many as fit.
        budget: The response's size in bytes.
    """
    message = results_pb2.Table(
        columns=[results_pb2.Column(name=c.name, type=c.type) for c in table.columns]
    )
    end = len(table.rows) if limit is None else min(len(table.rows), offset + limit)
    rows = (_row_to_pb(row) for row in table.rows[offset:end])
    message.rows.extend(take_page(rows, budget - message.ByteSize() - TOKEN_ROOM))
    after = offset + len(message.rows)
    return message, str(after) if after < len(table.rows) else ""


_EXPORT_TOKEN = re.compile(r"([0-9]{1,16})-([0-9a-f]{8})")


def parse_export_token(page_token: str) -> tuple[int, str]:
    """Returns the byte offset and the file's fingerprint of an export token ((0, "") if empty).

    Raises:
        InvalidArgumentError: The token is not one ``export_token`` issued.
    """
    if not page_token:
        return 0, ""
    match = _EXPORT_TOKEN.fullmatch(page_token)
    if match is None:
        raise InvalidArgumentError(
            "page_token", f"{page_token[:20]!r} is not a token this server issued"
        )
    return parse_page_token(match[1]), match[2]


def export_token(next_offset: int | None, fingerprint: str) -> str:
    """Returns the token of an export's next chunk ("" after the last one)."""
    return "" if next_offset is None else f"{next_offset}-{fingerprint}"


EXPORT_CHUNK_ROOM = 1024
"""Bytes of a response kept free beside an export chunk (media type, file name, token)."""
