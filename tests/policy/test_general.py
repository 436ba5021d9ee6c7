"""Rules that hold whatever the tables' analysis rule: one SELECT, known tables only, one rule type, parameters."""

from __future__ import annotations

import dataclasses

import pytest

from opencleanrooms.policy import Plan, QueryRejected, QueryRequest, TableInfo, plan_query, warm_up
from tests.policy.helpers import OTHER, agg_rule, RUNNER, plan, refused, request, row, run, table

SALES = table("sales", owner=OTHER, rule_type="LIST")
MINE = table("mine", owner=RUNNER, rule_type="LIST")
LIST_SQL = "SELECT DISTINCT s.region FROM sales s JOIN mine m ON s.id = m.id"


def test_public_types_keep_their_fields():
    assert [f.name for f in dataclasses.fields(TableInfo)] == ["name", "owner_account_id", "columns", "rule_type",
                                                                 "rule", "unavailable"]
    assert [f.name for f in dataclasses.fields(QueryRequest)][:7] == [
        "sql", "runner_account_id", "tables", "template_arn", "template_author_account_id", "parameters",
        "max_tables"]
    assert QueryRequest("x", "1", {}).max_tables == 15
    assert [f.name for f in dataclasses.fields(Plan)][:4] == ["rule_type", "tables", "scan_names", "output_columns"]


def test_warm_up_runs():
    warm_up()


def test_plan_is_deterministic_and_uses_scan_names():
    first, second = plan(LIST_SQL, SALES, MINE), plan(LIST_SQL, SALES, MINE)
    assert first.sql("duckdb") == second.sql("duckdb")
    assert first.tables == ("mine", "sales")
    assert dict(first.scan_names) == {"mine": "t0", "sales": "t1"}
    assert '"sales"' not in first.sql("duckdb").replace('AS "sales"', "")
    assert "`t1`" in first.sql("spark")


def test_unknown_dialect():
    with pytest.raises(ValueError):
        plan(LIST_SQL, SALES, MINE).sql("oracle")


@pytest.mark.parametrize("sql, fragment", [
    ("", "empty"),
    ("SELECT DISTINCT s.region FROM sales s JOIN mine m ON s.id = m.id; SELECT 1", "single SELECT"),
    ("DROP TABLE sales", "SELECT"),
    ("INSERT INTO sales SELECT * FROM mine", "SELECT"),
    ("SET spark.sql.ansi.enabled=true", "SELECT"),
    ("USE other_db", "SELECT"),
    ("CACHE TABLE sales", "SELECT"),
    ("SELECT DISTINCT region FROM", "not valid"),
    ("SELECT 'unterminated FROM sales", "not valid"),
])
def test_only_one_select(sql, fragment):
    refused(sql, SALES, MINE, contains=fragment)


def test_unknown_table_is_resource_not_found():
    refused("SELECT DISTINCT region FROM other_sales", SALES, MINE, code="RESOURCE_NOT_FOUND",
            contains="other_sales")
    refused("SELECT DISTINCT region FROM otherdb.sales", SALES, MINE, code="RESOURCE_NOT_FOUND")


def test_table_names_are_case_insensitive_and_may_be_quoted():
    spaced = table("my sales", owner=OTHER, rule_type="LIST")
    result = plan('SELECT DISTINCT "s".region FROM `My Sales` s JOIN "MINE" m ON s.id = m.id', spaced, MINE)
    assert result.tables == ("mine", "my sales")
    rows = run(result, {"my sales": [row("1", "eu"), row("2", "us")], "mine": [row("1")]})
    assert rows == [("eu",)]


def test_table_without_rule_is_invalid_resource():
    bare = table("bare", owner=RUNNER, rule_type=None)
    refused("SELECT DISTINCT region FROM bare", bare, code="INVALID_RESOURCE", contains=("bare", "no analysis rule"))


def test_mixed_rule_types_are_invalid_resource():
    agg = table("agg", owner=RUNNER, rule_type="AGGREGATION")
    refused("SELECT DISTINCT s.region FROM sales s JOIN agg a ON s.id = a.id", SALES, agg, code="INVALID_RESOURCE",
            contains=("same analysis rule type", "AGGREGATION", "LIST"))


