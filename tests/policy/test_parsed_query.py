"""ParsedQuery: the relation names a query's text names, known before planning, and a plan that does not parse the
text again yet is the plan of the text alone."""

from __future__ import annotations

import pytest

from opencleanrooms.policy import ParsedQuery, QueryRejected, plan_query
from tests.policy.helpers import request, table

SALES = table("sales", rule_type="CUSTOM")
MINE = table("Mine", rule_type="CUSTOM")
SQL = ("WITH j AS (SELECT s.region, s.id FROM sales s JOIN `MINE` m ON s.id = m.id) "
       "SELECT region, COUNT(DISTINCT id) AS n FROM j WHERE id IN (SELECT id FROM sales) GROUP BY region")


def test_names_are_every_relation_the_text_names_in_lower_case_ctes_included():
    assert ParsedQuery(SQL).names == {"sales", "mine", "j"}
    assert ParsedQuery("SELECT a FROM x UNION ALL SELECT a FROM (SELECT a FROM `Y z`) q").names == {"x", "y z"}


def test_a_plan_from_the_parsed_text_is_the_plan_of_the_text():
    parsed = ParsedQuery(SQL)
    with_parsed = plan_query(request(SQL, SALES, MINE, parsed=parsed))
    alone = plan_query(request(SQL, SALES, MINE))
    assert with_parsed.tables == alone.tables == ("mine", "sales")
    assert with_parsed.sql("duckdb") == alone.sql("duckdb")
    assert parsed.take(SQL) is None  # planning took the tree: planning again parses the text afresh
    assert plan_query(request(SQL, SALES, MINE, parsed=parsed)).sql("duckdb") == alone.sql("duckdb")


def test_a_parsed_query_of_other_text_is_not_used():
    other = ParsedQuery("SELECT region FROM mine")
    assert plan_query(request(SQL, SALES, MINE, parsed=other)).tables == ("mine", "sales")
    assert other.take("SELECT region FROM mine") is not None  # still there: it was not taken


@pytest.mark.parametrize("sql", ["SELEC region FROM sales", "", "SELECT 1; SELECT 2", "DELETE FROM sales"])
def test_text_that_cannot_be_parsed_names_nothing_and_planning_refuses_it_as_before(sql):
    parsed = ParsedQuery(sql)
    assert parsed.names == frozenset()
    with pytest.raises(QueryRejected) as with_parsed:
        plan_query(request(sql, SALES, parsed=parsed))
    with pytest.raises(QueryRejected) as alone:
        plan_query(request(sql, SALES))
    assert (with_parsed.value.code, with_parsed.value.message) == (alone.value.code, alone.value.message)
