"""The results store's schema as ordered migrations.

Each migration is a list of SQL statements with a version number. Opening a store applies every
migration newer than the file's recorded version, each in its own transaction together with its
row in ``schema_version``, so a crash leaves the file at the previous version, never half-way.
Migrations are frozen once released: change the schema by appending a new one, never by
editing an old one.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from greenprune.core.errors import FailedPreconditionError
from results_service import schema


@dataclass(frozen=True)
class Migration:
    """One schema step.

    Attributes:
        version: The schema version the step leads to, counting from 1.
        description: What the step changes, for ``schema_version.description``.
        statements: The SQL statements, run in order inside one transaction.
    """

    version: int
    description: str
    statements: tuple[str, ...]


# The headline energy figures of one EnergyReport, derived from the message (schema.py). The
# same block appears on eval_runs and on prune_runs (for the energy of the pruning itself); every
# column is NULL when the run carried no energy report (has_energy false).
_ENERGY_BLOCK = "has_energy BOOLEAN NOT NULL DEFAULT false,\n    " + schema.column_definitions(
    field for field in schema.ENERGY_FIELDS if field.name != "has_energy"
)

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
        {_ENERGY_BLOCK}
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
        {_ENERGY_BLOCK}
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

# Version 2: energy profiles and per-document scores. The columns follow the messages
# (ProfileResult, ProfilePoint, ItemScore) through schema.py. No indexes: DuckDB cannot ALTER a
# table an index depends on, and add_missing_columns must be able to.
_V2 = (
    f"""
    CREATE TABLE profile_runs (
        seq BIGINT NOT NULL DEFAULT nextval('run_seq'),
        {schema.column_definitions(schema.PROFILE_RUNS)},
        PRIMARY KEY (request_id)
    )
    """,
    f"""
    CREATE TABLE profile_points (
        {schema.column_definitions(schema.PROFILE_POINTS)}
    )
    """,
    f"""
    CREATE TABLE item_scores (
        {schema.column_definitions(schema.ITEM_SCORES)}
    )
    """,
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "models, prune runs, layer shapes, eval runs, metrics, energy components",
        _V1,
    ),
    Migration(2, "energy profiles (runs and points) and per-document item scores", _V2),
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
    """Brings the file's schema up to ``LATEST_VERSION``.

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
            connection.execute(
                "INSERT INTO schema_version (version, description) VALUES (?, ?)",
                [migration.version, migration.description],
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        applied.append(migration.version)
    add_missing_columns(connection)
    return applied


def add_missing_columns(connection: duckdb.DuckDBPyConnection) -> list[str]:
    """Adds the columns ``schema.DERIVED_TABLES`` name and the file lacks (nullable).

    A field added to a message (an EnergyReport figure, a ProfilePoint field) thus reaches the
    store without a hand-written migration; removing or renaming a column still needs one.

    Returns:
        The columns added, as ``table.column``.
    """
    added: list[str] = []
    for table, arrow_schema in schema.DERIVED_TABLES.items():
        present = {
            name
            for (name,) in connection.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                [table],
            ).fetchall()
        }
        for field in arrow_schema:
            if field.name not in present:
                connection.execute(
                    f"ALTER TABLE {table} ADD COLUMN {field.name} {schema.sql_type(field.type)}"
                )
                added.append(f"{table}.{field.name}")
    return added