def test_max_tables():
    tables = [table(f"t{i}", owner=RUNNER, rule_type="LIST") for i in range(3)]
    sql = "SELECT DISTINCT a.region FROM t0 a JOIN t1 b ON a.id = b.id JOIN t2 c ON b.id = c.id"
    plan(sql, *tables)
    refused(sql, *tables, max_tables=2, contains=("3 configured tables", "at most 2"))


def test_unknown_column_is_malformed():
    narrow = table("narrow", owner=RUNNER, rule_type="LIST", columns=(("id", "string"), ("region", "string")))
    refused("SELECT DISTINCT n.email FROM narrow n", narrow, contains=("email", "allowed columns"))


def test_unused_tables_of_the_collaboration_do_not_matter():
    bare = table("bare", owner=RUNNER, rule_type=None)
    plan(LIST_SQL, SALES, MINE, bare)


def test_message_has_no_internals_and_is_short():
    error = refused("SELECT DISTINCT " + " + ".join(["s.region"] * 400) + " FROM sales s", SALES)
    assert len(error.message) <= 500


def test_query_rejected_rejects_unknown_codes():
    with pytest.raises(ValueError):
        QueryRejected("NOPE", "x")
    assert QueryRejected("MALFORMED_QUERY", "x" * 900).message.endswith("...")


# ------------------------------------------------------------------------------------------------ parameters

AGG = table("agg", owner=RUNNER, rule_type="AGGREGATION",
            rule=agg_rule(dimensionColumns=["region", "day", "segment", "visits"]))
PARAM_SQL = "SELECT a.region, COUNT(DISTINCT a.id) FROM agg a WHERE a.region = :region GROUP BY a.region"


def test_parameters_bind_as_literals():
    result = plan(PARAM_SQL, AGG, parameters={"region": ("VARCHAR", "eu")})
    assert run(result, {"agg": [row("1", "eu"), row("2", "eu"), row("3", "us"), row("4", "us")]}) == [("eu", 2)]


def test_hostile_parameter_value_stays_one_string():
    result = plan(PARAM_SQL, AGG, parameters={"region": ("VARCHAR", "x' OR '1'='1")})
    assert "'x'' OR ''1''=''1'" in result.sql("duckdb") or "x\\' OR" in result.sql("duckdb")
    assert run(result, {"agg": [row("1", "eu"), row("2", "eu")]}) == []


@pytest.mark.parametrize("kind, value, rows", [
    ("INTEGER", "+0002", [("eu", 2)]),
    ("DATE", "2024-01-02", [("us", 2)]),
    ("TIMESTAMP", "2024-01-02 00:00:00", [("us", 2)]),
])
def test_typed_parameters(kind, value, rows):
    sql = {"INTEGER": "SELECT a.region, COUNT(DISTINCT a.id) FROM agg a WHERE a.visits = :p GROUP BY a.region",
           "DATE": "SELECT a.region, COUNT(DISTINCT a.id) FROM agg a WHERE a.day >= :p GROUP BY a.region",
           "TIMESTAMP": "SELECT a.region, COUNT(DISTINCT a.id) FROM agg a WHERE a.day >= :p GROUP BY a.region"}[kind]
    data = [row("1", "eu", visits=2), row("2", "eu", visits=2), row("3", "us", day="2024-01-02"),
            row("4", "us", day="2024-01-03")]
    assert run(plan(sql, AGG, parameters={"p": (kind, value)}), {"agg": data}) == rows


@pytest.mark.parametrize("parameters, fragment", [
    ({}, ":region has no value"),
    ({"region": ("INTEGER", "eu")}, "not a valid INTEGER"),
    ({"region": ("VARCHAR", "")}, "empty"),
    ({"region": ("DATE", "2024-02-30")}, "calendar date"),
])
def test_bad_parameters(parameters, fragment):
    refused(PARAM_SQL, AGG, parameters=parameters, contains=fragment)


def test_parameter_in_limit_is_refused():
    refused("SELECT DISTINCT s.region FROM sales s JOIN mine m ON s.id = m.id LIMIT :n", SALES, MINE,
            parameters={"n": ("INTEGER", "5")}, contains="LIMIT")


