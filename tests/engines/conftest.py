"""Helpers for the engine tests: real files written with DuckDB in tmp_path, scanned through the catalog.

`engine` is every engine of ENGINE_NAMES: DuckDB embedded, Spark through the session's local Spark Connect server
(tests/support/spark.py; skipped with the reason where Java is absent and in the PostgreSQL pass)."""

from __future__ import annotations

import uuid

import duckdb
import pyarrow as pa
import pytest
import sqlglot

from opencleanrooms.catalog import make_source, prepare_scan, read_schema
from opencleanrooms.engines import ENGINE_NAMES, CancelToken, Limits, TableScan, open_engine
from opencleanrooms.policy.transpile import render

A = "111111111111"


def write_table(tmp_path, select: str, fmt: str = "parquet", *, header: bool = True, name: str | None = None,
                delimiter: str = ",") -> str:
    """Write the rows of `select` as one Parquet or CSV file; its path."""
    name = name or uuid.uuid4().hex[:8]
    path = tmp_path / f"{name}.{fmt}"
    options = ("FORMAT parquet" if fmt == "parquet"
               else f"FORMAT csv, HEADER {str(header).lower()}, DELIMITER '{delimiter}'")
    with duckdb.connect() as con:
        con.execute(f"COPY ({select}) TO '{path}' ({options})")
    return str(path)


def source_for(location: str, **options):
    return make_source(account_id=A, database="db", table="t", location=location, **options)


def table_scan(name: str, location: str, columns=None, **options) -> TableScan:
    """A TableScan over `location` exposing `columns` (default: all of read_schema's), with the catalog's schema
    (as the runner gives it)."""
    source = source_for(location, **options)
    schema = read_schema(source, cache=None)
    if columns is None:
        columns = [c.name for c in schema]
    return TableScan(name=name, scan=prepare_scan(source), columns=tuple(columns),
                     schema=tuple((c.name, c.type) for c in schema))


def run(engine, sql, tables=(), limits=None, cancel=None) -> pa.Table:
    """Run `sql` as given (a string in the engine's own dialect, or {engine name: SQL})."""
    if isinstance(sql, dict):
        sql = sql[engine.name]
    return engine.execute(sql, list(tables), limits or Limits(timeout_seconds=60, memory_limit_mb=512),
                          cancel or CancelToken())


def query(engine, spark_sql: str, tables=(), limits=None, cancel=None) -> pa.Table:
    """Run a query written in Spark SQL as a protected query runs: rendered for the engine by the policy layer
    (Spark SQL for Spark, the transpiled SQL with the shared error policy for DuckDB)."""
    tables = list(tables)
    schema = {t.name: dict(t.schema or ()) for t in tables}
    sql = render(sqlglot.parse_one(spark_sql, read="spark"), engine.name, schema)
    return run(engine, sql, tables, limits, cancel)


@pytest.fixture(params=ENGINE_NAMES)
def engine(request):
    options = {"remote": request.getfixturevalue("spark_remote")} if request.param == "spark" else {}
    eng = open_engine(request.param, **options)
    yield eng
    eng.close()
