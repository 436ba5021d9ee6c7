"""The Spark engine, reached through Spark Connect: the API server holds no JVM, only a gRPC client.

    engine = SparkEngine(remote="sc://127.0.0.1:15002")

One Spark Connect session per query (a fresh session id), so one query's temporary views are invisible to every
other query; the session is released when the query ends. In that session, in order:

1. Session settings: the error policy shared with DuckDB (`spark.sql.ansi.enabled=false`: a failed CAST and a
   division by zero are NULL, as policy/transpile.py renders them for DuckDB), `spark.sql.session.timeZone=UTC`,
   case-insensitive names, and `spark.sql.runSQLOnFiles=false` (no `parquet.`/path`` in SQL). The cluster should
   set that last one too (docs/spark.md): a session setting is the second lock, not the only one.
2. Each `TableScan` becomes a temporary view `t0`, `t1`, ... with exactly the allowed columns, in lower case, cast
   to the Glue types the catalog reports (`TableScan.schema`), read by Spark from the catalog's own locations:
   local paths (the cluster must see the same paths) or S3 (`s3a://`; the cluster needs hadoop-aws and S3
   credentials, or the query fails with INVALID_RESOURCE saying so). CSV is read with the catalog's schema and
   FAILFAST, so a value that breaks a column's type fails the query as it does on DuckDB.
3. The SQL must be one SELECT over those views (and its own CTEs): the policy layer already checks this; the engine
   checks again, so a cluster's other tables and catalogs are never named.

Limits: the time limit and cancellation interrupt every operation of the session (`interruptAll`, again every
200 ms until `execute` returns). Memory and threads are the cluster's: Spark Connect cannot change them per
session; `Limits.resource_hints` (a query's `computeConfiguration`) become session settings Spark can use per
query (shuffle partitions sized to the workers asked for) and a job tag naming the request.

Results come back as Arrow and are written by results/ exactly as DuckDB's. Error messages never carry Spark's
text where it could hold a data value or a path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Sequence

from opencleanrooms.engines.base import (
    INSUFFICIENT_COMPUTE,
    INTERNAL_ERROR,
    INVALID_RESOURCE,
    MALFORMED_QUERY,
    CancelToken,
    EngineError,
    EngineUnavailable,
    Interrupter,
    Limits,
    TableScan,
    check_request,
    first_line,
)
from opencleanrooms.catalog.reader import sniff_delimiter

log = logging.getLogger(__name__)
# pyspark logs every failed query's SQL and JVM stack trace at ERROR; the engine maps and logs failures itself.
logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)

TRANSIENT_ERROR = "TRANSIENT_ERROR"
SETUP_HINT = "the spark engine needs pyspark: pip install 'opencleanrooms[spark]'"
_PATHISH = re.compile(r"(?:(?:file|s3a?|hdfs):/)?(?:/[^\s'\"/`\]]+)+/?")

# The one error policy of both engines (see policy/transpile.py): Spark's non-ANSI semantics, in UTC.
SESSION_SETTINGS = {
    "spark.sql.ansi.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.caseSensitive": "false",
    "spark.sql.runSQLOnFiles": "false",
}
# vCPUs of one AWS Clean Rooms worker of each type (the model's WorkerComputeType).
WORKER_VCPUS = {"CR.1X": 4, "CR.4X": 16, "CR.8X": 32}


def check_remote(remote: object) -> str:
    """A Spark Connect URL, `sc://HOST:PORT` (optionally `/;param=value`); raises ValueError otherwise."""
    if not isinstance(remote, str) or not re.fullmatch(r"sc://[A-Za-z0-9.\-\[\]:]+(?::\d{1,5})?(/;.*)?", remote):
        raise ValueError(f"spark_remote must be a Spark Connect URL like sc://127.0.0.1:15002, not {remote!r}")
    return remote


class SparkEngine:
    """Runs plans on a Spark cluster through Spark Connect. Stateless between queries; safe in several threads."""

    name = "spark"
    reads_locations = True  # the runner hands it the catalog's locations, not local copies of S3 objects

    def __init__(self, *, remote: str, select_only: bool = True) -> None:
        try:
            with warnings.catch_warnings():  # pyspark warns about pandas releases it has not been tested with
                warnings.simplefilter("ignore", FutureWarning)
                from pyspark.sql.connect.session import SparkSession  # noqa: F401 - fail here, not in a query
        except ImportError:
            raise EngineUnavailable(SETUP_HINT) from None
        self.remote = check_remote(remote)
        self.select_only = select_only
        self._closed = False

    def close(self) -> None:
        self._closed = True

    def execute(self, sql: str, tables: Sequence[TableScan], limits: Limits, cancel: CancelToken):
        """Run `sql` (Spark SQL) over `tables` within `limits`; the result as a `pyarrow.Table`."""
        check_request(tables, cancel, self._closed)
        if self.select_only:
            _check_statement(sql, [t.name for t in tables])
        guard = _Interrupter()
        with guard.armed(limits, cancel):  # stopping it releases the session
            session = guard.attach(self._session())
            try:
                self._configure(session, limits)
                for table in tables:
                    guard.check(limits)
                    _expose(session, table)
                guard.check(limits)
                result = session.sql(sql).toArrow()
                guard.check(limits)
                return _normalize(result)
            except Exception as exc:  # noqa: BLE001 - every failure becomes an EngineError with a safe message
                raise guard.failure(exc, limits, lambda e: _map_error(e, tables)) from None

    def _session(self):
        from pyspark.sql.connect.session import SparkSession

        from pyspark.sql.connect.client.retries import DefaultPolicy

        try:
            session = SparkSession.builder.remote(self.remote).create()
            # Retry an unreachable cluster for seconds, not Spark's default of ten minutes: the runner reports a
            # retryable TRANSIENT_ERROR and the member starts the query again.
            session.client.set_retry_policies([DefaultPolicy(max_retries=5, max_backoff=2000)])
            return session
        except Exception as exc:  # noqa: BLE001
            log.warning("cannot open a Spark Connect session: %s", _first_line(str(exc)))
            raise EngineError("The Spark cluster could not be reached; try the query again later",
                              TRANSIENT_ERROR, retryable=True) from None

    @staticmethod
    def _configure(session, limits: Limits) -> None:
        settings = dict(SESSION_SETTINGS)
        settings.update(resource_settings(limits.resource_hints))
        for key, value in settings.items():
            session.conf.set(key, value)
        session.addTag("opencleanrooms")


def resource_settings(hints: dict | None) -> dict[str, str]:
    """Session settings from a query's computeConfiguration (`{"worker": {"type", "number"}}`): the shuffle is
    split into as many partitions as the requested workers have vCPUs, so a query asking for more workers spreads
    wider on a cluster that has them."""
    worker = (hints or {}).get("worker") or {}
    number, kind = worker.get("number"), worker.get("type", "CR.1X")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        return {}
    return {"spark.sql.shuffle.partitions": str(number * WORKER_VCPUS.get(kind, 4))}


class _Interrupter(Interrupter):
    """Interrupts every operation of the query's Spark Connect session."""

    every = 0.2
    thread_name = "spark-interrupt"

    def __init__(self) -> None:
        super().__init__()
        self._session = None

    def attach(self, session):
        with self._lock:
            self._session = session
        return session

    def interrupt(self) -> None:
        with self._lock:
            session = self._session
        if session is not None:
            with contextlib.suppress(Exception):
                session.interruptAll()

    def stop(self) -> None:
        super().stop()
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                session.stop()  # releases the server-side session and its temporary views


