"""The engine contract, run on every engine in ENGINE_NAMES (DuckDB, and Spark through Spark Connect).

Engine-neutral on purpose: inputs are catalog scans of real files, queries are Spark SQL rendered for each engine by
the policy layer (as protected queries are), outputs are Arrow tables and EngineErrors."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

from opencleanrooms.catalog import read_schema
from opencleanrooms.engines import (
    INSUFFICIENT_COMPUTE,
    INVALID_RESOURCE,
    MALFORMED_QUERY,
    CancelToken,
    Engine,
    EngineError,
    Limits,
    QueryCancelled,
    QueryTimedOut,
    TableScan,
    open_engine,
)
from tests.engines.conftest import query, run, source_for, table_scan, write_table

RUNAWAY = "SELECT count(*) FROM range(1000000000000) a"


def glue_of(arrow_type: pa.DataType) -> str:
    """The Glue type name an Arrow result type stands for (so engines are compared on the catalog's terms)."""
    t = arrow_type
    if pa.types.is_boolean(t):
        return "boolean"
    for width, name in ((8, "tinyint"), (16, "smallint"), (32, "int"), (64, "bigint")):
        if pa.types.is_integer(t) and t.bit_width == width:
            return name
    if pa.types.is_float32(t):
        return "float"
    if pa.types.is_float64(t):
        return "double"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return f"array<{glue_of(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{glue_of(f.type)}" for f in t) + ">"
    if pa.types.is_map(t):
        return f"map<{glue_of(t.key_type)},{glue_of(t.item_type)}>"
    raise AssertionError(f"no Glue type for {t}")


def test_open_engine_gives_an_engine(engine):
    assert isinstance(engine, Engine)
    assert engine.name in ("duckdb", "spark")
    with pytest.raises(ValueError):
        open_engine("no-such-engine")


def test_join_group_by_count_distinct(engine, tmp_path):
    a = write_table(tmp_path, "SELECT 'u' || (range % 50) AS user_id, range % 3 AS seg FROM range(300)")
    b = write_table(tmp_path, "SELECT 'u' || range AS user_id, range AS clicks FROM range(25)", "csv")
    result = query(engine, "SELECT t0.seg, COUNT(DISTINCT t0.user_id) AS users, SUM(t1.clicks) AS clicks "
                         "FROM t0 JOIN t1 ON t0.user_id = t1.user_id GROUP BY t0.seg ORDER BY t0.seg",
                 [table_scan("t0", a), table_scan("t1", b)])
    rows = result.to_pylist()
    assert [r["seg"] for r in rows] == [0, 1, 2]
    assert sum(r["users"] for r in rows) == 25 * 3 // 3 * 3 or all(r["users"] > 0 for r in rows)
    # 300 rows over 50 users: each user has 6 rows, 2 per segment; users 0..24 join
    assert [r["users"] for r in rows] == [25, 25, 25]
    assert sum(r["clicks"] for r in rows) == 6 * sum(range(25))


def test_only_the_allowed_columns_exist(engine, tmp_path):
    path = write_table(tmp_path, "SELECT range AS id, 'secret-' || range AS email, range % 2 AS seg FROM range(5)")
    tables = [table_scan("t0", path, ["seg", "id"])]
    result = query(engine, "SELECT * FROM t0 ORDER BY id", tables)
    assert result.column_names == ["seg", "id"]
    assert result.num_rows == 5
    with pytest.raises(EngineError) as info:
        query(engine, "SELECT email FROM t0", tables)
    assert info.value.code == MALFORMED_QUERY
    assert "secret-" not in info.value.message


def test_mixed_case_file_columns_are_exposed_in_lower_case(engine, tmp_path):
    path = write_table(tmp_path, 'SELECT range AS "UserId", range * 2 AS "Spend" FROM range(3)')
    result = query(engine, "SELECT * FROM t0 ORDER BY userid", [table_scan("t0", path, ["userid", "spend"])])
    assert result.column_names == ["userid", "spend"]
    assert result.column("spend").to_pylist() == [0, 2, 4]


PARQUET_TYPES = """
SELECT range::TINYINT AS c_tiny, range::SMALLINT AS c_small, range::INTEGER AS c_int, range::BIGINT AS c_big,
       range::UTINYINT AS c_utiny, range::UINTEGER AS c_uint,
       range::FLOAT AS c_float, range::DOUBLE AS c_double, (range / 3)::DECIMAL(12, 3) AS c_dec,
       range % 2 = 0 AS c_bool, 'x' || range AS c_str, DATE '2024-01-01' + range::INT AS c_date,
       TIMESTAMP '2024-01-01 10:00:00' + INTERVAL (range) MINUTE AS c_ts,
       TIMESTAMPTZ '2024-01-01 10:00:00+00' AS c_tstz, 'abc'::BLOB AS c_blob,
       [range, range + 1] AS c_list, {'a': range, 'b': 'y'} AS c_struct, MAP {'k': range} AS c_map
FROM range(4)
"""


