"""The embedded default engine: DuckDB, one fresh in-memory database per query, locked down before the SQL runs.

Sandbox, in order (each step is tested in tests/engines/test_sandbox.py):

1. Two in-memory connections per query: a *loader*, which only ever runs SQL this module writes, and the
   *sandbox*, which runs the member's SQL. Neither auto-installs or auto-loads extensions.
2. Each `TableScan` becomes a view named `t0`, `t1`, ... in the sandbox with exactly the allowed columns, in
   lower case, cast to the DuckDB types the catalog's own reader binds (so a relation's columns have the types
   `catalog.read_schema` reports). The data is reached through a `pyarrow.dataset` restricted to those columns and
   scanned from Python, never through a file path the SQL could name: Parquet files directly, CSV files after the
   loader converts their allowed columns to a Parquet file in the query's private work directory (DuckDB's CSV
   sniffer decides the types, as it does for schemas). The raw files' other columns are unreachable.
3. Then `threads`, `memory_limit`, a private `temp_directory` (spilling), `python_enable_replacements=false` (no
   scanning of Python variables by name), `enable_external_access=false` (no file, network, ATTACH, COPY,
   INSTALL/LOAD) and `lock_configuration=true` (no later SET/PRAGMA/RESET).
4. The SQL must be exactly one SELECT statement (a second gate: the policy layer already checks this).

What the SQL can still see: its views (`information_schema.tables` and `duckdb_views()` list only t0, t1, ...; a
view's definition shows the allowed columns and their names in the data files, never a path), DuckDB's settings
(`duckdb_settings()`, including the private temp directory's path) and built-in catalog functions. It can create
in-memory scratch tables, bounded by the memory limit, which vanish with the query's database.

Time limit and cancellation: a timer thread, or the CancelToken's callback, interrupts both connections (again
every 50 ms until `execute` returns, so an interrupt that lands between two statements is not lost) and
`execute` raises QueryTimedOut or QueryCancelled. Past `memory_limit`, DuckDB spills joins, aggregates and sorts to
the temp directory; what cannot spill fails with INSUFFICIENT_COMPUTE.

Error messages never carry DuckDB's text where it could hold a data value (conversion, range and input errors get
a fixed message) and never a path (parser/binder/catalog messages keep their first line, with paths removed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Sequence

from opencleanrooms.engines.base import (
    INSUFFICIENT_COMPUTE,
    INTERNAL_ERROR,
    INVALID_RESOURCE,
    MALFORMED_QUERY,
    CancelToken,
    EngineError,
    Interrupter,
    Limits,
    TableScan,
    check_request,
    first_line,
)

log = logging.getLogger(__name__)

_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
}
_PATHISH = re.compile(r"(?:file://)?(?:/[^\s'\"/]+)+/?")


class DuckDBEngine:
    """The embedded DuckDB engine. Stateless between queries, so one instance serves every thread.

    `work_dir`: where per-query work directories (spill files, converted CSV) are made (default: the system temp
    dir). `max_spill_mb`: cap on a query's spill files (default: DuckDB's, 90 % of the free disk).
    `select_only`: refuse anything but one SELECT statement (tests turn it off to prove the lock itself holds)."""

    name = "duckdb"

    def __init__(self, *, work_dir: str | None = None, max_spill_mb: int | None = None,
                 select_only: bool = True) -> None:
        import duckdb  # noqa: F401 - fail here, not in the first query, when DuckDB is missing

        self.work_dir = work_dir
        self.max_spill_mb = max_spill_mb
        self.select_only = select_only
        self._closed = False
        # One loader database for every query: it runs only SQL this module writes (reading a table's types,
        # converting CSV), so it needs no sandbox of its own, and each query takes a cheap cursor on it instead of
        # paying for a new database (tens of milliseconds). Members' SQL always gets a fresh, locked database.
        self._loader_db = None
        self._loader_lock = threading.Lock()

    def close(self) -> None:
        self._closed = True
        with self._loader_lock:
            if self._loader_db is not None:
                self._loader_db.close()
                self._loader_db = None

    def _loader(self, limits: Limits):
        with self._loader_lock:
            if self._loader_db is None:
                import duckdb

                spill = os.path.join(self.work_dir or tempfile.gettempdir(), f"ocr-duckdb-loader-{os.getpid()}")
                config = dict(_CONFIG, threads=int(limits.threads), memory_limit=f"{int(limits.memory_limit_mb)}MB",
                              temp_directory=spill)
                self._loader_db = duckdb.connect(":memory:", config=config)
                self._loader_db.execute("SET enable_progress_bar = false")
            return self._loader_db.cursor()

    def execute(self, sql: str, tables: Sequence[TableScan], limits: Limits, cancel: CancelToken):
        """Run `sql` over `tables` within `limits`; the result as a `pyarrow.Table`. Raises EngineError."""
        check_request(tables, cancel, self._closed)
        try:
            if self.work_dir:
                os.makedirs(self.work_dir, mode=0o700, exist_ok=True)
            work = tempfile.mkdtemp(prefix="ocr-duckdb-", dir=self.work_dir)
        except OSError:
            log.exception("cannot create a DuckDB work directory")
            raise EngineError("The query engine could not prepare the query", INTERNAL_ERROR,
                              retryable=True) from None
        guard = _Interrupter()
        try:
            with guard.armed(limits, cancel):  # stopping it closes the connections
                loader = guard.add(self._loader(limits))
                sandbox = guard.add(self._connect(limits, work))
                keep = [_expose(sandbox, loader, table, work) for table in tables]
                guard.close(loader)
                self._lock(sandbox)
                self._check_statement(sandbox, sql)
                relation = sandbox.sql(sql)  # None for a statement without a result (only when not select_only)
                result = relation.to_arrow_table() if relation is not None else _empty_table()
                del keep
                return result
        except Exception as exc:  # noqa: BLE001 - every failure becomes an EngineError with a safe message
            raise guard.failure(exc, limits, lambda e: _map_error(e, tables, limits)) from None
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _connect(self, limits: Limits, work: str):
        import duckdb

        config = dict(_CONFIG)
        config.update(threads=int(limits.threads), memory_limit=f"{int(limits.memory_limit_mb)}MB",
                      temp_directory=os.path.join(work, "spill"))
        if self.max_spill_mb is not None:
            config["max_temp_directory_size"] = f"{int(self.max_spill_mb)}MB"
        con = duckdb.connect(":memory:", config=config)
        con.execute("SET enable_progress_bar = false")
        # The policy layer's Spark-to-DuckDB translation assumes UTC, as the Spark engine's session does.
        con.execute("SET TimeZone = 'UTC'")
        return con

    @staticmethod
    def _lock(con) -> None:
        con.execute("SET python_enable_replacements = false")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")

    def _check_statement(self, con, sql: str) -> None:
        import duckdb

        statements = con.extract_statements(sql)
        if len(statements) != 1:
            raise EngineError("The query must be exactly one SQL statement", MALFORMED_QUERY)
        if self.select_only and statements[0].type != duckdb.StatementType.SELECT:
            raise EngineError("Only SELECT queries can be run", MALFORMED_QUERY)


class _Interrupter(Interrupter):
    """Interrupts every open connection of the query. Interrupts and closes hold the lock, so that a connection
    is never interrupted while (or after) it is closed."""

    every = 0.05
    thread_name = "duckdb-interrupt"

    def __init__(self) -> None:
        super().__init__()
        self._connections: list = []

    def add(self, con):
        with self._lock:
            self._connections.append(con)
        return con

    def close(self, con) -> None:
        with self._lock:
            if con in self._connections:
                self._connections.remove(con)
            with contextlib.suppress(Exception):
                con.close()

    def interrupt(self) -> None:
        with self._lock:
            for con in self._connections:
                with contextlib.suppress(Exception):
                    con.interrupt()

    def stop(self) -> None:
        """Stop interrupting and close every connection still open."""
        super().stop()
        with self._lock:
            connections, self._connections = self._connections, []
            for con in connections:
                with contextlib.suppress(Exception):
                    con.close()


def _expose(sandbox, loader, table: TableScan, work: str):
    """Create the view `table.name` in the sandbox; returns the objects that must outlive the query."""
    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as ds

    scan = table.scan
    try:
        bound = loader.sql(f"SELECT * FROM {scan.sql()}")
        source = {}
        for name, duck_type in zip(bound.columns, bound.types):
            source.setdefault(name.lower(), (name, _glue_compatible(duck_type)))
    except duckdb.InterruptException:
        raise
    except duckdb.Error:
        raise EngineError(f"The data of table {table.display} could not be read", INVALID_RESOURCE) from None
    missing = [c for c in table.columns if c not in source]
    if missing:
        raise EngineError(f"The data of table {table.display} has no column(s) {', '.join(missing)}",
                          INVALID_RESOURCE)
    if scan.format == "parquet":
        files = list(scan.files)
        try:
            full = ds.dataset(files, format="parquet")
            fields = [full.schema.field(source[c][0]) for c in table.columns]
            dataset = ds.dataset(files, format="parquet", schema=pa.schema(fields))
        except (pa.ArrowException, OSError, KeyError):
            raise EngineError(f"The data of table {table.display} could not be read", INVALID_RESOURCE) from None
        arrow_names = {c: source[c][0] for c in table.columns}
    else:
        converted = os.path.join(work, f"{table.name}.parquet")
        select = ", ".join(f"{_ident(source[c][0])} AS {_ident(c)}" for c in table.columns)
        try:
            loader.execute(f"COPY (SELECT {select} FROM {scan.sql()}) TO {_literal(converted)} "
                           f"(FORMAT parquet, COMPRESSION uncompressed)")
        except duckdb.InterruptException:
            raise
        except duckdb.OutOfMemoryException:
            raise
        except duckdb.Error:
            raise EngineError(f"The data of table {table.display} could not be read as CSV",
                              INVALID_RESOURCE) from None
        dataset = ds.dataset([converted], format="parquet")
        arrow_names = {c: c for c in table.columns}
    relation = sandbox.from_arrow(dataset)
    arrow_types = {name: str(t) for name, t in zip(relation.columns, relation.types)}
    exprs = []
    for column in table.columns:
        name, wanted = arrow_names[column], source[column][1]
        expr = _ident(name)
        if arrow_types.get(name) != wanted:
            expr = f"CAST({expr} AS {wanted})"
        exprs.append(f"{expr} AS {_ident(column)}")
    projected = relation.project(", ".join(exprs))
    projected.create_view(table.name, replace=False)
    return dataset, relation, projected


# DuckDB types that Glue (and Spark) do not have, and the type of the same values that `catalog.read_schema`
# reports for them: unsigned integers widen so that every value fits, the rest become strings or binary.
_WIDENED = {
    "utinyint": "SMALLINT", "usmallint": "INTEGER", "uinteger": "BIGINT", "ubigint": "DECIMAL(20,0)",
    "hugeint": "DECIMAL(38,0)", "uhugeint": "DECIMAL(38,0)", "bignum": "DECIMAL(38,0)", "varint": "DECIMAL(38,0)",
    "uuid": "VARCHAR", "enum": "VARCHAR", "time": "VARCHAR", "time with time zone": "VARCHAR", "time_ns": "VARCHAR",
    "interval": "VARCHAR", "bit": "BLOB",
}


def _glue_compatible(duck_type) -> str:
    """The DuckDB type a relation column gets: the bound type, or its widened form from _WIDENED (top level only;
    nested types keep their children's types)."""
    return _WIDENED.get(str(duck_type.id).lower(), str(duck_type))


_NOT_ALLOWED = "The query uses an operation that is not allowed (file, network or configuration access)"
_FIXED_MESSAGES = (  # (exception class name, code, message): checked in order, so subclasses first
    ("InterruptException", INTERNAL_ERROR, "The query was interrupted"),
    ("OutOfMemoryException", INSUFFICIENT_COMPUTE, "The query needed more memory than its limit of {mb} MB"),
    ("PermissionException", MALFORMED_QUERY, _NOT_ALLOWED),
    ("HTTPException", MALFORMED_QUERY, "The query uses an operation that is not allowed (network access)"),
    ("ConversionException", MALFORMED_QUERY, "A value could not be converted to the type the query requires"),
    ("OutOfRangeException", MALFORMED_QUERY,
     "A value was out of range for its type (for example an integer overflow)"),
    ("TypeMismatchException", MALFORMED_QUERY, "The query combines values of incompatible types"),
    ("ConstraintException", MALFORMED_QUERY, "The query violated a constraint"),
    ("InvalidInputException", MALFORMED_QUERY,
     "The query failed on an input it could not process (for example a division by zero or an invalid "
     "format string)"),
)
_TEXT_CLASSES = ("ParserException", "SyntaxException", "BinderException", "CatalogException",
                 "NotImplementedException")


def _map_error(exc: BaseException, tables: Sequence[TableScan], limits: Limits) -> EngineError:
    """A DuckDB (or Arrow, or OS) failure as an EngineError whose message is safe to show."""
    import duckdb

    if isinstance(exc, duckdb.Error):
        names = {cls.__name__ for cls in type(exc).__mro__}
        if "IOException" in names and "HTTPException" not in names:
            return EngineError("A table's data could not be read while the query ran", INVALID_RESOURCE)
        if "configuration has been locked" in str(exc):
            return EngineError(_NOT_ALLOWED, MALFORMED_QUERY)
        for cls_name, code, message in _FIXED_MESSAGES:
            if cls_name in names:
                if _looks_like_data_read(exc):
                    return EngineError("A table's data could not be read while the query ran", INVALID_RESOURCE)
                return EngineError(message.format(mb=limits.memory_limit_mb), code)
        if names & set(_TEXT_CLASSES):
            return EngineError(_first_line(str(exc), tables), MALFORMED_QUERY)
        log.warning("unclassified DuckDB error %s: %s", type(exc).__name__, exc)
        return EngineError("The query engine failed to run the query", INTERNAL_ERROR)
    try:
        import pyarrow as pa

        if isinstance(exc, pa.ArrowException):
            return EngineError("A table's data could not be read while the query ran", INVALID_RESOURCE)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(exc, OSError):
        return EngineError("A table's data could not be read while the query ran", INVALID_RESOURCE)
    if isinstance(exc, MemoryError):
        return EngineError(f"The query needed more memory than its limit of {limits.memory_limit_mb} MB",
                           INSUFFICIENT_COMPUTE)
    log.exception("unexpected failure in the DuckDB engine", exc_info=exc)
    return EngineError("The query engine failed to run the query", INTERNAL_ERROR)


def _looks_like_data_read(exc: BaseException) -> bool:
    """Arrow scan failures (files that disagree on a type, a file changed or broken under a running query) surface
    as DuckDB input errors: "reading the Arrow source failed: ..."."""
    text = str(exc).lower()
    return any(phrase in text for phrase in ("arrow source", "arrow scan", "arrow stream", "arrowinvalid"))


def _first_line(text: str, tables: Sequence[TableScan]) -> str:
    return first_line(text, tables, _PATHISH)


def _empty_table():
    import pyarrow as pa

    return pa.table({})


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
