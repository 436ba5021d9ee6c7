"""AGGREGATION rule: each field allows what it lists and refuses the rest; output constraints drop rows."""

from __future__ import annotations

import pytest

from tests.policy.helpers import OTHER, RUNNER, agg_rule, plan, refused, row, run, table

SALES = table("sales", owner=OTHER)
MINE = table("mine", owner=RUNNER)
JOIN = "FROM sales s JOIN mine m ON s.hashed_email = m.hashed_email"


# ------------------------------------------------------------------------------------------------ aggregateColumns

@pytest.mark.parametrize("aggregate", ["COUNT(DISTINCT s.id)", "SUM(s.amount)", "AVG(s.amount)",
                                       "COUNT(s.visits)", "count(distinct `s`.`hashed_email`)"])
def test_listed_aggregates_are_allowed(aggregate):
    plan(f"SELECT s.region, {aggregate} {JOIN} GROUP BY s.region", SALES, MINE)


@pytest.mark.parametrize("aggregate, fragments", [
    ("SUM(s.visits)", ("visits", "SUM", "aggregateColumns for COUNT")),
    ("COUNT(s.amount)", ("amount", "COUNT", "AVG, SUM")),
    ("SUM(DISTINCT s.amount)", ("SUM DISTINCT",)),
    ("AVG(DISTINCT s.amount)", ("AVG(DISTINCT",)),
    ("COUNT(*)", ("*",)),
    ("MAX(s.amount)", ("MAX",)),
    ("SUM(s.amount * 2)", ("single column",)),
    ("SUM(CASE WHEN s.region = 'eu' THEN s.amount END)", ("single column",)),
    ("COUNT(s.email)", ("email", "no function")),
])
def test_other_aggregates_are_refused(aggregate, fragments):
    refused(f"SELECT s.region, {aggregate} {JOIN} GROUP BY s.region", SALES, MINE, contains=fragments)


def test_at_least_one_aggregate():
    refused(f"SELECT s.region {JOIN} GROUP BY s.region", SALES, MINE, contains="at least one aggregate")


# ------------------------------------------------------------------------------------------------ dimensionColumns

def test_dimensions_in_select_where_group_order():
    plan(f"SELECT s.region, s.segment, COUNT(DISTINCT s.id) AS n {JOIN} WHERE s.day >= DATE '2024-01-01' "
         f"AND s.segment IN ('a', 'b') AND NOT s.region LIKE 'x%' GROUP BY 1, 2 ORDER BY n DESC, s.region",
         SALES, MINE)


@pytest.mark.parametrize("sql, where", [
    ("SELECT s.email, COUNT(DISTINCT s.id) {j} GROUP BY s.email", "SELECT"),
    ("SELECT COUNT(DISTINCT s.id) {j} WHERE s.email = 'a'", "WHERE"),
    ("SELECT s.region, COUNT(DISTINCT s.id) {j} GROUP BY s.region, s.amount", "GROUP BY"),
    ("SELECT s.region, COUNT(DISTINCT s.id) {j} GROUP BY s.region ORDER BY s.amount", "ORDER BY"),
])
def test_non_dimension_columns_are_refused(sql, where):
    column = "email" if "email" in sql else "amount"
    refused(sql.format(j=JOIN), SALES, MINE, contains=(column, where, "dimensionColumns"))


def test_selected_dimension_must_be_grouped():
    refused(f"SELECT s.region, COUNT(DISTINCT s.id) {JOIN}", SALES, MINE, contains="GROUP BY")


# ------------------------------------------------------------------------------------------------ joinColumns

@pytest.mark.parametrize("sql, where", [
    ("SELECT s.id, COUNT(DISTINCT s.id) {j} GROUP BY s.id", "SELECT"),
    ("SELECT COUNT(DISTINCT s.id) {j} WHERE s.hashed_email = 'h1'", "WHERE"),
    ("SELECT COUNT(DISTINCT s.id) {j} GROUP BY s.hashed_email", "GROUP BY"),
])
def test_join_columns_only_in_joins_and_aggregates(sql, where):
    refused(sql.format(j=JOIN), SALES, MINE, contains=("join column", where, "INNER JOIN"))


