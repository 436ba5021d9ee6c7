"""The DuckDB sandbox: after the lock, nothing but the given relations is reachable from the SQL.

Most checks use an engine with the SELECT-only gate turned off, so they prove the DuckDB lock itself holds
(enable_external_access=false, lock_configuration=true, python_enable_replacements=false), not just the gate."""

from __future__ import annotations

import os
import time

import pyarrow as pa
import pytest

from opencleanrooms.engines import MALFORMED_QUERY, EngineError, Limits
from opencleanrooms.engines.duckdb import DuckDBEngine

NOT_ALLOWED = "The query uses an operation that is not allowed (file, network or configuration access)"
from tests.engines.conftest import run, table_scan, write_table


@pytest.fixture
def ungated():
    return DuckDBEngine(select_only=False)


@pytest.fixture
def tables(tmp_path):
    parquet = write_table(tmp_path, "SELECT range AS id, 'secret-' || range AS email FROM range(5)", name="data")
    csv = write_table(tmp_path, "SELECT range AS id, 'hidden-' || range AS phone FROM range(5)", "csv", name="more")
    return [table_scan("t0", parquet, ["id"]), table_scan("t1", csv, ["id"])], parquet, csv


def refused(engine, sql, tables):
    with pytest.raises(EngineError) as info:
        run(engine, sql, tables)
    assert info.value.code == MALFORMED_QUERY, (sql, info.value)
    assert "/" not in info.value.message, info.value.message  # no path, ever
    return info.value


def test_file_and_network_access_fail_after_the_lock(ungated, tables, tmp_path):
    scans, parquet, csv = tables
    out = tmp_path / "stolen.csv"
    for sql in [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        f"SELECT * FROM read_parquet('{parquet}')",
        f"SELECT * FROM '{parquet}'",
        f"SELECT * FROM read_csv('{csv}')",
        f"SELECT * FROM '{csv}'",
        f"SELECT * FROM parquet_metadata('{parquet}')",
        f"SELECT * FROM sniff_csv('{csv}')",
        "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')",
        f"COPY t0 TO '{out}'",
        f"COPY (SELECT 1) TO '{out}' (FORMAT parquet)",
        f"EXPORT DATABASE '{tmp_path / 'export'}'",
        f"ATTACH '{tmp_path / 'other.db'}' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        "SELECT * FROM read_json('/etc/hostname')",
        f"IMPORT DATABASE '{tmp_path}'",
        f"LOAD '{tmp_path / 'evil.duckdb_extension'}'",
    ]:
        assert refused(ungated, sql, scans).message == NOT_ALLOWED, sql
    assert not out.exists() and not (tmp_path / "other.db").exists() and not (tmp_path / "export").exists()


def test_configuration_is_locked(ungated, tables):
    scans = tables[0]
    for sql in ["SET enable_external_access = true", "SET lock_configuration = false", "RESET lock_configuration",
                "SET threads = 8", "SET memory_limit = '64GB'", "PRAGMA threads = 8",
                "SET python_enable_replacements = true", "SET temp_directory = '/tmp'",
                "SET allowed_paths = ['/etc']", "SET profiling_output = '/tmp/profile.json'",
                "PRAGMA enable_profiling", "CALL enable_logging(storage = 'file', storage_path = '/tmp/logs')"]:
        error = refused(ungated, sql, scans)
        assert error.message == NOT_ALLOWED, sql


def test_python_variables_are_not_scannable(ungated, tables):
    secret_arrow = pa.table({"email": ["leak@example.com"]})  # noqa: F841 - a replacement scan would find it
    refused(ungated, "SELECT * FROM secret_arrow", tables[0])


def test_only_the_given_relations_exist(ungated, tables):
    scans, parquet, csv = tables
    names = run(ungated, "SELECT table_name FROM information_schema.tables ORDER BY 1", scans)
    assert names.column("table_name").to_pylist() == ["t0", "t1"]
    views = run(ungated, "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1", scans)
    assert views.column("view_name").to_pylist() == ["t0", "t1"]
    definitions = " ".join(views.column("sql").to_pylist())
    for leak in (parquet, csv, os.path.dirname(parquet), "email", "phone"):
        assert leak not in definitions
    assert run(ungated, "SELECT table_name FROM duckdb_tables()", scans).num_rows == 0
    columns = run(ungated, "SELECT table_name, column_name FROM information_schema.columns ORDER BY 1, 2", scans)
    assert columns.to_pylist() == [{"table_name": "t0", "column_name": "id"},
                                   {"table_name": "t1", "column_name": "id"}]
    databases = run(ungated, "SELECT database_name, path FROM duckdb_databases() WHERE NOT internal", scans)
    assert databases.to_pylist() == [{"database_name": "memory", "path": None}]


def test_select_only_gate(tables, tmp_path):
    engine = DuckDBEngine()
    scans = tables[0]
    assert refused(engine, f"COPY t0 TO '{tmp_path / 'x.csv'}'", scans).message == "Only SELECT queries can be run"
    assert "one SQL statement" in refused(engine, "SELECT 1; SELECT 2", scans).message
    assert refused(engine, "CREATE TABLE x AS SELECT 1", scans).message == "Only SELECT queries can be run"
    assert run(engine, "WITH a AS (SELECT id FROM t0) SELECT count(*) AS n FROM a", scans).to_pylist() == [{"n": 5}]


def test_memory_limit_spills_or_fails_with_insufficient_compute(tmp_path):
    """Past the limit, a hash join, a COUNT DISTINCT and a sort spill to the query's temp directory and succeed;
    state that cannot be spilled (one huge list) fails with INSUFFICIENT_COMPUTE."""
    engine = DuckDBEngine(work_dir=str(tmp_path / "work"))
    limits = Limits(timeout_seconds=120, memory_limit_mb=64, threads=1)
    for sql, expected in [
        ("SELECT count(*) AS n FROM range(3000000) a JOIN range(3000000) b ON a.range = b.range", 3000000),
        ("SELECT count(DISTINCT range::VARCHAR) AS n FROM range(5000000)", 5000000),
        ("SELECT count(*) AS n FROM (SELECT range::VARCHAR || 'x' AS s FROM range(5000000) ORDER BY s)", 5000000),
    ]:
        assert run(engine, sql, limits=limits).to_pylist() == [{"n": expected}], sql
    with pytest.raises(EngineError) as info:
        run(engine, "SELECT length(list(range::VARCHAR || 'padding-padding')) FROM range(20000000)", limits=limits)
    assert info.value.code == "INSUFFICIENT_COMPUTE"
    assert "64 MB" in info.value.message
    assert os.listdir(tmp_path / "work") == []  # work directories (spill, converted CSV) are removed


def test_interrupt_during_table_preparation(tmp_path):
    """The time limit also covers converting a large CSV before the SQL runs."""
    path = write_table(tmp_path, "SELECT range AS id, md5(range::VARCHAR) AS h FROM range(3000000)", "csv")
    scan = table_scan("t0", path)
    start = time.monotonic()
    with pytest.raises(EngineError) as info:
        run(DuckDBEngine(), "SELECT count(*) FROM t0", [scan], limits=Limits(timeout_seconds=0.3, threads=1))
    assert info.value.code == "INSUFFICIENT_COMPUTE"
    assert time.monotonic() - start < 2.5