def test_parameter_as_a_name_is_refused():
    refused("SELECT DISTINCT s.region FROM sales AS :x JOIN mine m ON s.id = m.id", SALES, MINE,
            parameters={"x": ("VARCHAR", "s")})


def test_positional_parameter_is_refused():
    refused("SELECT a.region, COUNT(DISTINCT a.id) FROM agg a WHERE a.region = ? GROUP BY a.region", AGG,
            contains="Positional")


def test_output_names_keep_the_case_written():
    result = plan("SELECT s.Region AS TheRegion, s.segment FROM sales s JOIN mine m ON s.id = m.id",
                  table("sales", owner=OTHER, rule_type="CUSTOM"), table("mine", owner=RUNNER, rule_type="CUSTOM"))
    assert result.output_columns == ("TheRegion", "segment")
    agg = plan("SELECT a.region AS Area, COUNT(DISTINCT a.id) FROM agg a GROUP BY a.region", AGG)
    assert agg.output_columns == ("Area", "COUNT(DISTINCT a.id)")
    assert run(agg, {"agg": [row("1"), row("2")]}) == [("eu", 2)]


@pytest.mark.parametrize("value, expected", [
    ("2024-01-01 10:00:00+02:00", "2024-01-01 08:00:00"),
    ("2024-01-01T10:00:00Z", "2024-01-01 10:00:00"),
    ("2024-01-01 23:30-0100", "2024-01-02 00:30:00"),
    ("2024-01-01 10:00:00.250", "2024-01-01 10:00:00.250"),
    ("2024-01-01", "2024-01-01 00:00:00"),
])
def test_timestamp_parameters_are_bound_in_utc(value, expected):
    from opencleanrooms.policy.parameters import literal

    bound = literal("TIMESTAMP", value)
    assert bound.sql("spark") == f"CAST('{expected}' AS TIMESTAMP)"


@pytest.mark.parametrize("value", ["x\\' OR 1=1 --", "a\\", "it's", "x' OR '1'='1", "é\u202e", "'; DROP TABLE t0; --"])
def test_hostile_string_values_stay_one_literal_in_both_dialects(value):
    import sqlglot
    from sqlglot import exp

    custom = table("sales", owner=RUNNER, rule_type="CUSTOM")
    result = plan("SELECT s.region FROM sales s WHERE s.region = :v", custom, parameters={"v": ("VARCHAR", value)})
    spark = sqlglot.parse_one(result.sql("spark"), read="spark")
    assert [lit.this for lit in spark.find_all(exp.Literal)] == [value]
    assert run(result, {"sales": [row("1", value), row("2", "other")]}) == [(value,)]


def test_long_boolean_chains_keep_their_meaning():
    """Long AND/OR chains are rebalanced for speed; precedence and parentheses must survive."""
    custom = table("sales", owner=RUNNER, rule_type="CUSTOM")
    ors = " OR ".join(f"s.visits = {i}" for i in range(20))
    sql = (f"SELECT s.id FROM sales s WHERE ({ors}) AND s.region = 'eu' AND (s.segment = 'a' OR s.segment = 'b') "
           f"AND s.amount > 0 AND s.amount < 100 AND s.id <> 'x' AND s.id <> 'y' AND s.id <> 'z' AND s.id <> 'w' "
           f"ORDER BY s.id")
    data = {"sales": [row("1", "eu", 5, visits=3), row("2", "us", 5, visits=3), row("3", "eu", 5, visits=30),
                      row("4", "eu", 5, visits=3, segment="c"), row("5", "eu", 5, visits=19, segment="b")]}
    assert run(plan(sql, custom), data) == [("1",), ("5",)]
    chain = " OR ".join(f"s.visits = {i}" for i in range(20)) + " AND s.region = 'us'"
    # AND binds tighter: (visits in 0..18) OR (visits = 19 AND region = us)
    assert run(plan(f"SELECT s.id FROM sales s WHERE {chain} ORDER BY 1", custom), data) == [("1",), ("2",), ("4",)]