def test_join_on_a_non_join_column_is_refused():
    refused("SELECT COUNT(DISTINCT s.id) FROM sales s JOIN mine m ON s.region = m.region", SALES, MINE,
            contains=("region", "joinColumns"))


@pytest.mark.parametrize("join", ["LEFT JOIN", "FULL OUTER JOIN", "CROSS JOIN", ","])
def test_only_inner_joins(join):
    on = "" if join in ("CROSS JOIN", ",") else " ON s.id = m.id"
    refused(f"SELECT COUNT(DISTINCT s.id) FROM sales s {join} mine m{on}", SALES, MINE, contains="INNER JOIN")


# ------------------------------------------------------------------------------------------------ allowedJoinOperators

TWO_CONDITIONS = "SELECT COUNT(DISTINCT s.id) FROM sales s JOIN mine m ON s.id = m.id {op} s.hashed_email = m.hashed_email"


def test_and_is_the_default_operator():
    plan(TWO_CONDITIONS.format(op="AND"), SALES, MINE)
    refused(TWO_CONDITIONS.format(op="OR"), SALES, MINE, contains=("OR cannot combine", "allowedJoinOperators", "s.id = m.id"))


def test_or_when_both_tables_allow_it():
    ors = [table(n, owner=o, rule=agg_rule(allowedJoinOperators=["AND", "OR"])) for n, o in (("sales", OTHER),
                                                                                            ("mine", RUNNER))]
    plan(TWO_CONDITIONS.format(op="OR"), *ors)
    refused(TWO_CONDITIONS.format(op="OR"), ors[0], MINE, contains=("OR", "mine"))


def test_explicit_empty_operators_allow_a_single_condition():
    single = table("sales", owner=OTHER, rule=agg_rule(allowedJoinOperators=[]))
    plan("SELECT COUNT(DISTINCT s.id) FROM sales s JOIN mine m ON s.id = m.id", single, MINE)
    refused(TWO_CONDITIONS.format(op="AND"), single, MINE, contains=("AND", "single condition"))


# ------------------------------------------------------------------------------------------------ joinRequired

def test_join_required_to_a_runner_table():
    required = table("sales", owner=OTHER, rule=agg_rule(joinRequired="QUERY_RUNNER"))
    plan(f"SELECT s.region, COUNT(DISTINCT s.id) {JOIN} GROUP BY s.region", required, MINE)
    refused("SELECT s.region, COUNT(DISTINCT s.id) FROM sales s GROUP BY s.region", required, MINE,
            contains="Inner join to query runner table required for table sales")


def test_join_required_is_transitive():
    required = table("sales", owner=OTHER, rule=agg_rule(joinRequired="QUERY_RUNNER"))
    middle = table("middle", owner="333333333333")
    plan("SELECT COUNT(DISTINCT s.id) FROM sales s JOIN middle x ON s.id = x.id JOIN mine m ON x.id = m.id",
         required, middle, MINE)
    refused("SELECT COUNT(DISTINCT s.id) FROM sales s JOIN middle x ON s.id = x.id", required, middle, MINE,
            contains="required for table sales")


def test_runner_owned_table_needs_no_join():
    own = table("mine", owner=RUNNER, rule=agg_rule(joinRequired="QUERY_RUNNER"))
    plan("SELECT m.region, COUNT(DISTINCT m.id) FROM mine m GROUP BY m.region", own)


def test_without_join_required_a_table_may_be_queried_alone():
    plan("SELECT s.region, COUNT(DISTINCT s.id) FROM sales s GROUP BY s.region", SALES)


# ------------------------------------------------------------------------------------------------ scalarFunctions

@pytest.mark.parametrize("expression", ["UPPER(s.region)", "ROUND(AVG(s.amount), 1)", "TRUNC(s.day, 'MM')",
                                        "date_trunc('MM', s.day)", "COALESCE(s.region, 'none')",
                                        "CAST(s.day AS STRING)", "year(s.day)", "date_add(s.day, 1)"])