def _check_statement(sql: str, names: Sequence[str]) -> None:
    """One SELECT reading only the given relations (and its CTEs): the engine's own gate behind the policy
    layer's, so that a cluster's catalogs and tables are never reachable by name."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = [s for s in sqlglot.parse(sql, read="spark") if s is not None]
    except sqlglot.errors.SqlglotError:
        raise EngineError("The query is not valid Spark SQL", MALFORMED_QUERY) from None
    if len(statements) != 1:
        raise EngineError("The query must be exactly one SQL statement", MALFORMED_QUERY)
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise EngineError("Only SELECT queries can be run", MALFORMED_QUERY)
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    allowed = set(names) | ctes
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Func):
            if not (isinstance(table.this, exp.Anonymous) and table.this.name.lower() == "range"):
                raise EngineError("Table-valued functions other than range cannot be used", MALFORMED_QUERY)
            continue
        if table.args.get("db") or table.args.get("catalog") or table.name.lower() not in allowed:
            raise EngineError(f"Table {table.name} is not a relation of this query", MALFORMED_QUERY)
    for func in tree.find_all(exp.Anonymous, exp.Func):
        name = (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()
        if name in ("reflect", "java_method", "try_reflect", "input_file_name", "input_file_block_start",
                    "input_file_block_length"):
            raise EngineError(f"The function {name} cannot be used", MALFORMED_QUERY)


def _expose(session, table: TableScan) -> None:
    """Create the temporary view `table.name` with exactly the allowed columns, typed as the catalog says."""
    scan = table.scan
    files = [_uri(path) for path in scan.files]
    types = dict(table.schema or ())
    try:
        if scan.format == "parquet":
            frame = session.read.parquet(*files)
            present = {c.lower() for c in frame.columns}
        else:
            reader = session.read.option("header", "true" if scan.header else "false") \
                .option("mode", "FAILFAST").option("enforceSchema", "true")
            delimiter = scan.delimiter
            if delimiter is None and scan.files and os.path.isfile(scan.files[0]):
                delimiter = sniff_delimiter(scan.files[0], table.display)
            if delimiter is not None:
                reader = reader.option("sep", delimiter)
            if table.schema:
                reader = reader.schema(", ".join(f"{_ident(name)} {kind}" for name, kind in table.schema))
            else:
                reader = reader.option("inferSchema", "true")
            frame = reader.csv(*files)
            present = {c.lower() for c in frame.columns}
    except Exception as exc:  # noqa: BLE001
        raise _read_error(exc, table) from None
    missing = [c for c in table.columns if c not in present]
    if missing:
        raise EngineError(f"The data of table {table.display} has no column(s) {', '.join(missing)}",
                          INVALID_RESOURCE)
    exprs = []
    for column in table.columns:
        kind = types.get(column)
        exprs.append(f"CAST({_ident(column)} AS {kind}) AS {_ident(column)}" if kind
                     else f"{_ident(column)} AS {_ident(column)}")
    try:
        frame.selectExpr(*exprs).createTempView(table.name)
    except Exception as exc:  # noqa: BLE001
        raise _read_error(exc, table) from None


def _uri(path: str) -> str:
    """Spark's name for a catalog file: S3 objects through the s3a connector, local files as they are."""
    if path.startswith("s3://"):
        return "s3a://" + path[len("s3://"):]
    return path


