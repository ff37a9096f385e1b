"""The tables of the results store, derived from the descriptors of the messages they hold.

A run is stored as its message (the *record*): each field of the run that is a message or a map
as its JSON (``spec_json``, ``result_json``, ``versions_json``), each scalar field as a column,
``create_time`` as a timestamp. Beside the record, and derived from it:

* every singular scalar inside the run's messages is a column for SQL, named by its field path
  joined with ``_`` (``spec_ratio``, ``spec_calibration_samples``,
  ``result_energy_net_joules_median``); enum values are their experiment-file spellings
  (``taylor``), repeated scalars are lists, and the fields of a message that is not set (and
  unset ``optional`` fields) are NULL;
* each repeated message field named in :data:`RUN_TABLES` is a child table with one row per
  element (``layer_shapes`` holds ``result.layers``), its columns the element's fields.

Only the record is migrated (``migrations.py``). The derived columns and child tables follow
the descriptors: ``migrations.derive`` adds what the messages gained and fills it from the
records, so a field added to PruneSpec or EvalSpec is stored, served and queryable with no edit
here or in the views.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message

from greenprune.api.results.v1 import results_pb2
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import enum_number, enum_spelling
from greenprune.core.message_records import from_json_dict, to_json_dict

_TIMESTAMP = "google.protobuf.Timestamp"

_ARROW_TYPES: dict[int, pa.DataType] = {
    FieldDescriptor.TYPE_DOUBLE: pa.float64(),
    FieldDescriptor.TYPE_FLOAT: pa.float64(),
    FieldDescriptor.TYPE_INT64: pa.int64(),
    FieldDescriptor.TYPE_UINT64: pa.int64(),
    FieldDescriptor.TYPE_SINT64: pa.int64(),
    FieldDescriptor.TYPE_FIXED64: pa.int64(),
    FieldDescriptor.TYPE_SFIXED64: pa.int64(),
    FieldDescriptor.TYPE_INT32: pa.int32(),
    FieldDescriptor.TYPE_UINT32: pa.int64(),
    FieldDescriptor.TYPE_SINT32: pa.int32(),
    FieldDescriptor.TYPE_FIXED32: pa.int64(),
    FieldDescriptor.TYPE_SFIXED32: pa.int32(),
    FieldDescriptor.TYPE_BOOL: pa.bool_(),
    FieldDescriptor.TYPE_STRING: pa.string(),
    FieldDescriptor.TYPE_ENUM: pa.string(),
}


def is_repeated(field_descriptor: FieldDescriptor) -> bool:
    """Whether a field is repeated (protobuf 5 and 6 spell it differently)."""
    repeated = getattr(field_descriptor, "is_repeated", None)
    if isinstance(repeated, bool):
        return repeated
    return field_descriptor.label == FieldDescriptor.LABEL_REPEATED


def is_map(field_descriptor: FieldDescriptor) -> bool:
    """Whether a field is a map."""
    message = field_descriptor.message_type
    return message is not None and message.GetOptions().map_entry


def _is_timestamp(field_descriptor: FieldDescriptor) -> bool:
    message = field_descriptor.message_type
    return message is not None and message.full_name == _TIMESTAMP


def _arrow_type(field_descriptor: FieldDescriptor) -> pa.DataType | None:
    return _ARROW_TYPES.get(field_descriptor.type)


# Flattening ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scalar:
    """One flattened column: a scalar (or repeated scalar) field of a message."""

    name: str
    field: str
    arrow_type: pa.DataType
    presence: bool
    repeated: bool
    spellings: Mapping[int, str] | None
    enum: Any = None

    def value(self, message: Message) -> Any:
        if self.presence and not message.HasField(self.field):
            return None
        value = getattr(message, self.field)
        if self.repeated:
            return [self._spelled(item) for item in value] if self.spellings else list(value)
        return self._spelled(value) if self.spellings is not None else value

    def _spelled(self, value: int) -> str:
        spelled = self.spellings.get(value)  # type: ignore[union-attr]
        return spelled if spelled is not None else enum_spelling(self.enum, value)


@dataclass(frozen=True)
class _Nested:
    """A singular message field, flattened with its own plan."""

    field: str
    plan: _Plan


@dataclass(frozen=True)
class _Plan:
    """How a message type flattens (:func:`flat_fields`), worked out once per type and prefix."""

    entries: tuple[_Scalar | _Nested, ...]
    columns: tuple[pa.Field, ...]


@functools.cache
def _plan(descriptor: Descriptor, prefix: str) -> _Plan:
    entries: list[_Scalar | _Nested] = []
    fields: list[pa.Field] = []
    for item in descriptor.fields:
        name = f"{prefix}{item.name}"
        if is_map(item) or (item.message_type is not None and is_repeated(item)):
            continue
        if item.message_type is not None:
            nested = _plan(item.message_type, f"{name}_")
            entries.append(_Nested(item.name, nested))
            fields.extend(nested.columns)
            continue
        arrow_type = _arrow_type(item)
        if arrow_type is None:
            continue
        enum = None
        spellings = None
        if item.type == FieldDescriptor.TYPE_ENUM:
            enum = EnumTypeWrapper(item.enum_type)
            spellings = {v.number: enum_spelling(enum, v.number) for v in item.enum_type.values}
        repeated = is_repeated(item)
        entries.append(
            _Scalar(name, item.name, arrow_type, item.has_presence, repeated, spellings, enum)
        )
        fields.append(pa.field(name, pa.list_(arrow_type) if repeated else arrow_type))
    return _Plan(tuple(entries), tuple(fields))


def flat_fields(descriptor: Descriptor, prefix: str = "") -> list[pa.Field]:
    """One column per scalar field of a message and of its singular sub-messages.

    Columns are named ``prefix`` + the field path joined by ``_``. Repeated scalars are list
    columns; maps, repeated messages and fields of a type with no column (bytes) are left to
    the message's JSON and child tables.
    """
    return list(_plan(descriptor, prefix).columns)


def flat_values(message: Message | None, descriptor: Descriptor, prefix: str = "") -> dict:
    """The values of :func:`flat_fields` for ``message``; all None when the message is None."""
    plan = _plan(descriptor, prefix)
    if message is None:
        return dict.fromkeys(column.name for column in plan.columns)
    return _values(message, plan)


def _values(message: Message, plan: _Plan) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for entry in plan.entries:
        if isinstance(entry, _Scalar):
            values[entry.name] = entry.value(message)
        elif message.HasField(entry.field):
            values.update(_values(getattr(message, entry.field), entry.plan))
        else:
            values.update(dict.fromkeys(column.name for column in entry.plan.columns))
    return values


# Runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildTable:
    """A repeated message field of a run, stored one element a row.

    Attributes:
        name: The table.
        path: The field path of the repeated field inside the run, e.g. ``("result", "layers")``.
        owner: The column holding the run's request_id.
        copied: Columns copied from the run, by the run's field path (``checkpoint_id``).
        constants: Columns with one value for every row of this run kind (``run_kind``).
        position: Whether a ``position`` column holds the element's index in its list.
        unique: The element fields that tell its elements apart within one run.
        what: What an element is called in errors ("layer").
        fill: Element fields that take a run field's value where they are empty (a metric of
            the run's own task may leave its task empty).
    """

    name: str
    path: tuple[str, ...]
    owner: str
    copied: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)
    position: bool = True
    unique: tuple[str, ...] = ()
    what: str = ""
    fill: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunTable:
    """A run message and the tables that hold it.

    Attributes:
        name: The table of the records and their derived columns.
        message: The run message type (``results_pb2.PruneRun``).
        children: Its repeated message fields that are child tables.
    """

    name: str
    message: type[Message]
    children: tuple[ChildTable, ...] = ()

    @property
    def descriptor(self) -> Descriptor:
        """The run message's descriptor."""
        return self.message.DESCRIPTOR

    @property
    def record_fields(self) -> list[pa.Field]:
        """The record's columns: scalars, ``create_time``, ``<field>_json`` for the rest."""
        columns = []
        for item in self.descriptor.fields:
            if _is_timestamp(item):
                columns.append(pa.field(item.name, pa.timestamp("us")))
            elif item.message_type is not None:
                columns.append(pa.field(f"{item.name}_json", pa.string()))
            elif (arrow_type := _arrow_type(item)) is not None:
                columns.append(pa.field(item.name, arrow_type))
        return columns

    @property
    def derived_fields(self) -> list[pa.Field]:
        """The columns derived from the record's messages (:func:`flat_fields`)."""
        columns = []
        for item in self.descriptor.fields:
            if item.message_type is not None and not _is_timestamp(item) and not is_map(item):
                columns.extend(flat_fields(item.message_type, f"{item.name}_"))
        return columns

    @property
    def schema(self) -> pa.Schema:
        """Every column of the table but ``seq`` (the store's insertion order)."""
        return pa.schema([*self.record_fields, *self.derived_fields])

    def element_descriptor(self, child: ChildTable) -> Descriptor:
        """The message type of a child table's elements."""
        descriptor = self.descriptor
        for name in child.path:
            descriptor = descriptor.fields_by_name[name].message_type
        return descriptor

    def child_schema(self, child: ChildTable) -> pa.Schema:
        """The columns of a child table: owner, copied, constant, position, element fields."""
        head = [pa.field(child.owner, pa.string())]
        head += [pa.field(name, pa.string()) for name in (*child.copied, *child.constants)]
        if child.position:
            head.append(pa.field("position", pa.int32()))
        return pa.schema([*head, *flat_fields(self.element_descriptor(child))])