def test_listed_scalar_functions_are_allowed(expression):
    group = "" if "AVG" in expression else " GROUP BY 1"
    plan(f"SELECT {expression}, COUNT(DISTINCT s.id) {JOIN}{group}", SALES, MINE)


@pytest.mark.parametrize("expression, name", [("LOWER(s.region)", "LOWER"), ("concat(s.region, 'x')", "CONCAT"),
                                              ("length(s.region)", "LENGTH"), ("abs(s.day)", "ABS")])
def test_unlisted_scalar_functions_are_refused(expression, name):
    refused(f"SELECT {expression}, COUNT(DISTINCT s.id) {JOIN} GROUP BY 1", SALES, MINE,
            contains=(name, "scalarFunctions"))


def test_scalar_function_must_be_allowed_by_every_table_it_touches():
    lower = table("mine", owner=RUNNER, rule=agg_rule(scalarFunctions=["LOWER"]))
    plan(f"SELECT LOWER(m.region), COUNT(DISTINCT s.id) {JOIN} GROUP BY 1", SALES, lower)
    refused(f"SELECT LOWER(s.region), COUNT(DISTINCT s.id) {JOIN} GROUP BY 1", SALES, lower,
            contains=("LOWER", "`sales`"))


# ------------------------------------------------------------------------------------------------ HAVING / ORDER BY

def test_having_compares_an_allowed_aggregate_with_a_number():
    plan(f"SELECT s.region, SUM(s.amount) {JOIN} GROUP BY s.region HAVING SUM(s.amount) > 10", SALES, MINE)
    refused(f"SELECT s.region, SUM(s.amount) {JOIN} GROUP BY s.region HAVING s.region = 'eu'", SALES, MINE,
            contains="HAVING")
    refused(f"SELECT s.region, SUM(s.amount) {JOIN} GROUP BY s.region HAVING MAX(s.amount) > 1", SALES, MINE,
            contains="MAX")


# ------------------------------------------------------------------------------------------------ outputConstraints

def _data():
    # eu: ids 1,2,3 (3 distinct); us: ids 4,4 (1 distinct); apac: ids 5,6 (2 distinct)
    sales = [row("1", "eu", 10), row("2", "eu", 20), row("3", "eu", 30), row("4", "us", 5), row("4", "us", 6),
             row("5", "apac", 1), row("6", "apac", 2)]
    mine = [row(str(i)) for i in range(1, 7)]
    return {"sales": sales, "mine": mine}


def test_rows_below_the_minimum_are_dropped_silently():
    result = plan(f"SELECT s.region, SUM(s.amount) AS total {JOIN} GROUP BY s.region ORDER BY total DESC", SALES,
                  MINE)
    assert result.output_columns == ("region", "total")
    assert run(result, _data()) == [("eu", 60.0), ("apac", 3.0)]


def test_constraint_applies_when_the_column_is_not_referenced():
    result = plan(f"SELECT s.region, SUM(s.amount) {JOIN} GROUP BY s.region ORDER BY s.region", SALES, MINE)
    assert "__k" not in "".join(result.output_columns)
    assert run(result, _data()) == [("apac", 3.0), ("eu", 60.0)]


def test_strictest_minimum_wins_for_a_shared_column():
    strict = table("sales", owner=OTHER, rule=agg_rule(
        outputConstraints=[{"columnName": "id", "minimum": 3, "type": "COUNT_DISTINCT"}]))
    result = plan(f"SELECT s.region, SUM(s.amount) {JOIN} GROUP BY s.region ORDER BY 1", strict, MINE)
    assert run(result, _data()) == [("eu", 60.0)]
    assert result.sql("duckdb").count(">= 3") == 2  # both tables' `id` take the larger minimum


def test_each_table_constraint_applies():
    on_mine = table("mine", owner=RUNNER, rule=agg_rule(
        outputConstraints=[{"columnName": "segment", "minimum": 2, "type": "COUNT_DISTINCT"}]))
    data = _data()
    data["mine"] = [row(str(i), segment="a" if i < 4 else f"s{i}") for i in range(1, 7)]
    result = plan(f"SELECT s.region, SUM(s.amount) {JOIN} GROUP BY s.region ORDER BY 1", SALES, on_mine)
    assert run(result, data) == [("apac", 3.0)]  # eu rows all come from segment a