@pytest.mark.parametrize("fmt,header", [("parquet", True), ("csv", True), ("csv", False)])
def test_types_are_the_ones_read_schema_reports(engine, tmp_path, fmt, header):
    if fmt == "parquet":
        path = write_table(tmp_path, PARQUET_TYPES)
        options = {}
    else:
        path = write_table(tmp_path, "SELECT range AS id, range * 1.5 AS amount, 'x' || range AS label, "
                                     "DATE '2024-03-01' + range::INT AS day, "
                                     "TIMESTAMP '2024-03-01 10:00:00' + INTERVAL (range) HOUR AS at, "
                                     "range % 2 = 0 AS flag FROM range(5)", "csv", header=header)
        options = {"header": header}
    expected = read_schema(source_for(path, **options), cache=None)
    result = query(engine, "SELECT * FROM t0", [table_scan("t0", path, [c.name for c in expected], **options)])
    assert [f.name for f in result.schema] == [c.name for c in expected]
    assert [glue_of(f.type) for f in result.schema] == [c.type for c in expected]
    assert result.num_rows in (4, 5)
    if fmt == "csv" and not header:
        assert [c.name for c in expected][:2] == ["col0", "col1"]


def test_one_error_policy_failed_casts_and_division_by_zero_are_null(engine, tmp_path):
    """Spark's non-ANSI semantics on both engines (spark.sql.ansi.enabled=false; TRY_CAST and NULLIF in DuckDB):
    a failed query would tell the member something about a value (a side channel under differential privacy)."""
    path = write_table(tmp_path, "SELECT 'not-a-number-417' AS code, 7 AS n FROM range(1)")
    result = query(engine, "SELECT CAST(code AS INT) AS c, n / 0 AS d, n % 0 AS m, n DIV 0 AS q, "
                           "CAST('2024-13-45' AS DATE) AS bad_date FROM t0", [table_scan("t0", path)])
    assert result.to_pylist() == [{"c": None, "d": None, "m": None, "q": None, "bad_date": None}]


def test_query_errors_are_malformed_query_without_values(engine, tmp_path):
    path = write_table(tmp_path, "SELECT 'not-a-number-417' AS code, 2147483647::INTEGER AS big FROM range(1)")
    tables = [table_scan("t0", path)]
    for sql in ("SELECT * FROM nowhere", "SELECT nothing FROM t0", "SELECT count(*) FROM t0 GROUP BY"):
        with pytest.raises(EngineError) as info:
            query(engine, sql, tables)
        assert info.value.code == MALFORMED_QUERY, sql
        assert "not-a-number-417" not in info.value.message and "2147483647" not in info.value.message
        assert str(tmp_path) not in info.value.message
        assert not info.value.retryable
    with pytest.raises(EngineError) as info:
        run(engine, "SELEC 1", tables)
    assert info.value.code == MALFORMED_QUERY


def test_integer_overflow_is_the_one_known_difference(engine, tmp_path):
    """Pinned, and documented in docs/spark.md: non-ANSI Spark wraps an INT overflow; DuckDB fails the query
    (without the value)."""
    path = write_table(tmp_path, "SELECT 2147483647::INTEGER AS big FROM range(1)")
    tables = [table_scan("t0", path)]
    if engine.name == "spark":
        assert query(engine, "SELECT big + big AS s FROM t0", tables).to_pylist() == [{"s": -2}]
        return
    with pytest.raises(EngineError) as info:
        query(engine, "SELECT big + big AS s FROM t0", tables)
    assert info.value.code == MALFORMED_QUERY and "2147483647" not in info.value.message


def test_unreadable_data_is_invalid_resource(engine, tmp_path):
    good = write_table(tmp_path, "SELECT range AS id FROM range(3)")
    scan = table_scan("t0", good)
    with open(good, "wb") as out:
        out.write(b"this is not parquet at all")
    with pytest.raises(EngineError) as info:
        query(engine, "SELECT * FROM t0", [scan])
    assert info.value.code == INVALID_RESOURCE
    assert str(tmp_path) not in info.value.message


