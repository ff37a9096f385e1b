"""The results store: one DuckDB file holding every prune run, eval run, metric and energy row.

Only the ResultsService process opens the file (DuckDB allows one writing process). This module
is plain Python and DuckDB, no gRPC: ``convert.py`` turns protobuf messages into the dicts
described below and back.

Runs are dicts keyed by column name (see ``schema.py``):

* A prune run holds the columns of ``schema.PRUNE_RUNS`` except ``create_time`` (set here) and
  ``versions_json``, plus ``versions`` (dict of str), ``layers`` (dicts of
  ``schema.LAYER_KEYS``) and ``components`` (dicts of ``schema.COMPONENT_KEYS``).
* An eval run holds the columns of ``schema.EVAL_RUNS`` except ``create_time``, ``spec_json``
  and ``versions_json``, plus ``spec`` (the EvalSpec as a JSON-able dict), ``versions``,
  ``metrics`` (dicts of ``schema.METRIC_KEYS``; an empty metric task means the run's task) and
  ``components``.

The energy columns (``schema.ENERGY_KEYS``) are NULL when ``has_energy`` is false. Reads return
the same shape with ``create_time`` (a naive UTC datetime) added.

Recording is idempotent by ``request_id``: a run whose id is already stored is left as it is
and reported as not created. A run is written together with its metrics, energy components,
layer shapes and model row in one transaction, so a crash never leaves half a run.

Headline metric rule (implemented by ``headline_metric`` here and by the SQL in ``views.py``):
a run's accuracy is its ``acc`` metric where present, else ``acc_norm``; both appear as separate
rows in ``accuracy_vs_sparsity``. Perplexity metrics (``word_perplexity``, ``byte_perplexity``,
``bits_per_byte``, anything containing "perplexity") appear in the ``runs`` and
``task_breakdown`` views but never in ``accuracy_vs_sparsity`` or ``pareto_front``; a task that
reports only perplexity has no accuracy and is left out of the Pareto front.
"""

from __future__ import annotations

import io
import json
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from greenprune.core import findings
from greenprune.core.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from results_service import schema
from results_service.migrations import migrate
from results_service.views import COMPUTED_VIEWS, VIEW_DOCS, VIEW_NAMES, VIEW_SQL, sql_parameters

VIEWS: tuple[str, ...] = VIEW_NAMES
"""The names of the views ``query_view`` and ``export_view`` serve."""

EXPORT_MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}
"""The export formats and their media types."""

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

EXPORT_SNAPSHOTS = 4
"""Exported files kept between the chunks of their export (the oldest is dropped first)."""

_PRUNE_COLUMNS = tuple(
    name for name in schema.PRUNE_RUNS.names if name not in ("create_time", "versions_json")
)
_EVAL_COLUMNS = tuple(
    name
    for name in schema.EVAL_RUNS.names
    if name not in ("create_time", "spec_json", "versions_json")
)


def _text_bytes(table: pa.Schema) -> str:
    """SQL for the bytes of a row's text columns plus a fixed allowance for the rest."""
    terms = [f'coalesce(strlen("{f.name}"), 0)' for f in table if pa.types.is_string(f.type)]
    return " + ".join([*terms, str(_ROW_BYTES)])


_ROW_BYTES = 1024
"""What a run's numbers, metrics and energy components add to its size, roughly."""

_TEXT_BYTES = {
    "prune_runs": _text_bytes(schema.PRUNE_RUNS),
    "eval_runs": _text_bytes(schema.EVAL_RUNS),
}


headline_metric = findings.headline_accuracy
"""The metric that stands for a task's accuracy, None for perplexity-only tasks (the rule lives
in ``greenprune.core.findings``)."""


@dataclass(frozen=True)
class ViewFilter:
    """Narrows a view; empty fields do not filter.

    Attributes:
        experiment: Only rows of this experiment.
        model: Only rows of this base model.
        task: Only rows of this task (ignored by views without tasks).
    """

    experiment: str = ""
    model: str = ""
    task: str = ""