def _read_error(exc: BaseException, table: TableScan) -> EngineError:
    mapped = _map_error(exc, [table])
    if mapped.code in (MALFORMED_QUERY, INTERNAL_ERROR) and not mapped.retryable:
        return EngineError(f"The data of table {table.display} could not be read", INVALID_RESOURCE)
    return mapped


def _normalize(table):
    """Spark's TIMESTAMP is a zone-less timestamp in results (the session is in UTC): drop the Arrow zone, as
    DuckDB's TIMESTAMP has none, so both engines write the same result files."""
    import pyarrow as pa

    fields = [pa.field(f.name, pa.timestamp(f.type.unit)) if pa.types.is_timestamp(f.type) and f.type.tz else f
              for f in table.schema]
    if all(a is b for a, b in zip(fields, table.schema)):
        return table
    return table.cast(pa.schema(fields))


_S3_MISSING = ("The Spark cluster cannot read s3:// locations: it needs the hadoop-aws module and S3 credentials "
               "(see docs/spark.md)")
_DATA_CLASSES = ("FAILED_READ_FILE", "MALFORMED_RECORD", "CANNOT_READ_FILE", "PATH_NOT_FOUND",
                 "UNABLE_TO_INFER_SCHEMA", "FILE_NOT_EXIST", "CANNOT_MERGE_SCHEMAS", "PARQUET_COLUMN_DATA_TYPE",
                 "CANNOT_READ_FOOTER", "MALFORMED_CSV", "PARSE_MODE")
