"""The results store's records as ordered, frozen migrations, and the tables derived from them.

Opening a store applies every migration newer than the file's recorded version, each in its own
transaction together with its row in ``schema_version``, so a crash leaves the file at the
previous version, never half-way. Migrations are frozen once released: their SQL and code name
the columns of their time literally and never read the live messages' layout; change the
records by appending a migration, never by editing one.

Only the records are migrated. What derives from them (``columns.py``: the columns flattened
from the messages, the child tables) follows the live descriptors: :func:`derive` runs after the
migrations on every open, adds what the messages gained and fills it from the records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from greenprune.core.errors import FailedPreconditionError
from results_service import columns
from results_service.columns import RunTable


@dataclass(frozen=True)
class Migration:
    """One schema step.

    Attributes:
        version: The schema version the step leads to, counting from 1.
        description: What the step changes, for ``schema_version.description``.
        statements: SQL statements, run in order inside the step's transaction.
        code: A step written in Python, run after the statements in the same transaction.
    """

    version: int
    description: str
    statements: tuple[str, ...] = ()
    code: Callable[[duckdb.DuckDBPyConnection], None] | None = field(default=None)


# The columns of an EnergyReport, on prune_runs (the pruning's own energy) and eval_runs alike.
_V1_ENERGY = """has_energy BOOLEAN NOT NULL DEFAULT false,
        headline_component VARCHAR,
        net_joules DOUBLE, net_joules_low DOUBLE, net_joules_high DOUBLE,
        net_joules_count INTEGER, net_joules_interval VARCHAR,
        gross_joules DOUBLE, gross_joules_low DOUBLE, gross_joules_high DOUBLE,
        gross_joules_count INTEGER, gross_joules_interval VARCHAR,
        wall_seconds DOUBLE, wall_seconds_low DOUBLE, wall_seconds_high DOUBLE,
        wall_seconds_count INTEGER, wall_seconds_interval VARCHAR,
        tokens_per_second DOUBLE, tokens_per_second_low DOUBLE, tokens_per_second_high DOUBLE,
        tokens_per_second_count INTEGER, tokens_per_second_interval VARCHAR,
        tokens BIGINT, energy_samples BIGINT, joules_per_token DOUBLE, joules_per_sample DOUBLE,
        peak_rss_bytes BIGINT, peak_cuda_bytes BIGINT, device_name VARCHAR, hardware VARCHAR,
        gpu_shared BOOLEAN, estimated BOOLEAN, repeats INTEGER, repeat_net_joules DOUBLE[]"""

_V1 = (
    """
    CREATE TABLE models (
        model VARCHAR PRIMARY KEY,
        architecture VARCHAR,
        parameters BIGINT,
        macs BIGINT,
        first_seen TIMESTAMP NOT NULL,
        last_seen TIMESTAMP NOT NULL
    )
    """,
    "CREATE SEQUENCE run_seq START 1",
    f"""
    CREATE TABLE prune_runs (
        request_id VARCHAR PRIMARY KEY,
        seq BIGINT NOT NULL DEFAULT nextval('run_seq'),
        experiment VARCHAR NOT NULL,
        job_name VARCHAR NOT NULL,
        create_time TIMESTAMP NOT NULL,
        model VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        target_ratio DOUBLE NOT NULL,
        prune_attention_heads BOOLEAN NOT NULL,
        prune_mlp BOOLEAN NOT NULL,
        prune_hidden BOOLEAN NOT NULL,
        keep_first_layers INTEGER NOT NULL,
        keep_last_layers INTEGER NOT NULL,
        round_to INTEGER NOT NULL,
        calibration_samples INTEGER NOT NULL,
        calibration_sequence_length INTEGER NOT NULL,
        calibration_source VARCHAR NOT NULL,
        seed BIGINT NOT NULL,
        checkpoint_id VARCHAR NOT NULL,
        parameters_before BIGINT NOT NULL,
        parameters_after BIGINT NOT NULL,
        prunable_parameters_before BIGINT NOT NULL,
        prunable_parameters_after BIGINT NOT NULL,
        achieved_ratio DOUBLE NOT NULL,
        macs_before BIGINT NOT NULL,
        macs_after BIGINT NOT NULL,
        bytes_on_disk BIGINT NOT NULL,
        prune_wall_seconds DOUBLE NOT NULL,
        uniform BOOLEAN NOT NULL,
        content_hash VARCHAR NOT NULL,
        architecture VARCHAR NOT NULL,
        versions_json VARCHAR NOT NULL,
        {_V1_ENERGY}
    )
    """,
    """
    CREATE TABLE layer_shapes (
        prune_run_id VARCHAR NOT NULL,
        checkpoint_id VARCHAR NOT NULL,
        layer_index INTEGER NOT NULL,
        attention_heads INTEGER NOT NULL,
        key_value_heads INTEGER NOT NULL,
        intermediate_size INTEGER NOT NULL,
        kept BOOLEAN NOT NULL,
        PRIMARY KEY (prune_run_id, layer_index)
    )
    """,
    f"""
    CREATE TABLE eval_runs (
        request_id VARCHAR PRIMARY KEY,
        seq BIGINT NOT NULL DEFAULT nextval('run_seq'),
        experiment VARCHAR NOT NULL,
        job_name VARCHAR NOT NULL,
        create_time TIMESTAMP NOT NULL,
        checkpoint_id VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        task VARCHAR NOT NULL,
        samples BIGINT NOT NULL,
        num_fewshot INTEGER NOT NULL,
        sample_limit INTEGER,
        spec_json VARCHAR NOT NULL,
        versions_json VARCHAR NOT NULL,
        {_V1_ENERGY}
    )
    """,
    """
    CREATE TABLE metrics (
        run_id VARCHAR NOT NULL,
        position INTEGER NOT NULL,
        task VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        value DOUBLE NOT NULL,
        stderr DOUBLE,
        samples BIGINT NOT NULL,
        PRIMARY KEY (run_id, task, metric)
    )
    """,
    """
    CREATE TABLE energy_components (
        run_kind VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        position INTEGER NOT NULL,
        component VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        estimated BOOLEAN NOT NULL,
        gross_joules DOUBLE, gross_joules_low DOUBLE, gross_joules_high DOUBLE,
        gross_joules_count INTEGER, gross_joules_interval VARCHAR,
        net_joules DOUBLE, net_joules_low DOUBLE, net_joules_high DOUBLE,
        net_joules_count INTEGER, net_joules_interval VARCHAR,
        idle_watts DOUBLE NOT NULL,
        PRIMARY KEY (run_kind, run_id, component)
    )
    """,
)

_V2 = (
    """
    CREATE TABLE profile_runs (
        seq BIGINT NOT NULL DEFAULT nextval('run_seq'),
        request_id VARCHAR,
        experiment VARCHAR,
        model VARCHAR,
        job_name VARCHAR,
        create_time TIMESTAMP,
        spec_json VARCHAR,
        energy_method VARCHAR,
        estimated BOOLEAN,
        hardware VARCHAR,
        device_name VARCHAR,
        idle_watts DOUBLE,
        prefill_tokens INTEGER,
        decode_tokens INTEGER,
        PRIMARY KEY (request_id)
    )
    """,
    """
    CREATE TABLE profile_points (
        request_id VARCHAR,
        experiment VARCHAR,
        model VARCHAR,
        checkpoint_id VARCHAR,
        phase VARCHAR,
        batch_size INTEGER,
        round INTEGER,
        position INTEGER,
        net_joules DOUBLE,
        gross_joules DOUBLE,
        wall_seconds DOUBLE,
        tokens BIGINT,
        iterations INTEGER
    )
    """,
    """
    CREATE TABLE item_scores (
        run_id VARCHAR,
        task VARCHAR,
        doc_id BIGINT,
        metric VARCHAR,
        value DOUBLE
    )
    """,
)

# Version 3: every run becomes its messages (the record); the hand-named copies of their fields,
# the recovery_* columns and the child tables are dropped, and derive() rebuilds the columns
# and child tables from the records. The code below reads the version-2 columns by their names
# of that time.

_V3_TABLES = (
    """
    CREATE TABLE prune_runs (
        seq BIGINT NOT NULL DEFAULT nextval('run_seq'),
        request_id VARCHAR PRIMARY KEY,
        experiment VARCHAR NOT NULL,
        spec_json VARCHAR,
        result_json VARCHAR,
        create_time TIMESTAMP NOT NULL,
        job_name VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE eval_runs (
        seq BIGINT NOT NULL DEFAULT nextval('run_seq'),
        request_id VARCHAR PRIMARY KEY,
        experiment VARCHAR NOT NULL,
        checkpoint_id VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        spec_json VARCHAR,
        result_json VARCHAR,
        versions_json VARCHAR NOT NULL,
        create_time TIMESTAMP NOT NULL,
        job_name VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE profile_runs (
        seq BIGINT NOT NULL DEFAULT nextval('run_seq'),
        request_id VARCHAR PRIMARY KEY,
        experiment VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        spec_json VARCHAR,
        result_json VARCHAR,
        create_time TIMESTAMP NOT NULL,
        job_name VARCHAR NOT NULL
    )
    """,
)

_V2_RUN_TABLES = ("prune_runs", "eval_runs", "profile_runs")
_V2_CHILD_TABLES = ("layer_shapes", "energy_components", "metrics", "item_scores", "profile_points")
_V3_CHUNK = 500
"""Runs converted at a time (their child rows are read per chunk)."""


def _fetch(connection: duckdb.DuckDBPyConnection, sql: str, parameters: Any = None) -> list[dict]:
    result = connection.execute(sql, parameters or [])
    names = [column[0] for column in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _grouped(
    connection: duckdb.DuckDBPyConnection, table: str, owner: str, ids: list[str], order: str
) -> dict[str, list[dict]]:
    """The rows of a version-2 child table whose ``owner`` is one of ``ids``, by owner."""
    grouped: dict[str, list[dict]] = {}
    sql = f"SELECT * FROM {table} WHERE {owner} IN (SELECT unnest(?::VARCHAR[])) ORDER BY {order}"
    for row in _fetch(connection, sql, [ids]):
        grouped.setdefault(row[owner], []).append(row)
    return grouped


def _chunks(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    children: Mapping[str, tuple[str, str, str]],
) -> Iterator[tuple[list[dict], dict[str, dict[str, list[dict]]]]]:
    """A version-2 run table's rows a chunk at a time, each with its child rows.

    Args:
        connection: The connection.
        table: The run table.
        children: Each child's (table, owner column, order column), by a name of the caller's.

    Yields:
        The chunk's rows, and each child's rows by name and then by the run's request_id.
    """
    rows = _fetch(connection, f"SELECT * FROM {table} ORDER BY seq")
    for start in range(0, len(rows), _V3_CHUNK):
        chunk = rows[start : start + _V3_CHUNK]
        ids = [row["request_id"] for row in chunk]
        yield (
            chunk,
            {
                name: _grouped(connection, child, owner, ids, order)
                for name, (child, owner, order) in children.items()
            },
        )


_V2_INTERVAL = {"_low": "low", "_high": "high", "_count": "count", "_interval": "method"}
"""Version 2's columns of an Interval field: the median under its name, the rest suffixed."""

_V2_EVAL_COLUMNS = frozenset(
    {
        "request_id",
        "seq",
        "experiment",
        "job_name",
        "create_time",
        "checkpoint_id",
        "model",
        "task",
        "samples",
        "num_fewshot",
        "sample_limit",
        "spec_json",
        "versions_json",
        "has_energy",
    }
)
"""eval_runs' hand-named columns in version 2; its other columns held its EnergyReport."""

_V2_PRUNE_COLUMNS = frozenset(
    {
        "request_id",
        "seq",
        "experiment",
        "job_name",
        "create_time",
        "model",
        "method",
        "target_ratio",
        "prune_attention_heads",
        "prune_mlp",
        "prune_hidden",
        "keep_first_layers",
        "keep_last_layers",
        "round_to",
        "calibration_samples",
        "calibration_sequence_length",
        "calibration_source",
        "seed",
        "checkpoint_id",
        "parameters_before",
        "parameters_after",
        "prunable_parameters_before",
        "prunable_parameters_after",
        "achieved_ratio",
        "macs_before",
        "macs_after",
        "bytes_on_disk",
        "prune_wall_seconds",
        "uniform",
        "content_hash",
        "architecture",
        "versions_json",
        "has_energy",
        "recovered",
        "recovery_steps",
        "recovery_net_joules",
        "recovery_final_loss",
        "recovery_parent_content_hash",
        "recovery_json",
        "spec_json",
        "result_json",
    }
)
"""prune_runs' hand-named columns in version 2 (besides the spec_* and result_* copies of its
messages); its other columns held the pruning's EnergyReport."""


def _v3_fields(row: Mapping[str, Any], skip: Iterable[str]) -> dict[str, Any]:
    """A message's fields from version-2 columns named by version 2's rule.

    Each field had a column of its own name, an Interval five (:data:`_V2_INTERVAL`); the
    columns in ``skip`` are not the message's. Fields added to the message after version 1
    reached version-2 files as columns by the same rule, so they are carried over too.
    """
    names = [name for name in row if name not in set(skip)]
    parts = {f"{name}{suffix}" for name in names for suffix in _V2_INTERVAL}
    fields: dict[str, Any] = {}
    for name in names:
        if name in parts:
            continue
        if any(f"{name}{suffix}" in row for suffix in _V2_INTERVAL):
            if row[name] is not None:
                fields[name] = {"median": row[name]} | {
                    key: row[f"{name}{suffix}"]
                    for suffix, key in _V2_INTERVAL.items()
                    if row.get(f"{name}{suffix}") is not None
                }
        else:
            fields[name] = row[name]
    return fields


def _v3_energy(
    row: Mapping[str, Any], hand_named: Iterable[str], components: Iterable[Mapping[str, Any]]
) -> dict | None:
    """The EnergyReport of a version-2 run row and its energy_components rows.

    Its figures are the row's columns but ``hand_named`` and the copies of its messages.
    """
    if not row.get("has_energy"):
        return None
    skip = {*hand_named, *(name for name in row if name.startswith(("spec_", "result_")))}
    report = _v3_fields(row, skip)
    report["samples"] = report.pop("energy_samples", None)
    report["components"] = [
        _v3_fields(part, ("run_kind", "run_id", "position")) for part in components
    ]
    return report


def _json(data: Mapping[str, Any] | None) -> str | None:
    """Version-3 JSON of a message: proto field names, nulls and empty values left out."""
    if data is None:
        return None

    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            kept = {k: clean(v) for k, v in value.items()}
            return {k: v for k, v in kept.items() if v not in (None, [], {}, "", 0, False)}
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    return json.dumps(clean(data), sort_keys=True)


def _v3_prune_runs(connection: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    records = []
    children = {
        "layers": ("layer_shapes_v2", "prune_run_id", "layer_index"),
        "parts": ("prune_components", "run_id", "position"),
    }
    for chunk, child in _chunks(connection, "prune_runs_v2", children):
        layers, parts = child["layers"], child["parts"]
        for row in chunk:
            spec, result = row.get("spec_json"), row.get("result_json")
            if not (spec and result):  # written before the messages were stored whole
                spec, result = _v3_prune_messages(
                    row, layers.get(row["request_id"], []), parts.get(row["request_id"], [])
                )
            records.append(
                {
                    "seq": row["seq"],
                    "request_id": row["request_id"],
                    "experiment": row["experiment"],
                    "spec_json": spec,
                    "result_json": result,
                    "create_time": row["create_time"],
                    "job_name": row["job_name"],
                }
            )
    return records


def _v3_prune_messages(
    row: Mapping[str, Any], layers: list[Mapping[str, Any]], parts: list[Mapping[str, Any]]
) -> tuple[str | None, str | None]:
    """The PruneSpec and PruneResult JSON of a version-2 row without its messages."""
    method = str(row["method"]).upper().replace("-", "_")
    spec: dict[str, Any] = {
        "model": row["model"],
        "method": f"PRUNING_METHOD_{method}",
        "ratio": row["target_ratio"],
        "prune_attention_heads": row["prune_attention_heads"],
        "prune_mlp": row["prune_mlp"],
        "prune_hidden": row["prune_hidden"],
        "keep_first_layers": row["keep_first_layers"],
        "keep_last_layers": row["keep_last_layers"],
        "round_to": row["round_to"],
        "calibration": {
            "samples": row["calibration_samples"],
            "sequence_length": row["calibration_sequence_length"],
            "source": row["calibration_source"],
        },
        "seed": row["seed"],
    }
    result: dict[str, Any] = {
        "checkpoint_id": row["checkpoint_id"],
        "parameters_before": row["parameters_before"],
        "parameters_after": row["parameters_after"],
        "prunable_parameters_before": row["prunable_parameters_before"],
        "prunable_parameters_after": row["prunable_parameters_after"],
        "achieved_ratio": row["achieved_ratio"],
        "macs_before": row["macs_before"],
        "macs_after": row["macs_after"],
        "bytes_on_disk": row["bytes_on_disk"],
        "layers": [
            {
                "index": layer["layer_index"],
                "attention_heads": layer["attention_heads"],
                "key_value_heads": layer["key_value_heads"],
                "intermediate_size": layer["intermediate_size"],
                "kept": layer["kept"],
            }
            for layer in layers
        ],
        "wall_seconds": row["prune_wall_seconds"],
        "energy": _v3_energy(row, _V2_PRUNE_COLUMNS, parts),
        "uniform": row["uniform"],
        "content_hash": row["content_hash"],
        "architecture": row["architecture"],
        "versions": json.loads(row["versions_json"] or "{}"),
    }
    if row.get("recovery_json"):
        recovery = json.loads(row["recovery_json"])
        spec["recovery"] = recovery.get("spec")
        result["recovery"] = recovery.get("result")
    return _json(spec), _json(result)


def _v3_eval_runs(connection: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    records = []
    children = {
        "metrics": ("metrics_v2", "run_id", "position"),
        "parts": ("eval_components", "run_id", "position"),
        "items": ("item_scores_v2", "run_id", "rowid"),
    }
    for chunk, child in _chunks(connection, "eval_runs_v2", children):
        metrics, parts, items = child["metrics"], child["parts"], child["items"]
        for row in chunk:
            run_id = row["request_id"]
            result = {
                "task": row["task"],
                "samples": row["samples"],
                "metrics": [
                    {
                        "task": metric["task"],
                        "metric": metric["metric"],
                        "value": metric["value"],
                        "stderr": metric["stderr"],
                        "samples": metric["samples"],
                    }
                    for metric in metrics.get(run_id, [])
                ],
                "energy": _v3_energy(row, _V2_EVAL_COLUMNS, parts.get(run_id, [])),
                "items": [_v3_fields(item, ("run_id", "task")) for item in items.get(run_id, [])],
            }
            records.append(
                {
                    "seq": row["seq"],
                    "request_id": run_id,
                    "experiment": row["experiment"],
                    "checkpoint_id": row["checkpoint_id"],
                    "model": row["model"],
                    "spec_json": _json(json.loads(row["spec_json"] or "{}")),
                    "result_json": _json(result),
                    "versions_json": row["versions_json"] or "{}",
                    "create_time": row["create_time"],
                    "job_name": row["job_name"],
                }
            )
    return records


def _v3_profile_runs(connection: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    # Version 2 kept every field of a ProfileResult and of its points as a column by its name.
    run_columns = ("seq", "request_id", "experiment", "model", "job_name", "create_time")
    records = []
    children = {"points": ("profile_points_v2", "request_id", "rowid")}
    for chunk, child in _chunks(connection, "profile_runs_v2", children):
        points = child["points"]
        for row in chunk:
            result = _v3_fields(row, (*run_columns, "spec_json"))
            result["points"] = [
                _v3_fields(point, ("request_id", "experiment", "model"))
                for point in points.get(row["request_id"], [])
            ]
            records.append(
                {
                    "seq": row["seq"],
                    "request_id": row["request_id"],
                    "experiment": row["experiment"] or "",
                    "model": row["model"] or "",
                    "spec_json": _json(json.loads(row["spec_json"] or "{}")),
                    "result_json": _json(result),
                    "create_time": row["create_time"],
                    "job_name": row["job_name"] or "",
                }
            )
    return records


def _v3(connection: duckdb.DuckDBPyConnection) -> None:
    for table in (*_V2_RUN_TABLES, *_V2_CHILD_TABLES):
        connection.execute(f"ALTER TABLE {table} RENAME TO {table}_v2")
    for kind in ("prune", "eval"):
        connection.execute(
            f"CREATE TEMP VIEW {kind}_components AS"
            f" SELECT * FROM energy_components_v2 WHERE run_kind = '{kind}'"
        )
    records = {
        "prune_runs": _v3_prune_runs(connection),
        "eval_runs": _v3_eval_runs(connection),
        "profile_runs": _v3_profile_runs(connection),
    }
    for statement in _V3_TABLES:
        connection.execute(statement)
    for table, rows in records.items():
        if rows:
            columns.insert_rows(connection, table, pa.Table.from_pylist(rows))
    for kind in ("prune", "eval"):
        connection.execute(f"DROP VIEW {kind}_components")
    for table in (*_V2_CHILD_TABLES, *_V2_RUN_TABLES):
        connection.execute(f"DROP TABLE {table}_v2")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "models, prune runs, layer shapes, eval runs, metrics, energy components", _V1),
    Migration(2, "energy profiles (runs and points) and per-document item scores", _V2),
    Migration(
        3,
        "runs stored as their messages; hand-named copies, recovery_* and child tables dropped",
        code=_v3,
    ),
)
"""Every migration, in version order."""

LATEST_VERSION = MIGRATIONS[-1].version


def current_version(connection: duckdb.DuckDBPyConnection) -> int:
    """Returns the schema version recorded in the file, 0 for a new file."""
    connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(connection: duckdb.DuckDBPyConnection) -> list[int]:
    """Brings the file's records up to ``LATEST_VERSION``.

    Args:
        connection: An open read-write connection.

    Returns:
        The versions applied by this call, empty when the file was up to date.

    Raises:
        FailedPreconditionError: The file was written by a newer greenprune.
    """
    version = current_version(connection)
    if version > LATEST_VERSION:
        raise FailedPreconditionError(
            f"the results database has schema version {version}, newer than this "
            f"greenprune's {LATEST_VERSION}; upgrade greenprune"
        )
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version <= version:
            continue
        connection.execute("BEGIN TRANSACTION")
        try:
            for statement in migration.statements:
                connection.execute(statement)
            if migration.code is not None:
                migration.code(connection)
            connection.execute(
                "INSERT INTO schema_version (version, description) VALUES (?, ?)",
                [migration.version, migration.description],
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        applied.append(migration.version)
    return applied


# Derived tables ----------------------------------------------------------------------------

DERIVE_CHUNK = 1000
"""Records read at a time while filling derived columns and child tables."""


def _present_columns(connection: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {
        name
        for (name,) in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
        ).fetchall()
    }


def _records(connection: duckdb.DuckDBPyConnection, table: RunTable) -> Iterator[list[Any]]:
    """The table's runs, parsed from their records, a chunk at a time.

    Each chunk is read whole before the caller writes, so reads and writes share one connection.
    """
    offset = 0
    tail = "ORDER BY seq LIMIT ? OFFSET ?"
    while runs := columns.read_runs(connection, table, tail, [DERIVE_CHUNK, offset]):
        offset += len(runs)
        yield runs


def derive(connection: duckdb.DuckDBPyConnection, tables: Sequence[RunTable]) -> list[str]:
    """Adds the derived columns and child tables the messages call for, filled from the records.

    A column the table lacks is added and filled for every stored run; a child table that is
    missing, or lacks a column, is (re)built from every stored run. Nothing is done when the
    file matches the messages, which is every open but the first after a change of the contract.

    Args:
        connection: An open read-write connection at ``LATEST_VERSION``.
        tables: The run tables (``columns.RUN_TABLES``).

    Returns:
        What was added, as ``table.column`` and ``table`` names.
    """
    added: list[str] = []
    connection.execute("BEGIN TRANSACTION")
    try:
        for table in tables:
            added += _derive_columns(connection, table)
        for name, owners in columns.child_tables(tables).items():
            added += _derive_child(connection, name, owners)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return added


def _derive_columns(connection: duckdb.DuckDBPyConnection, table: RunTable) -> list[str]:
    present = _present_columns(connection, table.name)
    missing = [item for item in table.schema if item.name not in present]
    for item in missing:
        connection.execute(
            f'ALTER TABLE {table.name} ADD COLUMN "{item.name}" {columns.sql_type(item.type)}'
        )
    derived = [item for item in missing if item in table.derived_fields]
    if derived:
        schema = pa.schema([pa.field("request_id", pa.string()), *derived])
        assignments = ", ".join(f'"{item.name}" = _filled."{item.name}"' for item in derived)
        for runs in _records(connection, table):
            rows = [{"request_id": run.request_id, **columns.derived(run)} for run in runs]
            connection.register("_filled", columns.arrow_table(rows, schema))
            try:
                connection.execute(
                    f"UPDATE {table.name} SET {assignments} FROM _filled"
                    f" WHERE {table.name}.request_id = _filled.request_id"
                )
            finally:
                connection.unregister("_filled")
    return [f"{table.name}.{item.name}" for item in missing]


def _derive_child(
    connection: duckdb.DuckDBPyConnection,
    name: str,
    owners: Sequence[tuple[RunTable, columns.ChildTable]],
) -> list[str]:
    schema = _union(owner.child_schema(child) for owner, child in owners)
    present = _present_columns(connection, name)
    if present and all(item.name in present for item in schema):
        return []
    if present:
        connection.execute(f"DROP TABLE {name}")
    connection.execute(f"CREATE TABLE {name} (\n    {columns.column_definitions(schema)}\n)")
    for table, child in owners:
        for runs in _records(connection, table):
            rows = [row for run in runs for row in columns.child_rows(run, table, child)]
            if rows:
                columns.insert_rows(connection, name, columns.arrow_table(rows, schema))
    return [name]


def _union(schemas: Iterable[pa.Schema]) -> pa.Schema:
    fields: dict[str, pa.Field] = {}
    for schema in schemas:
        for item in schema:
            fields.setdefault(item.name, item)
    return pa.schema(list(fields.values()))