@dataclass(frozen=True)
class ExportChunk:
    """A chunk of an exported file.

    Attributes:
        data: The chunk's bytes.
        next_offset: The offset of the next chunk, None when this chunk ends the file.
        fingerprint: The file's CRC-32 as 8 hex digits; later chunks name it.
    """

    data: bytes
    next_offset: int | None
    fingerprint: str


@dataclass(frozen=True)
class ViewColumn:
    """One column of a view.

    Attributes:
        name: The column name.
        type: "string", "double", "int64", "bool" or "timestamp".
    """

    name: str
    type: str


@dataclass
class ViewTable:
    """The rows of a view.

    Attributes:
        view: The view's name.
        columns: The columns, in order.
        rows: One list of values per row, None where absent.
    """

    view: str
    columns: list[ViewColumn]
    rows: list[list[Any]] = field(default_factory=list)

    def to_pandas(self) -> pd.DataFrame:
        """Returns the rows as a DataFrame with the view's column names."""
        return pd.DataFrame(self.rows, columns=[column.name for column in self.columns])


def _column_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type):
        return "int64"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "double"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "timestamp"
    return "string"


def _arrow(rows: Sequence[dict[str, Any]], table_schema: pa.Schema) -> pa.Table:
    columns = {name: [row.get(name) for row in rows] for name in table_schema.names}
    return pa.Table.from_pydict(columns, schema=table_schema)


def _metrics_table(runs: Sequence[dict[str, Any]]) -> pa.Table:
    """Returns the metric rows of eval runs, built column by column."""
    columns: dict[str, list[Any]] = {name: [] for name in schema.METRICS.names}
    for run in runs:
        metrics = run.get("metrics") or []
        task = run["task"]
        columns["run_id"].extend([run["request_id"]] * len(metrics))
        columns["position"].extend(range(len(metrics)))
        columns["task"].extend([metric.get("task") or task for metric in metrics])
        for key in ("metric", "value", "stderr", "samples"):
            columns[key].extend([metric.get(key) for metric in metrics])
    return pa.Table.from_pydict(columns, schema=schema.METRICS)


def _items_table(runs: Sequence[dict[str, Any]]) -> pa.Table:
    """Returns the per-document scores of eval runs, built column by column."""
    columns: dict[str, list[Any]] = {name: [] for name in schema.ITEM_SCORES.names}
    for run in runs:
        items = run.get("items") or []
        columns["run_id"].extend([run["request_id"]] * len(items))
        columns["task"].extend([run["task"]] * len(items))
        for key in schema.ITEM_KEYS:
            columns[key].extend([item.get(key) for item in items])
    return pa.Table.from_pydict(columns, schema=schema.ITEM_SCORES)