_DATA_WORDS = ("filenotfoundexception", "malformed records", "parquet", "schemacolumnconvertnotsupported",
               "file does not exist", "not a parquet file", "failed to read", "cannot read")
_VALUE_CLASSES = {
    "CAST_INVALID_INPUT": "A value could not be converted to the type the query requires",
    "CAST_OVERFLOW": "A value was out of range for its type (for example an integer overflow)",
    "ARITHMETIC_OVERFLOW": "A value was out of range for its type (for example an integer overflow)",
    "NUMERIC_VALUE_OUT_OF_RANGE": "A value was out of range for its type (for example an integer overflow)",
    "DIVIDE_BY_ZERO": "The query failed on an input it could not process (for example a division by zero or an "
                      "invalid format string)",
}


def _map_error(exc: BaseException, tables: Sequence[TableScan]) -> EngineError:
    """A Spark (Connect) failure as an EngineError whose message is safe to show."""
    from pyspark.errors import PySparkException

    text = str(exc)
    lowered = text.lower()
    condition = ""
    if isinstance(exc, PySparkException):
        with contextlib.suppress(Exception):
            condition = (exc.getCondition() if hasattr(exc, "getCondition") else exc.getErrorClass()) or ""
    if "s3a" in lowered and ("no filesystem for scheme" in lowered or "classnotfound" in lowered
                             or "s3afilesystem" in lowered):
        return EngineError(_S3_MISSING, INVALID_RESOURCE)
    if "outofmemory" in lowered.replace(" ", "") or "java heap space" in lowered:
        return EngineError("The query needed more memory than the Spark cluster could give it",
                           INSUFFICIENT_COMPUTE)
    if condition.startswith(("OPERATION_CANCELED", "SESSION_CLOSED")) or "operation_canceled" in lowered:
        return EngineError("The query was interrupted", INTERNAL_ERROR, retryable=True)
    for prefix, message in _VALUE_CLASSES.items():
        if condition.startswith(prefix) or f"[{prefix.lower()}" in lowered:
            return EngineError(message, MALFORMED_QUERY)
    kind = type(exc).__name__
    if kind in ("ParseException", "AnalysisException") or condition.startswith(("PARSE_", "UNRESOLVED_",
                                                                               "TABLE_OR_VIEW_NOT_FOUND")):
        return EngineError(_first_line(text, tables), MALFORMED_QUERY)
    head = _first_line(text).lower()  # Spark appends plans that name the format (parquet) to every message
    if condition.startswith(_DATA_CLASSES) or any(word in head for word in _DATA_WORDS):
        return EngineError("A table's data could not be read while the query ran", INVALID_RESOURCE)
    if "unavailable" in lowered and ("grpc" in lowered or "connect" in lowered):
        return EngineError("The Spark cluster could not be reached; try the query again later", TRANSIENT_ERROR,
                           retryable=True)
    log.warning("unclassified Spark error %s [%s]: %s", kind, condition, _first_line(text))
    return EngineError("The query engine failed to run the query", INTERNAL_ERROR)


def _first_line(text: str, tables: Sequence[TableScan] = ()) -> str:
    return first_line(text, tables, _PATHISH)


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
