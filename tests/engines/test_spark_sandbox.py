"""The Spark engine's own locks, behind the policy layer: only the plan's views, in a session of their own.

Most checks use an engine with the SELECT-only gate turned off, so they prove what Spark itself refuses
(spark.sql.runSQLOnFiles=false, one session per query, the allowed columns only), not just the gate."""

from __future__ import annotations

import threading

import pytest

from opencleanrooms.catalog import Scan
from opencleanrooms.engines import INVALID_RESOURCE, MALFORMED_QUERY, EngineError, Limits, TableScan
from opencleanrooms.engines.spark import SparkEngine, check_remote, resource_settings
from tests.engines.conftest import run, table_scan, write_table
from tests.support.server import free_port


@pytest.fixture
def gated(spark_remote):
    return SparkEngine(remote=spark_remote)


@pytest.fixture
def ungated(spark_remote):
    return SparkEngine(remote=spark_remote, select_only=False)


@pytest.fixture
def tables(tmp_path):
    parquet = write_table(tmp_path, "SELECT range AS id, 'secret-' || range AS email FROM range(5)", name="data")
    csv = write_table(tmp_path, "SELECT range AS id, 'hidden-' || range AS phone FROM range(5)", "csv", name="more")
    return [table_scan("t0", parquet, ["id"]), table_scan("t1", csv, ["id"])], parquet, csv


def refused(engine, sql, tables, code=MALFORMED_QUERY):
    with pytest.raises(EngineError) as info:
        run(engine, sql, tables)
    assert info.value.code == code, (sql, info.value)
    assert "secret-" not in info.value.message and "hidden-" not in info.value.message
    return info.value


def test_files_cannot_be_named_in_sql(ungated, tables, tmp_path):
    scans, parquet, csv = tables
    for sql in (f"SELECT * FROM parquet.`{parquet}`", f"SELECT * FROM csv.`{csv}`", f"SELECT * FROM text.`/etc`",
                f"SELECT * FROM json.`/etc/hostname`"):
        error = refused(ungated, sql, scans)
        assert str(tmp_path) not in error.message and "/etc" not in error.message, error.message


def test_hidden_columns_do_not_exist(ungated, tables):
    scans = tables[0]
    assert run(ungated, "SELECT * FROM t0 ORDER BY id", scans).column_names == ["id"]
    refused(ungated, "SELECT email FROM t0", scans)
    refused(ungated, "SELECT phone FROM t1", scans)


def test_each_query_has_a_session_of_its_own(ungated, tables):
    """Temporary views die with their query's session, and a concurrent query cannot see another's."""
    scans = tables[0]
    assert run(ungated, "SELECT count(*) AS n FROM t0", scans).to_pylist() == [{"n": 5}]
    refused(ungated, "SELECT count(*) FROM t0", [])
    seen = {}

    def other():
        try:
            run(ungated, "SELECT count(*) FROM t1", [])
        except EngineError as exc:
            seen["error"] = exc.code

    thread = threading.Thread(target=other)
    thread.start()
    run(ungated, "SELECT count(*) AS n FROM t0 a CROSS JOIN t1 b", scans)
    thread.join(60)
    assert seen == {"error": MALFORMED_QUERY}


def test_the_gate_refuses_everything_but_one_select_over_the_plan(gated, tables):
    scans = tables[0]
    for sql in ("SHOW TABLES", "SET spark.sql.runSQLOnFiles=true", "CREATE TEMPORARY VIEW v AS SELECT 1",
                "SELECT 1; SELECT 2", "SELECT * FROM spark_catalog.default.anything", "SELECT * FROM global_temp.v",
                "SELECT * FROM other", "SELECT reflect('java.lang.System', 'getenv', 'HOME') FROM t0",
                "SELECT java_method('java.lang.System', 'getProperty', 'user.home')",
                "SELECT input_file_name() FROM t0", "SELECT * FROM explode(array(1, 2))",
                "WITH t0 AS (SELECT 1) SELECT * FROM t2"):
        refused(gated, sql, scans)
    assert run(gated, "WITH x AS (SELECT id FROM t0) SELECT count(*) AS n FROM x JOIN t1 USING (id)",
               scans).to_pylist() == [{"n": 5}]


def test_session_settings_pin_the_shared_policy_and_the_resource_hints(ungated, tables):
    scans = tables[0]
    hints = {"worker": {"type": "CR.4X", "number": 4}}
    settings = {}
    for key in ("spark.sql.ansi.enabled", "spark.sql.runSQLOnFiles", "spark.sql.session.timeZone",
                "spark.sql.shuffle.partitions"):
        row = run(ungated, f"SET {key}", scans, limits=Limits(resource_hints=hints)).to_pylist()[0]
        settings[row["key"]] = row["value"]
    assert settings == {"spark.sql.ansi.enabled": "false", "spark.sql.runSQLOnFiles": "false",
                        "spark.sql.session.timeZone": "UTC", "spark.sql.shuffle.partitions": "64"}
    assert resource_settings({"worker": {"type": "CR.1X", "number": 16}}) == {"spark.sql.shuffle.partitions": "64"}
    assert resource_settings({"worker": {"type": "CR.1X"}}) == {} and resource_settings(None) == {}


def test_s3_locations_without_hadoop_aws_fail_saying_so(gated):
    scan = TableScan("t0", Scan(format="parquet", files=("s3://bucket/data/part-0.parquet",)), ("id",),
                     label="sales", schema=(("id", "bigint"),))
    error = refused(gated, "SELECT * FROM t0", [scan], code=INVALID_RESOURCE)
    assert "hadoop-aws" in error.message and "bucket" not in error.message


def test_an_unreachable_cluster_is_a_retryable_transient_error():
    engine = SparkEngine(remote=f"sc://127.0.0.1:{free_port()}")
    with pytest.raises(EngineError) as info:
        run(engine, "SELECT 1", [], limits=Limits(timeout_seconds=60))
    assert info.value.code == "TRANSIENT_ERROR" and info.value.retryable
    assert "127.0.0.1" not in info.value.message


def test_remote_addresses_are_checked():
    assert check_remote("sc://spark.internal:15002") == "sc://spark.internal:15002"
    for bad in ("http://x:1", "sc://", "sc://host:1; rm -rf /", 15002, None):
        with pytest.raises(ValueError):
            check_remote(bad)