def _walk(message: Message, path: Sequence[str]) -> Any:
    """The value at ``path`` inside ``message``; None where a message on the way is not set."""
    value: Any = message
    for name in path[:-1]:
        if not value.HasField(name):
            return None
        value = getattr(value, name)
    return getattr(value, path[-1])


def _time(value: Any) -> datetime | None:
    if value is None or not value.ByteSize():
        return None
    return value.ToDatetime(tzinfo=UTC).replace(tzinfo=None)


def record(run: Message) -> dict[str, Any]:
    """The record of a run: its scalars, timestamps and the JSON of its messages and maps.

    The JSON is the message's (``message_records.to_json_dict``), keys sorted; a message field
    that is not set is NULL.
    """
    values: dict[str, Any] = {}
    for item in run.DESCRIPTOR.fields:
        value = getattr(run, item.name)
        if _is_timestamp(item):
            values[item.name] = _time(value) if run.HasField(item.name) else None
        elif is_map(item):
            values[f"{item.name}_json"] = json.dumps(dict(value), sort_keys=True)
        elif item.message_type is not None:
            text = json.dumps(to_json_dict(value), sort_keys=True)
            values[f"{item.name}_json"] = text if run.HasField(item.name) else None
        elif item.type == FieldDescriptor.TYPE_ENUM:
            values[item.name] = enum_spelling(EnumTypeWrapper(item.enum_type), value)
        elif _arrow_type(item) is not None:
            values[item.name] = value
    return values


