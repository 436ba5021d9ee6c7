"""Spark -> DuckDB: the semantic differences that change results are fixed and pinned here. Expected values are
what Spark (non-ANSI mode, session time zone UTC) returns for the same query."""

from __future__ import annotations

import datetime
import decimal

import duckdb
import pytest
import sqlglot

from tests.policy.helpers import OTHER, plan, row, run, table

SALES = table("sales", owner=OTHER, rule_type="CUSTOM")
DATA = {"sales": [row("1", "eu", 7.0, day="2024-01-31", visits=7), row("2", None, 2.0, day="2024-02-29", visits=0)]}


def one(expression: str, where: str = "s.id = '1'"):
    rows = run(plan(f"SELECT {expression} AS v FROM sales s WHERE {where}", SALES), DATA)
    assert len(rows) == 1
    return rows[0][0]


@pytest.mark.parametrize("expression, expected", [
    # date arithmetic returns DATE, as in Spark (DuckDB's date + interval is a TIMESTAMP)
    ("date_add(s.day, 1)", datetime.date(2024, 2, 1)),
    ("date_sub(s.day, 31)", datetime.date(2023, 12, 31)),
    ("add_months(s.day, 1)", datetime.date(2024, 2, 29)),
    # CAST AS TIMESTAMP stays a timestamp without offset (not TIMESTAMPTZ)
    ("CAST(s.day AS TIMESTAMP)", datetime.datetime(2024, 1, 31, 0, 0)),
    ("TIMESTAMP '2024-01-31 10:00:00'", datetime.datetime(2024, 1, 31, 10, 0)),
    # error policy: Spark non-ANSI -> a failed cast is NULL, division by zero is NULL
    ("CAST('abc' AS INT)", None),
    ("CAST(s.region AS DATE)", None),
    ("s.visits / 0", None),
    ("s.visits div 0", None),
    ("s.visits % 0", None),
    ("to_date('not a date')", None),
    # Spark's / is always fractional; div is integral
    ("s.visits / 2", 3.5),
    ("s.visits div 2", 3),
    ("CAST('7' AS INT) + 1", 8),
    # casts to integers truncate toward zero in Spark (DuckDB would round)
    ("CAST(s.amount / 2 AS INT)", 3),
    ("CAST(-3.7 AS INT)", -3),
    ("CAST('3.7' AS BIGINT)", 3),
    ("CAST(s.visits AS INT)", 7),
    ("CAST(true AS INT)", 1),
    ("concat(s.region, '-', s.id)", "eu-1"),
    ("substring(s.region, 1, 1)", "e"),
    ("upper(s.region)", "EU"),
    ("year(s.day)", 2024),
    ("trunc(s.day, 'MM')", datetime.date(2024, 1, 1)),
    ("trunc(s.day, 'YYYY')", datetime.date(2024, 1, 1)),
    ("date_trunc('MM', CAST(s.day AS TIMESTAMP))", datetime.datetime(2024, 1, 1)),
    ("trunc(s.day, 'fortnight')", None),
    ("to_char(s.day, 'yyyy/MM')", "2024/01"),
    ("date_format(s.day, 'dd.MM.yyyy')", "31.01.2024"),
    ("to_timestamp('2024-02-03 10:00', 'yyyy-MM-dd HH:mm')", datetime.datetime(2024, 2, 3, 10, 0)),
    ("to_timestamp('bad', 'yyyy')", None),
    ("to_date('03/02/2024', 'dd/MM/yyyy')", datetime.date(2024, 2, 3)),
    ("round(2.5)", decimal.Decimal("3")),
    ("coalesce(NULL, s.region)", "eu"),
])
def test_pinned_semantics(expression, expected):
    value = one(expression)
    assert value == expected
    assert type(value) is type(expected)


def test_current_timestamp_has_no_zone():
    assert one("current_timestamp()").tzinfo is None
    assert isinstance(one("current_date()"), datetime.date)


def test_concat_with_null_is_null():
    assert one("concat(s.region, 'x')", where="s.id = '2'") is None


def test_null_ordering_matches_spark():
    result = plan("SELECT s.region FROM sales s ORDER BY s.region", SALES)
    assert run(result, DATA) == [(None,), ("eu",)]  # Spark: NULLS FIRST ascending
    result = plan("SELECT s.region FROM sales s ORDER BY s.region DESC", SALES)
    assert run(result, DATA) == [("eu",), (None,)]  # Spark: NULLS LAST descending


def test_integer_overflow_fails_the_query_in_duckdb():
    """Known difference: non-ANSI Spark wraps INT overflow silently; DuckDB refuses to compute it."""
    with pytest.raises(duckdb.Error):
        one("CAST(2147483647 AS INT) + CAST(s.visits AS INT)")


def test_spark_rendering_round_trips():
    result = plan("SELECT s.region, COUNT(DISTINCT s.id) AS n FROM `sales` s WHERE s.day >= DATE '2024-01-01' "
                  "GROUP BY s.region ORDER BY n DESC", SALES)
    spark = result.sql("spark")
    assert "`t0`" in spark
    assert sqlglot.parse_one(spark, read="spark").sql("spark") == spark


def test_identifiers_with_spaces_and_hyphens_are_quoted():
    odd = table("odd-table name", owner=OTHER, rule_type="CUSTOM",
                columns=(("id", "string"), ("first name", "string"), ("x-y", "bigint")))
    result = plan('SELECT o.`first name`, o."x-y" FROM `odd-table name` o ORDER BY 2', odd)
    assert result.output_columns == ("first name", "x-y")
    con = duckdb.connect()
    con.execute('CREATE TABLE t0 ("id" VARCHAR, "first name" VARCHAR, "x-y" BIGINT)')
    con.execute("INSERT INTO t0 VALUES ('1', 'Ann', 2), ('2', 'Bo', 1)")
    assert con.execute(result.sql("duckdb")).fetchall() == [("Bo", 1), ("Ann", 2)]


def test_row_number_ordered_only_by_its_partition_is_not_sorted_in_duckdb():
    from opencleanrooms.policy.transpile import render
    from opencleanrooms.policy.parse import CleanRoomsSpark

    peers = sqlglot.parse_one("SELECT ROW_NUMBER() OVER (PARTITION BY a ORDER BY a) AS r FROM t", read=CleanRoomsSpark)
    assert "ORDER BY" not in render(peers, "duckdb") and "ORDER BY" in render(peers, "spark")
    for sql in ("SELECT ROW_NUMBER() OVER (PARTITION BY a ORDER BY b) AS r FROM t",  # a real order stays
                "SELECT RANK() OVER (PARTITION BY a ORDER BY a) AS r FROM t"):
        assert "ORDER BY" in render(sqlglot.parse_one(sql, read=CleanRoomsSpark), "duckdb"), sql