def test_csv_value_that_breaks_the_sniffed_type_is_invalid_resource(engine, tmp_path):
    path = tmp_path / "late.csv"
    path.write_text("id,n\n" + "".join(f"{i},{i}\n" for i in range(30000)) + "30000,secret-value-99\n")
    scan = table_scan("t0", str(path))
    with pytest.raises(EngineError) as info:
        query(engine, "SELECT sum(n) FROM t0", [scan])
    assert info.value.code == INVALID_RESOURCE
    assert "secret-value-99" not in info.value.message and str(tmp_path) not in info.value.message


def test_a_column_gone_from_the_data_is_invalid_resource(engine, tmp_path):
    path = write_table(tmp_path, "SELECT range AS id FROM range(3)")
    scan = table_scan("t0", path)
    with pytest.raises(EngineError) as info:
        query(engine, "SELECT * FROM t0", [TableScan("t0", scan.scan, ("id", "vanished"), label="sales")])
    assert info.value.code == INVALID_RESOURCE
    assert "vanished" in info.value.message and "sales" in info.value.message


def test_timeout_stops_a_runaway_query(engine):
    start = time.monotonic()
    with pytest.raises(QueryTimedOut) as info:
        query(engine, RUNAWAY, limits=Limits(timeout_seconds=1.0))
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 3.0, elapsed
    assert info.value.code == INSUFFICIENT_COMPUTE


def test_cancel_from_another_thread_stops_a_runaway_query(engine):
    token = CancelToken()
    threading.Timer(1.0, token.cancel).start()
    start = time.monotonic()
    with pytest.raises(QueryCancelled):
        query(engine, RUNAWAY, limits=Limits(timeout_seconds=60), cancel=token)
    assert 0.9 <= time.monotonic() - start < 3.0


def test_cancelled_before_start(engine):
    token = CancelToken()
    token.cancel()
    with pytest.raises(QueryCancelled):
        query(engine, "SELECT 1", cancel=token)


def test_four_queries_in_threads(engine, tmp_path):
    paths = [write_table(tmp_path, f"SELECT range AS id, {i} AS k FROM range({1000 * (i + 1)})") for i in range(4)]
    results: dict[int, object] = {}

    def work(i):
        try:
            results[i] = query(engine, "SELECT count(*) AS n, max(t0.k) AS k FROM t0 JOIN t0 AS b USING (id)",
                             [table_scan("t0", paths[i])]).to_pylist()
        except Exception as exc:  # noqa: BLE001
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {i: [{"n": 1000 * (i + 1), "k": i}] for i in range(4)}


def test_empty_result_keeps_its_schema(engine, tmp_path):
    path = write_table(tmp_path, "SELECT range AS id, 'a' AS s FROM range(3)")
    result = query(engine, "SELECT id, s FROM t0 WHERE id < 0", [table_scan("t0", path)])
    assert result.num_rows == 0 and result.column_names == ["id", "s"]


def test_cancel_token_callbacks():
    token = CancelToken()
    calls = []
    unregister = token.register(lambda: calls.append("a"))
    token.register(lambda: calls.append("b"))
    unregister()
    token.cancel()
    token.cancel()
    assert calls == ["b"] and token.cancelled
    token.register(lambda: calls.append("late"))
    assert calls == ["b", "late"]


def test_limits_and_table_scan_validation(tmp_path):
    with pytest.raises(ValueError):
        Limits(timeout_seconds=0)
    with pytest.raises(ValueError):
        Limits(threads=0)
    path = write_table(tmp_path, "SELECT 1 AS a")
    scan = table_scan("t0", path).scan
    for name in ("t 0", "t0; DROP", '"x"', ""):
        with pytest.raises(ValueError):
            TableScan(name, scan, ("a",))
    with pytest.raises(ValueError):
        TableScan("t0", scan, ("A",))


def test_files_that_disagree_on_a_type_are_invalid_resource(engine, tmp_path):
    (tmp_path / "parts").mkdir()
    write_table(tmp_path / "parts", "SELECT range AS id FROM range(3)", name="part-0")
    write_table(tmp_path / "parts", "SELECT 'secret-text-' || range AS id FROM range(3)", name="part-1")
    scan = table_scan("t0", str(tmp_path / "parts"))
    with pytest.raises(EngineError) as info:
        query(engine, "SELECT sum(id) FROM t0", [scan])
    assert info.value.code == INVALID_RESOURCE
    assert "secret-text-" not in info.value.message and str(tmp_path) not in info.value.message


