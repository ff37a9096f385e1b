"""The results store: one DuckDB file holding every prune, eval and profile run, and views.

Only the ResultsService process opens the file (DuckDB allows one writing process). This module
is plain Python, protobuf and DuckDB, no gRPC: the run messages are the records it stores and
returns (``columns.py`` derives every column and child table from their descriptors, and
``views.py`` reads those).

Recording is idempotent by ``request_id``: a run whose id is already stored is left as it is
and reported as not created. A run is written together with its child rows and its model row
in one transaction, so a crash never leaves half a run. The store sets ``create_time``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from google.protobuf.message import Message

from greenprune.api.results.v1 import results_pb2
from greenprune.core.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from results_service import columns
from results_service.columns import RUN_TABLES, RunTable
from results_service.migrations import derive, migrate
from results_service.views import (
    COMPUTED_VIEWS,
    VIEW_DOCS,
    VIEW_NAMES,
    VIEW_SQL,
    in_range,
    sql_parameters,
)

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

WARM_DELAY_SECONDS = 0.2
"""How long view warming waits after a write for more writes before it computes."""
WARM_JOIN_SECONDS = 30.0
"""How long close() waits for a view being warmed to finish computing."""

log = logging.getLogger(__name__)

_ROW_BYTES = 1024
"""What a run's numbers add to the size of its record's text, roughly."""


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


VIEW_CACHE_ENTRIES = 64
"""Views (by name and filter) whose latest computation the store keeps."""


class ViewCache:
    """Computed views by name and filter, each valid for one write generation of the store.

    Readers of the same view and filter at the same generation share one computation: the
    first computes while the others wait for its result (a future), so that many readers of a
    view cost one computation, and every record (a new generation) makes the next read compute
    afresh. A failed computation is not kept.

    Args:
        capacity: The most entries kept; the least recently read is dropped first.
    """

    def __init__(self, capacity: int = VIEW_CACHE_ENTRIES) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[int, Future[Any]]] = OrderedDict()
        self.computations = 0
        """How many computations ran (for tests and benches)."""

    def get(self, key: Hashable, generation: int, compute: Callable[[], Any]) -> Any:
        """Returns the value of ``key`` at ``generation``, computing it when none is kept."""
        with self._lock:
            entry = self._entries.get(key)
            owner = entry is None or entry[0] != generation
            if owner:
                entry = (generation, Future())
                self._entries[key] = entry
                while len(self._entries) > self._capacity:
                    self._entries.popitem(last=False)
            self._entries.move_to_end(key)
            assert entry is not None
            future = entry[1]
            if owner:
                self.computations += 1
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:
                future.set_exception(exc)
                with self._lock:
                    if self._entries.get(key) is entry:
                        del self._entries[key]
        return future.result()

    def kept(self) -> list[Hashable]:
        """The keys kept, the most recently read last."""
        with self._lock:
            return list(self._entries)


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


def _request_id(run: Message, where: str) -> str:
    if not run.request_id:
        raise InvalidArgumentError(f"{where}.request_id", "must not be empty")
    return run.request_id


def _with_subject(run: results_pb2.EvalRun) -> results_pb2.EvalRun:
    """An eval run with its checkpoint_id or model taken from its spec where it left them out."""
    subject = run.spec.WhichOneof("subject")
    if run.checkpoint_id or run.model or subject is None:
        return run
    filled = type(run)()
    filled.CopyFrom(run)
    setattr(filled, subject, getattr(run.spec, subject))
    return filled


class ResultsStore:
    """The results database, safe to share between threads.

    Writes are serialised by a lock; reads each use their own DuckDB cursor.

    Args:
        path: The DuckDB file; created with its parent directory when missing (or empty),
            migrated to the latest records and derived from the run messages on open.
        tables: The run tables (``columns.RUN_TABLES``, from the contract's messages).
        warm_views: After each write, compute again in a background thread the computed views
            readers read since the previous write (unfiltered), so that their next reader finds
            them ready; the service turns it on.

    Raises:
        FailedPreconditionError: The file is not a DuckDB database, another process holds it,
            or its schema is newer than this code.
    """

    def __init__(
        self, path: Path, tables: Mapping[str, RunTable] = RUN_TABLES, *, warm_views: bool = False
    ) -> None:
        self._path = Path(path)
        self._tables = dict(tables)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._exports: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._exports_lock = threading.Lock()
        self._generation = 0
        self._views = ViewCache()
        self._inputs = ViewCache()
        self._warm_wanted = threading.Event()
        self._closing = threading.Event()
        self._warm_thread: threading.Thread | None = None
        if warm_views:
            self._warm_thread = threading.Thread(
                target=self._warm_views, name=f"results-view-warming {self._path}", daemon=True
            )
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
            self.derived = derive(self._connection, list(self._tables.values()))
        except BaseException:
            self._connection.close()
            raise
        if self._warm_thread is not None:
            self._warm_thread.start()

    @property
    def path(self) -> Path:
        """The DuckDB file."""
        return self._path

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the file; later calls raise FailedPreconditionError.

        The view-warming thread stops first: DuckDB refuses to close a connection whose cursor
        is still computing a view.
        """
        self._closing.set()
        self._warm_wanted.set()
        if self._warm_thread is not None and self._warm_thread is not threading.current_thread():
            self._warm_thread.join(timeout=WARM_JOIN_SECONDS)
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
                    # A failed COMMIT (a full disk) has ended the transaction already: the
                    # error to raise is the first one, not ROLLBACK's "no transaction".
                    with contextlib.suppress(duckdb.Error):
                        cursor.execute("ROLLBACK")
                    raise
                finally:
                    self._generation += 1  # the views computed before are stale now
                    self._warm_wanted.set()
                return outcome
            finally:
                cursor.close()

    # Recording ---------------------------------------------------------------------------

    def record_prune_run(self, run: results_pb2.PruneRun) -> bool:
        """Stores a prune run (its layer shapes and energy components with it).

        Returns:
            True when stored, False when its request_id was already recorded.

        Raises:
            InvalidArgumentError: The request_id is empty, or layers or components repeat.
        """
        return self._record("prune_runs", [run], single=True) == 1

    def record_eval_run(self, run: results_pb2.EvalRun) -> bool:
        """Stores one eval run; see ``record_eval_runs``.

        Returns:
            True when stored, False when its request_id was already recorded.
        """
        return self._record("eval_runs", [run], single=True) == 1

    def record_eval_runs(self, runs: Sequence[results_pb2.EvalRun]) -> int:
        """Stores eval runs with their metrics, scores and energy components in one transaction.

        Runs whose request_id is already stored, or repeats an earlier run of the same call,
        are skipped. A run that leaves out its checkpoint_id or model takes its spec's.

        Returns:
            The number of runs stored.

        Raises:
            InvalidArgumentError: A request_id or task is empty, or metrics or components of a
                run repeat; nothing is stored then.
        """
        return self._record("eval_runs", runs, single=False)

    def record_profile_run(self, run: results_pb2.ProfileRun) -> bool:
        """Stores a profile run with every measured window.

        Returns:
            True when stored, False when its request_id was already recorded.

        Raises:
            InvalidArgumentError: The request_id is empty or a window repeats.
        """
        return self._record("profile_runs", [run], single=True) == 1

    def _record(self, name: str, runs: Sequence[Message], *, single: bool) -> int:
        table = self._tables[name]
        now = datetime.now(UTC).replace(tzinfo=None)
        accepted: dict[str, Message] = {}
        for index, run in enumerate(runs):
            where = "run" if single else f"runs[{index}]"
            request_id = _request_id(run, where)
            if name == "eval_runs":
                if not run.result.task:
                    raise InvalidArgumentError(f"{where}.result.task", "must not be empty")
                run = _with_subject(run)
            columns.check_children(run, table, where)
            accepted.setdefault(request_id, run)
        if not accepted:
            return 0

        def work(cursor: duckdb.DuckDBPyConnection) -> int:
            stored = {
                found
                for (found,) in cursor.execute(
                    f"SELECT request_id FROM {name}"
                    " WHERE request_id IN (SELECT unnest(?::VARCHAR[]))",
                    [list(accepted)],
                ).fetchall()
            }
            new = [run for request_id, run in accepted.items() if request_id not in stored]
            if not new:
                return 0
            rows = []
            for run in new:
                row = {**columns.record(run), **columns.derived(run)}
                row["create_time"] = now
                rows.append(row)
            columns.insert_rows(cursor, name, columns.arrow_table(rows, table.schema))
            for child in table.children:
                child_rows = [row for run in new for row in columns.child_rows(run, table, child)]
                if child_rows:
                    schema = table.child_schema(child)
                    columns.insert_rows(cursor, child.name, columns.arrow_table(child_rows, schema))
            self._record_models(cursor, name, new, now)
            return len(new)

        return int(self._write(work))

    @staticmethod
    def _record_models(
        cursor: duckdb.DuckDBPyConnection, name: str, runs: Sequence[Message], now: datetime
    ) -> None:
        """Keeps the models table: each base model, its size and MACs from its prune runs."""
        if name == "prune_runs":
            for run in runs:
                if not run.spec.model:
                    continue
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
                        run.spec.model,
                        run.result.architecture,
                        run.result.parameters_before or None,
                        run.result.macs_before or None,
                        now,
                        now,
                    ],
                )
            return
        models = sorted({run.model for run in runs if getattr(run, "model", "")})
        if models:
            cursor.execute(
                """
                INSERT INTO models (model, first_seen, last_seen)
                SELECT unnest(?::VARCHAR[]), ?, ?
                ON CONFLICT (model) DO UPDATE SET last_seen = excluded.last_seen
                """,
                [models, now, now],
            )

    # Reading runs ------------------------------------------------------------------------

    def get_prune_run(self, request_id: str) -> results_pb2.PruneRun:
        """Returns one prune run.

        Raises:
            NotFoundError: No prune run has this request_id.
        """
        return self._get("prune_runs", request_id, "prune run")

    def get_eval_run(self, request_id: str) -> results_pb2.EvalRun:
        """Returns one eval run.

        Raises:
            NotFoundError: No eval run has this request_id.
        """
        return self._get("eval_runs", request_id, "eval run")

    def get_profile_run(self, request_id: str) -> results_pb2.ProfileRun:
        """Returns one profile run, its points in the order measured.

        Raises:
            NotFoundError: No profile run has this request_id.
        """
        return self._get("profile_runs", request_id, "profile run")

    def _get(self, name: str, request_id: str, what: str) -> Any:
        runs = self._runs(name, "WHERE request_id = ?", [request_id])
        if not runs:
            raise NotFoundError(f"{what} {request_id!r} not found")
        return runs[0]

    def list_runs(
        self,
        table: str,
        experiment: str = "",
        limit: int = DEFAULT_PAGE_SIZE,
        offset: int = 0,
        max_bytes: int | None = None,
    ) -> tuple[list[Any], int | None]:
        """Returns a page of the runs of one table, newest first.

        Args:
            table: ``prune_runs``, ``eval_runs`` or ``profile_runs``.
            experiment: Only runs of this experiment, when not empty.
            limit: The most runs to return, 1 to ``MAX_PAGE_SIZE``.
            offset: The runs to skip.
            max_bytes: When set, the page also ends before the runs' records together pass
                this many bytes (an estimate of the page's size, taken before the runs are
                read); the first run is returned however large.

        Returns:
            The run messages and the offset of the next page, None on the last page.
        """
        limit, offset = _check_page(limit, offset)
        count, more = self._page_size(table, experiment, limit, offset, max_bytes)
        runs = self._runs(
            table,
            "WHERE ($1 = '' OR experiment = $1) ORDER BY seq DESC LIMIT $2 OFFSET $3",
            [experiment, count, offset],
        )
        return runs, (offset + len(runs) if more else None)

    def _page_size(
        self, name: str, experiment: str, limit: int, offset: int, max_bytes: int | None
    ) -> tuple[int, bool]:
        """How many runs from ``offset`` a page holds, and whether more runs follow it.

        Only the runs' sizes are read here (the bytes of their records' text), so that a page
        of large runs is never read whole just to be cut down afterwards.
        """
        terms = [
            f'coalesce(strlen("{item.name}"), 0)'
            for item in self._tables[name].record_fields
            if pa.types.is_string(item.type)
        ]
        sizes = [
            size
            for (size,) in self._read_rows(
                f"SELECT {' + '.join([*terms, str(_ROW_BYTES)])} FROM {name}"
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

    def _runs(self, name: str, where: str, parameters: list[Any]) -> list[Any]:
        cursor = self._read_cursor()
        try:
            return columns.read_runs(cursor, self._tables[name], where, parameters)
        finally:
            cursor.close()

    # Views -------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Counts the store's writes: a view computed at one generation holds until the next."""
        return self._generation

    @property
    def view_computations(self) -> int:
        """How many views were computed (not served from the cache) since the store opened."""
        return self._views.computations

    def view_arrow(self, view: str, view_filter: ViewFilter | None = None) -> pa.Table:
        """Returns a view as an Arrow table.

        A view is computed once per write generation and filter: later reads until the next
        record are served the same table (:class:`ViewCache`), and concurrent readers of a view
        share one computation.

        Args:
            view: One of ``VIEWS``.
            view_filter: Narrows the rows; None does not filter.

        Raises:
            InvalidArgumentError: The view is unknown.
        """
        if view not in VIEWS:
            raise InvalidArgumentError("view", f"unknown view {view!r}; one of {', '.join(VIEWS)}")
        view_filter = view_filter or ViewFilter()
        with self._lock:
            generation = self._generation  # read before the data: a later write recomputes
        return self._views.get(
            (view, view_filter),
            generation,
            lambda: self._compute_view(view, view_filter, generation),
        )

    def _warm_views(self) -> None:
        """Computes again, after each write, the unfiltered computed views read before it."""
        while True:
            self._warm_wanted.wait()
            if self._closing.is_set():
                return
            time.sleep(WARM_DELAY_SECONDS)  # a burst of records is one warming
            self._warm_wanted.clear()
            if self._closing.is_set():
                return  # closed while it slept: close() set the event this clear() took back
            wanted = [
                key[0]
                for key in self._views.kept()
                if isinstance(key, tuple) and key[0] in COMPUTED_VIEWS and key[1] == ViewFilter()
            ]
            for view in wanted:
                if self._warm_wanted.is_set() or self._closing.is_set():
                    break  # written again (or closed) meanwhile: start over
                try:
                    self.view_arrow(view)
                except Exception:  # noqa: BLE001 - a reader computes it again and sees the error
                    if not self._closing.is_set():
                        log.exception("warming view %s failed", view)

    def _compute_view(self, view: str, view_filter: ViewFilter, generation: int) -> pa.Table:
        filters = (view_filter.experiment, view_filter.model, view_filter.task)
        if view in VIEW_SQL:
            sql = VIEW_SQL[view]
            return self._read_arrow(sql, sql_parameters(sql, *filters))
        computed = COMPUTED_VIEWS[view]
        inputs = {}
        for name, sql in computed.inputs.items():
            parameters = sql_parameters(sql, *filters)
            # The computed views share their inputs (runs, scores, windows): read once per
            # write, each view computing from its own copy.
            frame = self._inputs.get(
                (sql, tuple(sorted(parameters.items()))),
                generation,
                lambda sql=sql, parameters=parameters: in_range(self._read_frame(sql, parameters)),
            )
            inputs[name] = frame.copy()
        return pa.Table.from_pandas(computed.compute(inputs), preserve_index=False)

    def _read_arrow(self, sql: str, parameters: dict[str, str]) -> pa.Table:
        cursor = self._read_cursor()
        try:
            return cursor.sql(sql, params=parameters).to_arrow_table()
        finally:
            cursor.close()

    def _read_frame(self, sql: str, parameters: dict[str, str]) -> pd.DataFrame:
        cursor = self._read_cursor()
        try:
            return cursor.sql(sql, params=parameters).df()
        finally:
            cursor.close()

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