def test_order_by_survives_the_wrap_with_nulls_first():
    data = _data()
    data["sales"] += [row("7", None, 1), row("8", None, 1)]
    data["mine"] += [row("7"), row("8")]
    result = plan(f"SELECT s.region, COUNT(DISTINCT s.id) {JOIN} GROUP BY s.region ORDER BY s.region", SALES, MINE)
    assert run(result, data) == [(None, 2), ("apac", 2), ("eu", 3)]


def test_constrained_column_must_be_an_allowed_column():
    narrow = table("sales", owner=OTHER, columns=tuple(c for c in SALES.columns if c[0] != "id"),
                   rule=agg_rule(aggregateColumns=[{"columnNames": ["amount"], "function": "SUM"}], joinColumns=[
                       "hashed_email"]))
    refused("SELECT s.region, SUM(s.amount) FROM sales s GROUP BY s.region", narrow, code="INVALID_RESOURCE",
            contains=("constrains column `id`", "AGGREGATION rule"))


def test_order_by_an_aggregate_that_is_not_selected():
    result = plan(f"SELECT s.region {', COUNT(DISTINCT s.id)'} {JOIN} GROUP BY s.region ORDER BY SUM(s.amount)",
                  SALES, MINE)
    assert result.output_columns == ("region", "COUNT(DISTINCT s.id)")
    assert run(result, _data()) == [("apac", 2), ("eu", 3)]


@pytest.mark.parametrize("kind, value", [("INTEGER", "-5"), ("DOUBLE", "2.5"), ("DECIMAL", "10.25")])
def test_having_with_a_numeric_parameter(kind, value):
    plan(f"SELECT s.region, SUM(s.amount) {JOIN} GROUP BY s.region HAVING SUM(s.amount) > :m", SALES, MINE,
         parameters={"m": (kind, value)})
    refused(f"SELECT s.region, SUM(s.amount) {JOIN} GROUP BY s.region HAVING SUM(s.amount) > :m", SALES, MINE,
            parameters={"m": ("VARCHAR", value)}, contains="HAVING")


def test_lab_query_with_quoted_names_containing_spaces():
    """The shape AWS's own lab runs: double-quoted names with spaces, COUNT DISTINCT of a join column."""
    columns = (("loyalty number", "string"), ("year", "bigint"), ("month", "bigint"), ("flights booked", "bigint"))
    rule = {"aggregateColumns": [{"columnNames": ["loyalty number"], "function": "COUNT_DISTINCT"}],
            "joinColumns": ["loyalty number"], "joinRequired": "QUERY_RUNNER",
            "dimensionColumns": ["year", "month", "flights booked"], "scalarFunctions": [],
            "outputConstraints": [{"columnName": "loyalty number", "minimum": 2, "type": "COUNT_DISTINCT"}]}
    trips = table("t", owner=OTHER, columns=columns, rule=rule)
    members = table("m", owner=RUNNER, columns=columns, rule=dict(rule, joinRequired=None))
    result = plan('SELECT COUNT(DISTINCT "t"."loyalty number"), "t"."year", "t"."month" FROM "t" INNER JOIN "m" '
                  'ON "t"."loyalty number" = "m"."loyalty number" WHERE "t"."flights booked" > 0 '
                  'GROUP BY "t"."year", "t"."month" ORDER BY "t"."year", "t"."month"', trips, members)
    data = {"t": [("a", 2024, 1, 3), ("b", 2024, 1, 1), ("c", 2024, 2, 5), ("d", 2024, 2, 0)],
            "m": [("a", 0, 0, 0), ("b", 0, 0, 0), ("c", 0, 0, 0), ("d", 0, 0, 0)]}
    assert run(result, data, columns=columns) == [(2, 2024, 1)]  # February has one qualifying member: dropped
