"""Helpers for the engine tests: real files written with DuckDB in tmp_path, scanned through the catalog."""

from __future__ import annotations

import uuid

import duckdb
import pyarrow as pa
import pytest

from opencleanrooms.catalog import make_source, prepare_scan, read_schema
from opencleanrooms.engines import ENGINE_NAMES, CancelToken, Limits, TableScan, open_engine

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
    """A TableScan over `location` exposing `columns` (default: all of read_schema's)."""
    source = source_for(location, **options)
    if columns is None:
        columns = [c.name for c in read_schema(source, cache=None)]
    return TableScan(name=name, scan=prepare_scan(source), columns=tuple(columns))


def run(engine, sql, tables=(), limits=None, cancel=None) -> pa.Table:
    return engine.execute(sql, list(tables), limits or Limits(timeout_seconds=60, memory_limit_mb=512),
                          cancel or CancelToken())


@pytest.fixture(params=ENGINE_NAMES)
def engine(request):
    eng = open_engine(request.param)
    yield eng
    eng.close()