def _fetch_dicts(result: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [column[0] for column in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _check_request_id(run: dict[str, Any], where: str) -> str:
    request_id = run.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise InvalidArgumentError(f"{where}.request_id", "must not be empty")
    return request_id


def _check_unique(items: Iterable[tuple[Any, ...]], field_path: str, what: str) -> None:
    seen: set[tuple[Any, ...]] = set()
    for key in items:
        if key in seen:
            raise InvalidArgumentError(field_path, f"duplicate {what} {key!r}")
        seen.add(key)


def _component_rows(
    run: dict[str, Any], kind: str, run_id: str, field_path: str
) -> list[dict[str, Any]]:
    components = run.get("components") or []
    _check_unique(
        ((component.get("component"),) for component in components), field_path, "component"
    )
    return [
        {**component, "run_kind": kind, "run_id": run_id, "position": position}
        for position, component in enumerate(components)
    ]


class ResultsStore:
    """The results database, safe to share between threads.

    Writes are serialised by a lock; reads each use their own DuckDB cursor.

    Args:
        path: The DuckDB file; created with its parent directory when missing (or empty), and
            migrated to the latest schema on open.

    Raises:
        FailedPreconditionError: The file is not a DuckDB database, another process holds it,
            or its schema is newer than this code.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._exports: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._exports_lock = threading.Lock()
        if self._path.is_file() and self._path.stat().st_size == 0:
            self._path.unlink()  # an empty file holds no data; DuckDB refuses to open it
        try:
            self._connection: duckdb.DuckDBPyConnection | None = duckdb.connect(str(self._path))
        except duckdb.Error as exc:
            raise FailedPreconditionError(
                f"cannot open the results database {self._path}: {exc}"
            ) from exc
        try:
            self.applied_migrations = migrate(self._connection)
        except BaseException:
            self._connection.close()
            raise

    @property
    def path(self) -> Path:
        """The DuckDB file."""
        return self._path

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the file; later calls raise FailedPreconditionError."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            raise FailedPreconditionError("the results store is closed")
        return self._connection.cursor()

    def _read_cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            return self._cursor()

    def _write(self, work: Any) -> Any:
        """Runs ``work(cursor)`` in one transaction under the write lock."""
        with self._lock:
            cursor = self._cursor()
            try:
                cursor.execute("BEGIN TRANSACTION")
                try:
                    outcome = work(cursor)
                    cursor.execute("COMMIT")
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                return outcome
            finally:
                cursor.close()

    # Recording ---------------------------------------------------------------------------

    def record_prune_run(self, run: dict[str, Any]) -> bool:
        """Stores a prune run with its layer shapes and energy components.

        Args:
            run: The run, shaped as the module docstring says.

        Returns:
            True when stored, False when its request_id was already recorded.

        Raises:
            InvalidArgumentError: The request_id is empty, or layers or components repeat.
        """
        request_id = _check_request_id(run, "run")
        layers = run.get("layers") or []
        _check_unique(
            ((layer.get("layer_index"),) for layer in layers), "run.result.layers", "layer"
        )
        components = _component_rows(run, "prune", request_id, "run.result.energy.components")
        now = datetime.now(UTC).replace(tzinfo=None)
        row = {name: run.get(name) for name in _PRUNE_COLUMNS}
        row["create_time"] = now
        row["versions_json"] = json.dumps(run.get("versions") or {}, sort_keys=True)
        checkpoint_id = run.get("checkpoint_id") or ""
        layer_rows = [
            {**layer, "prune_run_id": request_id, "checkpoint_id": checkpoint_id}
            for layer in layers
        ]

        def work(cursor: duckdb.DuckDBPyConnection) -> bool:
            exists = cursor.execute(
                "SELECT 1 FROM prune_runs WHERE request_id = ?", [request_id]
            ).fetchone()
            if exists:
                return False
            self._insert(cursor, "prune_runs", _arrow([row], schema.PRUNE_RUNS))
            if layer_rows:
                self._insert(cursor, "layer_shapes", _arrow(layer_rows, schema.LAYER_SHAPES))
            if components:
                self._insert(
                    cursor, "energy_components", _arrow(components, schema.ENERGY_COMPONENTS)
                )
            if row.get("model"):
                cursor.execute(
                    """
                    INSERT INTO models VALUES (?, NULLIF(?, ''), ?, ?, ?, ?)
                    ON CONFLICT (model) DO UPDATE SET
                        architecture = COALESCE(excluded.architecture, models.architecture),
                        parameters = COALESCE(excluded.parameters, models.parameters),
                        macs = COALESCE(excluded.macs, models.macs),
                        last_seen = excluded.last_seen
                    """,
                    [
                        row["model"],
                        row.get("architecture") or "",
                        row.get("parameters_before") or None,
                        row.get("macs_before") or None,
                        now,
                        now,
                    ],
                )
            return True

        return bool(self._write(work))

    def record_eval_run(self, run: dict[str, Any]) -> bool:
        """Stores one eval run; see ``record_eval_runs``.

        Returns:
            True when stored, False when its request_id was already recorded.
        """
        return self._record_eval_runs([run], single=True) == 1

    def record_eval_runs(self, runs: Sequence[dict[str, Any]]) -> int:
        """Stores eval runs with their metrics and energy components in one transaction.

        Runs whose request_id is already stored, or repeats an earlier run of the same call,
        are skipped.

        Args:
            runs: The runs, shaped as the module docstring says.

        Returns:
            The number of runs stored.

        Raises:
            InvalidArgumentError: A request_id or task is empty, or metrics or components of a
                run repeat; nothing is stored then.
        """
        return self._record_eval_runs(runs, single=False)

    def _record_eval_runs(self, runs: Sequence[dict[str, Any]], *, single: bool) -> int:
        now = datetime.now(UTC).replace(tzinfo=None)
        accepted: list[tuple[dict[str, Any], dict[str, Any]]] = []
        component_rows: list[dict[str, Any]] = []
        batch_ids: set[str] = set()
        for index, run in enumerate(runs):
            where = "run" if single else f"runs[{index}]"
            request_id = _check_request_id(run, where)
            task = run.get("task")
            if not isinstance(task, str) or not task:
                raise InvalidArgumentError(f"{where}.result.task", "must not be empty")
            metric_keys = [
                (metric.get("task") or task, metric.get("metric"))
                for metric in run.get("metrics") or []
            ]
            if len(set(metric_keys)) != len(metric_keys):
                _check_unique(metric_keys, f"{where}.result.metrics", "metric")
            components = _component_rows(
                run, "eval", request_id, f"{where}.result.energy.components"
            )
            if request_id in batch_ids:
                continue
            batch_ids.add(request_id)
            row = {name: run.get(name) for name in _EVAL_COLUMNS}
            row["create_time"] = now
            row["spec_json"] = json.dumps(run.get("spec") or {}, sort_keys=True)
            row["versions_json"] = json.dumps(run.get("versions") or {}, sort_keys=True)
            accepted.append((row, run))
            component_rows.extend(components)
        if not accepted:
            return 0

        def work(cursor: duckdb.DuckDBPyConnection) -> int:
            stored = {
                found
                for (found,) in cursor.execute(
                    "SELECT request_id FROM eval_runs"
                    " WHERE request_id IN (SELECT unnest(?::VARCHAR[]))",
                    [list(batch_ids)],
                ).fetchall()
            }
            new_runs = [row for row, _ in accepted if row["request_id"] not in stored]
            if not new_runs:
                return 0
            metrics = _metrics_table(
                [run for row, run in accepted if row["request_id"] not in stored]
            )
            new_components = [row for row in component_rows if row["run_id"] not in stored]
            items = _items_table([run for row, run in accepted if row["request_id"] not in stored])
            self._insert(cursor, "eval_runs", _arrow(new_runs, schema.EVAL_RUNS))
            if items.num_rows:
                self._insert(cursor, "item_scores", items)
            if metrics.num_rows:
                self._insert(cursor, "metrics", metrics)
            if new_components:
                self._insert(
                    cursor, "energy_components", _arrow(new_components, schema.ENERGY_COMPONENTS)
                )
            models = sorted({row["model"] for row in new_runs if row.get("model")})
            if models:
                cursor.execute(
                    """
                    INSERT INTO models (model, first_seen, last_seen)
                    SELECT unnest(?::VARCHAR[]), ?, ?
                    ON CONFLICT (model) DO UPDATE SET last_seen = excluded.last_seen
                    """,
                    [models, now, now],
                )
            return len(new_runs)

        return int(self._write(work))

    def record_profile_run(self, run: dict[str, Any]) -> bool:
        """Stores a profile run with every measured window (one row per ProfilePoint).

        Args:
            run: The run: the columns of ``schema.PROFILE_RUNS`` but ``create_time`` and
                ``spec_json``, plus ``spec`` (a JSON-able dict) and ``points`` (dicts of
                ``schema.PROFILE_POINT_KEYS``).

        Returns:
            True when stored, False when its request_id was already recorded.

        Raises:
            InvalidArgumentError: The request_id is empty or a window repeats.
        """
        request_id = _check_request_id(run, "run")
        points = run.get("points") or []
        _check_unique(
            (
                (p.get("checkpoint_id"), p.get("phase"), p.get("batch_size"), p.get("round"))
                for p in points
            ),
            "run.result.points",
            "window",
        )
        row = {name: run.get(name) for name in schema.PROFILE_RUNS.names}
        row["create_time"] = datetime.now(UTC).replace(tzinfo=None)
        row["spec_json"] = json.dumps(run.get("spec") or {}, sort_keys=True)
        point_rows = [
            {
                **point,
                "request_id": request_id,
                "experiment": run.get("experiment") or "",
                "model": run.get("model") or "",
            }
            for point in points
        ]

        def work(cursor: duckdb.DuckDBPyConnection) -> bool:
            exists = cursor.execute(
                "SELECT 1 FROM profile_runs WHERE request_id = ?", [request_id]
            ).fetchone()
            if exists:
                return False
            self._insert(cursor, "profile_runs", _arrow([row], schema.PROFILE_RUNS))
            if point_rows:
                self._insert(cursor, "profile_points", _arrow(point_rows, schema.PROFILE_POINTS))
            return True

        return bool(self._write(work))

    def get_profile_run(self, request_id: str) -> dict[str, Any]:
        """Returns one profile run, its points in the order measured.

        Raises:
            NotFoundError: No profile run has this request_id.
        """
        cursor = self._read_cursor()
        try:
            runs = _fetch_dicts(
                cursor.execute("SELECT * FROM profile_runs WHERE request_id = ?", [request_id])
            )
            if not runs:
                raise NotFoundError(f"profile run {request_id!r} not found")
            points = _fetch_dicts(
                cursor.execute(
                    "SELECT * FROM profile_points WHERE request_id = ? ORDER BY rowid",
                    [request_id],
                )
            )
        finally:
            cursor.close()
        run = runs[0]
        run.pop("seq", None)
        run["spec"] = json.loads(run.pop("spec_json") or "{}")
        run["points"] = [{key: point[key] for key in schema.PROFILE_POINT_KEYS} for point in points]
        return run

    @staticmethod
    def _insert(cursor: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
        cursor.register("_incoming", rows)
        try:
            cursor.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _incoming")
        finally:
            cursor.unregister("_incoming")

    # Reading runs ------------------------------------------------------------------------

    def get_prune_run(self, request_id: str) -> dict[str, Any]:
        """Returns one prune run.

        Raises:
            NotFoundError: No prune run has this request_id.
        """
        runs = self._prune_runs("WHERE request_id = ?", [request_id])
        if not runs:
            raise NotFoundError(f"prune run {request_id!r} not found")
        return runs[0]

    def get_eval_run(self, request_id: str) -> dict[str, Any]:
        """Returns one eval run.

        Raises:
            NotFoundError: No eval run has this request_id.
        """
        runs = self._eval_runs("WHERE request_id = ?", [request_id])
        if not runs:
            raise NotFoundError(f"eval run {request_id!r} not found")
        return runs[0]

    def list_prune_runs(
        self,
        experiment: str = "",
        limit: int = DEFAULT_PAGE_SIZE,
        offset: int = 0,
        max_bytes: int | None = None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Returns a page of prune runs, newest first.

        Args:
            experiment: Only runs of this experiment, when not empty.
            limit: The most runs to return, 1 to ``MAX_PAGE_SIZE``.
            offset: The runs to skip.
            max_bytes: When set, the page also ends before the runs' text columns together
                pass this many bytes (an estimate of the page's size, taken before the runs
                are read); the first run is returned however large.

        Returns:
            The runs and the offset of the next page, None on the last page.
        """
        limit, offset = _check_page(limit, offset)
        count, more = self._page_size("prune_runs", experiment, limit, offset, max_bytes)
        runs = self._prune_runs(
            "WHERE ($1 = '' OR experiment = $1) ORDER BY seq DESC LIMIT $2 OFFSET $3",
            [experiment, count, offset],
        )
        return runs, (offset + len(runs) if more else None)

    def list_eval_runs(
        self,
        experiment: str = "",
        limit: int = DEFAULT_PAGE_SIZE,
        offset: int = 0,
        max_bytes: int | None = None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Returns a page of eval runs, newest first; arguments as ``list_prune_runs``."""
        limit, offset = _check_page(limit, offset)
        count, more = self._page_size("eval_runs", experiment, limit, offset, max_bytes)
        runs = self._eval_runs(
            "WHERE ($1 = '' OR experiment = $1) ORDER BY seq DESC LIMIT $2 OFFSET $3",
            [experiment, count, offset],
        )
        return runs, (offset + len(runs) if more else None)

    def _page_size(
        self, table: str, experiment: str, limit: int, offset: int, max_bytes: int | None
    ) -> tuple[int, bool]:
        """How many runs from ``offset`` a page holds, and whether more runs follow it.

        Only the runs' sizes are read here (the bytes of their text columns), so that a page
        of large legacy runs is never read whole just to be cut down afterwards.
        """
        sizes = [
            size
            for (size,) in self._read_rows(
                f"SELECT {_TEXT_BYTES[table]} FROM {table}"
                " WHERE ($1 = '' OR experiment = $1) ORDER BY seq DESC LIMIT $2 OFFSET $3",
                [experiment, limit + 1, offset],
            )
        ]
        count, total = 0, 0
        for size in sizes[:limit]:
            total += size
            if max_bytes is not None and count and total > max_bytes:
                return count, True
            count += 1
        return count, len(sizes) > count

    def _read_rows(self, sql: str, parameters: list[Any]) -> list[tuple[Any, ...]]:
        cursor = self._read_cursor()
        try:
            return cursor.execute(sql, parameters).fetchall()
        finally:
            cursor.close()

    def _prune_runs(self, where: str, parameters: list[Any]) -> list[dict[str, Any]]:
        cursor = self._read_cursor()
        try:
            runs = _fetch_dicts(cursor.execute(f"SELECT * FROM prune_runs {where}", parameters))
            ids = [run["request_id"] for run in runs]
            layers = _group(
                cursor,
                "SELECT prune_run_id AS owner, * FROM layer_shapes"
                " WHERE prune_run_id IN (SELECT unnest($1::VARCHAR[])) ORDER BY layer_index",
                ids,
                schema.LAYER_KEYS,
            )
            components = _components(cursor, "prune", ids)
        finally:
            cursor.close()
        for run in runs:
            run.pop("seq", None)
            run["versions"] = json.loads(run.pop("versions_json"))
            run["layers"] = layers.get(run["request_id"], [])
            run["components"] = components.get(run["request_id"], [])
        return runs

    def _eval_runs(self, where: str, parameters: list[Any]) -> list[dict[str, Any]]:
        cursor = self._read_cursor()
        try:
            runs = _fetch_dicts(cursor.execute(f"SELECT * FROM eval_runs {where}", parameters))
            ids = [run["request_id"] for run in runs]
            metrics = _group(
                cursor,
                "SELECT run_id AS owner, * FROM metrics"
                " WHERE run_id IN (SELECT unnest($1::VARCHAR[])) ORDER BY position",
                ids,
                schema.METRIC_KEYS,
            )
            components = _components(cursor, "eval", ids)
            items = _group(
                cursor,
                "SELECT run_id AS owner, * FROM item_scores"
                " WHERE run_id IN (SELECT unnest($1::VARCHAR[])) ORDER BY rowid",
                ids,
                schema.ITEM_KEYS,
            )
        finally:
            cursor.close()
        for run in runs:
            run.pop("seq", None)
            run["items"] = items.get(run["request_id"], [])
            run["spec"] = json.loads(run.pop("spec_json"))
            run["versions"] = json.loads(run.pop("versions_json"))
            run["metrics"] = metrics.get(run["request_id"], [])
            run["components"] = components.get(run["request_id"], [])
        return runs

    # Views -------------------------------------------------------------------------------

    def view_arrow(self, view: str, view_filter: ViewFilter | None = None) -> pa.Table:
        """Returns a view as an Arrow table.

        Args:
            view: One of ``VIEWS``.
            view_filter: Narrows the rows; None does not filter.

        Raises:
            InvalidArgumentError: The view is unknown.
        """
        if view not in VIEWS:
            raise InvalidArgumentError("view", f"unknown view {view!r}; one of {', '.join(VIEWS)}")
        view_filter = view_filter or ViewFilter()
        filters = (view_filter.experiment, view_filter.model, view_filter.task)
        cursor = self._read_cursor()
        try:
            if view in VIEW_SQL:
                sql = VIEW_SQL[view]
                return cursor.sql(sql, params=sql_parameters(sql, *filters)).to_arrow_table()
            computed = COMPUTED_VIEWS[view]
            inputs = {
                name: cursor.sql(sql, params=sql_parameters(sql, *filters)).df()
                for name, sql in computed.inputs.items()
            }
        finally:
            cursor.close()
        return pa.Table.from_pandas(computed.compute(inputs), preserve_index=False)

    def query_view(self, view: str, view_filter: ViewFilter | None = None) -> ViewTable:
        """Returns a view's columns and rows; arguments as ``view_arrow``."""
        table = self.view_arrow(view, view_filter)
        columns = [ViewColumn(item.name, _column_type(item.type)) for item in table.schema]
        data = table.to_pydict()
        names = table.schema.names
        rows = [[data[name][i] for name in names] for i in range(table.num_rows)]
        return ViewTable(view, columns, rows)

    def export_view(
        self, view: str, view_filter: ViewFilter | None = None, fmt: str = "csv"
    ) -> bytes:
        """Returns a view as a CSV (with a header row) or Parquet file.

        Args:
            view: One of ``VIEWS``.
            view_filter: Narrows the rows; None does not filter.
            fmt: "csv" or "parquet".

        Raises:
            InvalidArgumentError: The view or the format is unknown.
        """
        if fmt not in EXPORT_MEDIA_TYPES:
            raise InvalidArgumentError("format", f"unknown format {fmt!r}; csv or parquet")
        table = self.view_arrow(view, view_filter)
        sink = io.BytesIO()
        if fmt == "csv":
            pa_csv.write_csv(table, sink)
        else:
            table = table.replace_schema_metadata({"greenprune.view": view, "doc": VIEW_DOCS[view]})
            pq.write_table(table, sink)
        return sink.getvalue()

    def export_chunk(
        self,
        view: str,
        view_filter: ViewFilter | None,
        fmt: str,
        size: int,
        offset: int = 0,
        fingerprint: str = "",
    ) -> ExportChunk:
        """Returns ``size`` bytes of a view's file from ``offset``; arguments as ``export_view``.

        The first chunk (no ``fingerprint``) renders the file. A file of several chunks is kept
        until its last chunk is read (at most ``EXPORT_SNAPSHOTS`` files), so that every chunk
        of one export is of the same file while runs are being recorded; a later chunk whose
        file is no longer kept renders it again and is served only when the file is unchanged.

        Raises:
            FailedPreconditionError: The file changed since the chunk that named
                ``fingerprint``.
            InvalidArgumentError: The view, format or offset is not one of the file's.
        """
        view_filter = view_filter or ViewFilter()
        key = (view, view_filter, fmt, fingerprint)
        with self._exports_lock:
            data = self._exports.get(key) if fingerprint else None
        if data is None:
            data = self.export_view(view, view_filter, fmt)
            crc = f"{zlib.crc32(data):08x}"
            if fingerprint and crc != fingerprint:
                raise FailedPreconditionError(
                    "page_token: the view changed since the export's first chunk; export it"
                    " again from its first chunk"
                )
            fingerprint, key = crc, (view, view_filter, fmt, crc)
        if offset and offset >= len(data):
            raise InvalidArgumentError("page_token", "is not a token this service issued")
        end = offset + max(size, 1)
        with self._exports_lock:
            if end < len(data):
                self._exports[key] = data
                self._exports.move_to_end(key)
                while len(self._exports) > EXPORT_SNAPSHOTS:
                    self._exports.popitem(last=False)
            else:
                self._exports.pop(key, None)
        return ExportChunk(data[offset:end], end if end < len(data) else None, fingerprint)


def _check_page(limit: int, offset: int) -> tuple[int, int]:
    if limit < 0:
        raise InvalidArgumentError("page_size", "must not be negative")
    if not 0 <= offset < 2**62:
        raise InvalidArgumentError("page_token", "is not a token this service issued")
    return min(limit or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE), offset


def _group(
    cursor: duckdb.DuckDBPyConnection, sql: str, ids: list[str], keys: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    if not ids:
        return grouped
    for row in _fetch_dicts(cursor.execute(sql, [ids])):
        grouped.setdefault(row["owner"], []).append({key: row[key] for key in keys})
    return grouped


def _components(
    cursor: duckdb.DuckDBPyConnection, kind: str, ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    return _group(
        cursor,
        "SELECT run_id AS owner, * FROM energy_components"
        f" WHERE run_kind = '{kind}' AND run_id IN (SELECT unnest($1::VARCHAR[]))"
        " ORDER BY position",
        ids,
        schema.COMPONENT_KEYS,
    )
