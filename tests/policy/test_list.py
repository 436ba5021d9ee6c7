"""LIST rule: SELECT DISTINCT of list columns, function-free WHERE, INNER joins on join columns, overlap."""

from __future__ import annotations

import pytest

from tests.policy.helpers import OTHER, RUNNER, list_rule, plan, refused, row, run, table

SALES = table("sales", owner=OTHER, rule_type="LIST")
MINE = table("mine", owner=RUNNER, rule_type="LIST")
JOIN = "FROM sales s JOIN mine m ON s.id = m.id"


def test_distinct_list_columns_with_aliases_and_limit():
    result = plan(f"SELECT DISTINCT s.region AS r, m.segment {JOIN} WHERE s.amount * 2 > 3 AND s.region "
                  f"IN ('eu', 'us') AND s.segment IS NOT NULL AND NOT s.region LIKE 'x%' LIMIT 10", SALES, MINE)
    assert result.output_columns == ("r", "segment")
    rows = run(result, {"sales": [row("1", "eu", 5), row("2", "eu", 1), row("3", "apac", 9)],
                        "mine": [row("1"), row("2"), row("3")]})
    assert rows == [("eu", "a")]


def test_overlap_only_rows_of_the_runner():
    result = plan(f"SELECT DISTINCT s.region {JOIN}", SALES, MINE)
    rows = run(result, {"sales": [row("1", "eu"), row("9", "secret")], "mine": [row("1")]})
    assert rows == [("eu",)]


def test_distinct_is_required():
    refused(f"SELECT s.region {JOIN}", SALES, MINE, contains="SELECT DISTINCT")


@pytest.mark.parametrize("column", ["s.email", "s.id", "s.visits"])
def test_select_of_non_list_column(column):
    refused(f"SELECT DISTINCT {column} {JOIN}", SALES, MINE, contains=(column.split(".")[1], "listColumns"))


def test_where_on_non_list_column():
    refused(f"SELECT DISTINCT s.region {JOIN} WHERE s.email = 'a@x'", SALES, MINE, contains=("email", "WHERE"))


@pytest.mark.parametrize("expression", ["UPPER(s.region)", "COUNT(s.region)", "s.region || 'x'"])
def test_no_functions_in_select(expression):
    refused(f"SELECT DISTINCT {expression} {JOIN}", SALES, MINE)


@pytest.mark.parametrize("condition", ["UPPER(s.region) = 'EU'", "length(s.region) > 2", "s.amount BETWEEN 1 AND 2",
                                       "s.region RLIKE 'e.*'"])
def test_no_functions_in_where(condition):
    refused(f"SELECT DISTINCT s.region {JOIN} WHERE {condition}", SALES, MINE, contains="WHERE")


def test_join_on_non_join_column():
    refused("SELECT DISTINCT s.region FROM sales s JOIN mine m ON s.region = m.region", SALES, MINE,
            contains=("region", "joinColumns"))


def test_join_operators():
    two = "SELECT DISTINCT s.region FROM sales s JOIN mine m ON s.id = m.id {op} s.hashed_email = m.hashed_email"
    plan(two.format(op="AND"), SALES, MINE)
    refused(two.format(op="OR"), SALES, MINE, contains=("OR", "allowedJoinOperators"))
    ors = [table(n, owner=o, rule_type="LIST", rule=list_rule(allowedJoinOperators=["OR", "AND"]))
           for n, o in (("sales", OTHER), ("mine", RUNNER))]
    plan(two.format(op="OR"), *ors)


def test_overlap_is_required_for_tables_of_others():
    refused("SELECT DISTINCT s.region FROM sales s", SALES, MINE,
            contains="Inner join to query runner table required for table sales")


def test_runner_may_list_own_table_alone():
    plan("SELECT DISTINCT m.region FROM mine m", MINE)


@pytest.mark.parametrize("clause", ["GROUP BY s.region", "ORDER BY s.region", "LIMIT 5 OFFSET 2"])
def test_other_clauses_are_refused(clause):
    refused(f"SELECT DISTINCT s.region {JOIN} {clause}", SALES, MINE)


def test_outer_join_refused():
    refused("SELECT DISTINCT s.region FROM sales s LEFT JOIN mine m ON s.id = m.id", SALES, MINE,
            contains="INNER JOIN")