def derived(run: Message) -> dict[str, Any]:
    """The derived columns of a run (:attr:`RunTable.derived_fields`)."""
    values: dict[str, Any] = {}
    for item in run.DESCRIPTOR.fields:
        if item.message_type is not None and not _is_timestamp(item) and not is_map(item):
            sub = getattr(run, item.name) if run.HasField(item.name) else None
            values.update(flat_values(sub, item.message_type, f"{item.name}_"))
    return values


def from_record(values: Mapping[str, Any], message_type: type[Message]) -> Message:
    """The run a record holds (the inverse of :func:`record`); unknown JSON keys are ignored."""
    data: dict[str, Any] = {}
    for item in message_type.DESCRIPTOR.fields:
        if _is_timestamp(item):
            stamp = values.get(item.name)
            if stamp is not None:
                data[item.name] = stamp.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
        elif item.message_type is not None:
            text = values.get(f"{item.name}_json")
            if text is not None:
                data[item.name] = json.loads(text)
        elif values.get(item.name) is not None:
            value = values[item.name]
            if item.type == FieldDescriptor.TYPE_ENUM:
                value = enum_number(EnumTypeWrapper(item.enum_type), value)
            data[item.name] = value
    return from_json_dict(data, message_type)


def read_runs(connection: Any, table: RunTable, tail: str, parameters: Sequence[Any]) -> list:
    """The runs whose records ``SELECT <record columns> FROM <table> <tail>`` reads.

    Args:
        connection: A DuckDB connection or cursor.
        table: The run table.
        tail: The rest of the statement (``WHERE ...``, ``ORDER BY ...``).
        parameters: Its parameters.
    """
    names = [item.name for item in table.record_fields]
    quoted = ", ".join(f'"{name}"' for name in names)
    rows = connection.execute(f"SELECT {quoted} FROM {table.name} {tail}", parameters).fetchall()
    return [from_record(dict(zip(names, row, strict=True)), table.message) for row in rows]


def child_rows(run: Message, table: RunTable, child: ChildTable) -> list[dict[str, Any]]:
    """The rows of a child table for one run."""
    elements = _walk(run, child.path)
    if not elements:
        return []
    descriptor = table.element_descriptor(child)
    head: dict[str, Any] = {child.owner: run.request_id}
    for name, path in child.copied.items():
        value = _walk(run, path)
        head[name] = "" if value is None else value
    head.update(child.constants)
    rows = []
    for position, element in enumerate(elements):
        row = dict(head)
        if child.position:
            row["position"] = position
        row.update(flat_values(element, descriptor))
        for name, path in child.fill.items():
            if not row.get(name):
                row[name] = _walk(run, path)
        rows.append(row)
    return rows