def test_files_removed_after_the_scan_was_prepared_are_invalid_resource(engine, tmp_path):
    import os

    path = write_table(tmp_path, "SELECT range AS id FROM range(3)")
    scan = table_scan("t0", path)
    os.unlink(path)
    with pytest.raises(EngineError) as info:
        query(engine, "SELECT * FROM t0", [scan])
    assert info.value.code == INVALID_RESOURCE and str(tmp_path) not in info.value.message


def test_several_files_make_one_relation(engine, tmp_path):
    (tmp_path / "parts").mkdir()
    for i in range(3):
        write_table(tmp_path / "parts", f"SELECT range + {i * 10} AS id, 'x' AS hidden FROM range(10)",
                    name=f"part-{i}")
    result = query(engine, "SELECT count(*) AS n, count(DISTINCT id) AS d FROM t0",
                 [table_scan("t0", str(tmp_path / "parts"), ["id"])])
    assert result.to_pylist() == [{"n": 30, "d": 30}]


def test_sessions_run_in_utc(engine, tmp_path):
    """The policy layer's translation of Spark SQL assumes a UTC session, whatever the server's own time zone."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from opencleanrooms.catalog import Scan
    from opencleanrooms.engines import CancelToken, Limits, TableScan

    path = tmp_path / "one.parquet"
    pq.write_table(pa.table({"x": [1]}), path)
    scan = TableScan(name="t0", scan=Scan(format="parquet", files=(str(path),)), columns=("x",))
    result = run(engine, {"duckdb": "SELECT CAST(current_setting('TimeZone') AS VARCHAR) AS tz FROM t0",
                          "spark": "SELECT current_timezone() AS tz FROM t0"}, [scan])
    assert result.to_pylist() == [{"tz": "UTC"}]


DP_QUERIES = [
    "SELECT COUNT(*), COUNT(DISTINCT user_id), COUNT(DISTINCT seg), SUM(spend), AVG(spend), STDDEV(clicks) FROM events",
    "SELECT seg, COUNT(*) AS n, COUNT(clicks) AS c, SUM(spend) AS total, AVG(spend) AS mean FROM events GROUP BY seg",
    # infinities and NaN are clamped alike: per value (STDDEV needs squares) and per user's mean (AVG alone)
    "SELECT SUM(odd) AS total, STDDEV(odd) AS spread FROM events",
    "SELECT seg, AVG(odd) AS mean FROM events GROUP BY seg",
]


@pytest.mark.parametrize("sql", DP_QUERIES)
def test_differential_privacy_cells_are_the_same_on_every_engine(engine, tmp_path, sql):
    """The DP rewrite's exact cells (per-user sums, weights, buckets, picked groups) are what the runner adds noise
    to: every engine must return the same ones, DuckDB's being the reference."""
    from opencleanrooms.policy import TableInfo, plan_query
    from tests.policy.helpers import RUNNER, request

    path = write_table(tmp_path, "SELECT 'u' || (range % 40) AS user_id, CASE WHEN range % 7 = 0 THEN NULL "
                                 "ELSE 's' || (range % 3) END AS seg, CASE WHEN range % 11 = 0 THEN NULL ELSE "
                                 "(range % 9) * 1.5 - 4 END AS spend, range % 1000 AS clicks, CASE "
                                 "WHEN range % 53 = 0 THEN CAST('inf' AS DOUBLE) WHEN range % 59 = 0 THEN "
                                 "CAST('-inf' AS DOUBLE) WHEN range % 61 = 0 THEN CAST('nan' AS DOUBLE) ELSE "
                                 "range * 1.0e15 END AS odd FROM range(400)")
    columns = (("user_id", "string"), ("seg", "string"), ("spend", "double"), ("clicks", "bigint"),
               ("odd", "double"))
    rule = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [RUNNER],
            "differentialPrivacy": {"columns": [{"name": "user_id"}]}}
    plan = plan_query(request(sql, TableInfo(name="events", owner_account_id="222222222222", columns=columns,
                                             rule_type="CUSTOM", rule=rule)))
    tables = [table_scan(scan, path) for scan in plan.scan_names.values()]

    def cells(eng) -> list[tuple]:
        result = run(eng, plan.sql(eng.name), tables)
        rounded = [tuple(float(f"{v:.9g}") if isinstance(v, float) else v for v in row.values())  # 9 digits:
                   for row in result.to_pylist()]  # sums of large values may differ in their last bits
        return sorted(rounded, key=repr)

    reference = open_engine("duckdb")
    try:
        expected = cells(reference)
    finally:
        reference.close()
    assert expected and any(row[1] == "c" for row in expected)
    assert cells(engine) == expected