def check_children(run: Message, table: RunTable, where: str) -> None:
    """Refuses a run whose child elements repeat (two layers with one index, say).

    Raises:
        InvalidArgumentError: Naming the repeated field, e.g. ``run.result.layers``.
    """
    for child in table.children:
        if not child.unique:
            continue
        elements = _walk(run, child.path) or []
        filled = {name: _walk(run, path) for name, path in child.fill.items()}
        seen: set[tuple[Any, ...]] = set()
        for element in elements:
            key = tuple(getattr(element, name) or filled.get(name) for name in child.unique)
            if key in seen:
                raise InvalidArgumentError(
                    ".".join((where, *child.path)), f"duplicate {child.what} {key!r}"
                )
            seen.add(key)


_LAYERS = ChildTable("layer_shapes", ("result", "layers"), "prune_run_id", position=False)
_METRICS = ChildTable("metrics", ("result", "metrics"), "run_id")
_ITEMS = ChildTable("item_scores", ("result", "items"), "run_id", position=False)
_POINTS = ChildTable("profile_points", ("result", "points"), "request_id", position=False)
_COMPONENTS = ChildTable("energy_components", ("result", "energy", "components"), "run_id")


def run_tables(
    prune_run: type[Message] = results_pb2.PruneRun,
    eval_run: type[Message] = results_pb2.EvalRun,
    profile_run: type[Message] = results_pb2.ProfileRun,
) -> dict[str, RunTable]:
    """The run tables of the store for these run messages (the contract's by default)."""
    checkpoint = {"checkpoint_id": ("result", "checkpoint_id")}
    task = {"task": ("result", "task")}
    components = {"unique": ("component",), "what": "component"}
    prune = (
        replace(_LAYERS, copied=checkpoint, unique=("index",), what="layer"),
        replace(_COMPONENTS, constants={"run_kind": "prune"}, **components),
    )
    evaluation = (
        replace(_METRICS, unique=("task", "metric"), what="metric", fill=task),
        replace(_COMPONENTS, constants={"run_kind": "eval"}, **components),
        replace(_ITEMS, copied=task),
    )
    window = ("checkpoint_id", "phase", "batch_size", "round")
    points = replace(
        _POINTS,
        copied={"experiment": ("experiment",), "model": ("model",)},
        unique=window,
        what="window",
    )
    return {
        "prune_runs": RunTable("prune_runs", prune_run, prune),
        "eval_runs": RunTable("eval_runs", eval_run, evaluation),
        "profile_runs": RunTable("profile_runs", profile_run, (points,)),
    }


RUN_TABLES: Mapping[str, RunTable] = run_tables()
"""The store's run tables, from the contract's messages."""


def child_tables(tables: Iterable[RunTable]) -> dict[str, list[tuple[RunTable, ChildTable]]]:
    """Each child table's name and the run tables (and their child specs) that fill it."""
    found: dict[str, list[tuple[RunTable, ChildTable]]] = {}
    for table in tables:
        for child in table.children:
            found.setdefault(child.name, []).append((table, child))
    return found


def arrow_table(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """The rows as an Arrow table of ``schema`` (a key a row lacks is NULL)."""
    return pa.Table.from_pydict(
        {name: [row.get(name) for row in rows] for name in schema.names}, schema=schema
    )


def insert_rows(connection: Any, table: str, rows: pa.Table) -> None:
    """Inserts an Arrow table's rows into ``table``, its columns matched by name."""
    connection.register("_rows", rows)
    try:
        connection.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    finally:
        connection.unregister("_rows")


def sql_type(arrow_type: pa.DataType) -> str:
    """The DuckDB column type of an Arrow type used in these tables."""
    if pa.types.is_list(arrow_type):
        return sql_type(arrow_type.value_type) + "[]"
    for check, name in (
        (pa.types.is_boolean, "BOOLEAN"),
        (pa.types.is_int32, "INTEGER"),
        (pa.types.is_int64, "BIGINT"),
        (pa.types.is_floating, "DOUBLE"),
        (pa.types.is_timestamp, "TIMESTAMP"),
        (pa.types.is_string, "VARCHAR"),
    ):
        if check(arrow_type):
            return name
    raise TypeError(f"no DuckDB type for {arrow_type}")


def column_definitions(fields: Iterable[pa.Field]) -> str:
    """``"name" TYPE`` definitions, comma separated, for a CREATE TABLE statement."""
    return ",\n    ".join(f'"{item.name}" {sql_type(item.type)}' for item in fields)
