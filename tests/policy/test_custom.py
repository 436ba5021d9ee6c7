"""CUSTOM rule: authorization, disallowed output columns, comparison controls, aggregation thresholds, DP hook."""

from __future__ import annotations

import pytest

from opencleanrooms.policy import QueryRejected, TableInfo

from tests.policy.helpers import OTHER, RUNNER, TEMPLATE, THIRD, custom_rule, plan, refused, row, run, table

MINE = table("mine", owner=RUNNER, rule_type="CUSTOM")


def sales(**rule) -> object:
    return table("sales", owner=OTHER, rule_type="CUSTOM", rule=custom_rule(**rule))


# ------------------------------------------------------------------------------------------------ authorization

def test_query_by_allowed_provider():
    plan("SELECT s.region FROM sales s", sales())


def test_query_by_other_member_is_access_denied():
    refused("SELECT s.region FROM sales s", sales(allowedAnalysisProviders=[THIRD]), code="RESOURCE_ACCESS_DENIED",
            contains=("sales", "allowedAnalysisProviders"))


def test_template_listed_in_allowed_analyses():
    rule = dict(allowedAnalyses=[TEMPLATE], allowedAnalysisProviders=[])
    plan("SELECT s.region FROM sales s", sales(**rule), template_arn=TEMPLATE, template_author_account_id=THIRD)
    refused("SELECT s.region FROM sales s", sales(**rule), code="RESOURCE_ACCESS_DENIED")  # not by query string
    refused("SELECT s.region FROM sales s", sales(**rule), template_arn=TEMPLATE + "x",
            template_author_account_id=THIRD, code="RESOURCE_ACCESS_DENIED", contains="analysis template")


def test_template_by_allowed_provider():
    plan("SELECT s.region FROM sales s", sales(allowedAnalysisProviders=[THIRD]), template_arn=TEMPLATE,
         template_author_account_id=THIRD)
    refused("SELECT s.region FROM sales s", sales(allowedAnalysisProviders=[RUNNER]), template_arn=TEMPLATE,
            template_author_account_id=THIRD, code="RESOURCE_ACCESS_DENIED")


def test_every_table_must_authorize():
    denied = table("mine", owner=RUNNER, rule_type="CUSTOM", rule=custom_rule(allowedAnalyses=[]))
    refused("SELECT s.region FROM sales s JOIN mine m ON s.id = m.id", sales(), denied,
            code="RESOURCE_ACCESS_DENIED", contains="mine")


def test_authorization_comes_before_sql_checks():
    refused("SELECT s.nope FROM sales s", sales(allowedAnalysisProviders=[THIRD]), code="RESOURCE_ACCESS_DENIED")


def test_custom_allows_free_sql():
    result = plan("WITH x AS (SELECT s.region, s.amount, ROW_NUMBER() OVER (PARTITION BY s.region ORDER BY s.amount "
                  "DESC) AS rn FROM sales s LEFT JOIN mine m ON s.id = m.id) SELECT region, amount FROM x WHERE rn = 1 "
                  "UNION ALL SELECT 'total', SUM(amount) FROM sales ORDER BY 1", sales(), MINE)
    rows = run(result, {"sales": [row("1", "eu", 5), row("2", "eu", 7), row("3", "us", 1)], "mine": []})
    assert rows == [("eu", 7.0), ("total", 13.0), ("us", 1.0)]


def test_star_expands_to_allowed_columns_only():
    narrow = table("sales", owner=OTHER, rule_type="CUSTOM", rule=custom_rule(),
                   columns=(("id", "string"), ("region", "string")))
    assert plan("SELECT * FROM sales", narrow).output_columns == ("id", "region")


# ------------------------------------------------------------------------------------------------ differential privacy

def test_differential_privacy_goes_through_its_own_checks():  # the shapes: test_differential_privacy.py
    assert plan("SELECT COUNT(*) FROM sales", sales(differentialPrivacy={"columns": [{"name": "id"}]})).dp_aggregations
    refused("SELECT s.region FROM sales s", sales(differentialPrivacy={"columns": [{"name": "id"}]}),
            contains="differential privacy")


# ------------------------------------------------------------------------------------------------ disallowedOutputColumns

HIDDEN = dict(disallowedOutputColumns=["email"])


@pytest.mark.parametrize("sql", [
    "SELECT s.region, COUNT(s.email) FROM sales s GROUP BY s.region",
    "SELECT COUNT(DISTINCT s.email) AS n FROM sales s",
    "WITH x AS (SELECT s.email AS e FROM sales s) SELECT COUNT(DISTINCT e) FROM x",
    "WITH x AS (SELECT COUNT(s.email) AS c FROM sales s) SELECT c + 1 FROM x",
    "SELECT s.region FROM sales s WHERE s.email LIKE '%@x'",
])
def test_counting_or_filtering_a_disallowed_column_is_allowed(sql):
    plan(sql, sales(**HIDDEN))


@pytest.mark.parametrize("sql", [
    "SELECT s.email FROM sales s",
    "SELECT s.email AS contact FROM sales s",
    "SELECT concat(s.region, s.email) FROM sales s",
    "SELECT MAX(s.email) FROM sales s",
    "WITH x AS (SELECT upper(s.email) AS e FROM sales s) SELECT e FROM x",
])
def test_disallowed_column_cannot_reach_the_output(sql):
    refused(sql, sales(**HIDDEN), contains=("email", "disallowedOutputColumns"))


# ------------------------------------------------------------------------------------------------ comparisonControls

def controlled(literal=("region",), column=("id",)):
    return sales(comparisonControls={"allowedLiteralComparisonColumns": list(literal),
                                     "allowedColumnComparisonColumns": list(column)})


def test_literal_comparison_of_allowed_column():
    plan("SELECT COUNT(*) FROM sales s WHERE s.region = 'eu' AND s.region IN ('a', 'b')", controlled())


@pytest.mark.parametrize("condition", ["s.segment = 'a'", "s.amount > 5", "s.segment LIKE 'a%'",
                                       "s.amount BETWEEN 1 AND 2", "s.segment IS NULL", "s.segment IN ('a')"])
def test_literal_comparison_of_other_column(condition):
    refused(f"SELECT COUNT(*) FROM sales s WHERE {condition}", controlled(),
            contains=("literal value", "allowedLiteralComparisonColumns"))


def test_column_comparison_in_join():
    plan("SELECT COUNT(*) FROM sales s JOIN mine m ON s.id = m.id", controlled(), MINE)
    refused("SELECT COUNT(*) FROM sales s JOIN mine m ON s.region = m.region", controlled(), MINE,
            contains=("region", "another column", "allowedColumnComparisonColumns"))


@pytest.mark.parametrize("sql", [
    "SELECT s.segment, COUNT(*) FROM sales s GROUP BY s.segment",
    "SELECT SUM(s.amount) OVER (PARTITION BY s.segment) FROM sales s",
    "SELECT COUNT(*) FROM sales s JOIN mine m ON s.segment = m.segment",
    "SELECT COUNT(*) FROM sales a JOIN sales b ON a.id = b.id WHERE a.amount > b.amount",
])
def test_column_comparison_of_other_column(sql):
    refused(sql, controlled(), MINE, contains="allowedColumnComparisonColumns")


def test_comparison_through_cte_alias_and_function():
    refused("WITH x AS (SELECT upper(s.segment) AS seg FROM sales s) SELECT COUNT(*) FROM x WHERE seg = 'A'",
            controlled(), contains=("segment", "literal"))
    refused("SELECT COUNT(*) FROM sales s WHERE contains(s.segment, 'a')", controlled(), contains="segment")
    refused("SELECT SUM(CASE s.segment WHEN 'a' THEN 1 ELSE 0 END) FROM sales s", controlled(), contains="segment")


# ------------------------------------------------------------------------------------------------ aggregationThresholds

def threshold(minimum=2, overrides=(), expression=None):
    entry = {"identityColumns": ["id"], "minimumIdentityCount": minimum, "type": "COUNT_DISTINCT"}
    if overrides:
        entry["outputColumnThresholds"] = [{"outputColumnName": c, "minimumIdentityCount": m} for c, m in overrides]
    if expression:
        entry["allowedAggregateExpressionType"] = expression
    return sales(aggregationThresholds=[entry])


DATA = {"sales": [row("1", "eu", 1), row("2", "eu", 2), row("3", "eu", 3), row("4", "us", 4), row("4", "us", 5),
                  row("5", "apac", 6), row("6", "apac", 7)],
        "mine": [row(str(i)) for i in range(1, 7)]}


def test_groups_below_threshold_are_dropped():
    result = plan("SELECT s.region, SUM(s.amount) AS total FROM sales s GROUP BY s.region ORDER BY total DESC",
                  threshold(3))
    assert run(result, DATA) == [("eu", 6.0)]
    assert result.output_columns == ("region", "total")


def test_threshold_traced_through_ctes_and_joins():
    result = plan("WITH j AS (SELECT s.region AS r, s.amount AS a FROM sales s JOIN mine m ON s.id = m.id), "
                  "k AS (SELECT r, a FROM j WHERE a > 0) SELECT r, COUNT(*) FROM k GROUP BY r ORDER BY r",
                  threshold(2), MINE)
    assert run(result, DATA) == [("apac", 2), ("eu", 3)]


def test_output_column_override_and_exemption():
    exempt = threshold(3, overrides=[("region", 0)])
    assert run(plan("SELECT s.region FROM sales s GROUP BY s.region ORDER BY 1", exempt), DATA) == \
        [("apac",), ("eu",), ("us",)]
    # SUM(amount) is not exempt: the table-wide minimum applies to the row
    assert run(plan("SELECT s.region, SUM(s.amount) FROM sales s GROUP BY s.region", exempt), DATA) == \
        [("eu", 6.0)]
    stricter = threshold(2, overrides=[("amount", 4)])
    assert run(plan("SELECT s.region, SUM(s.amount) FROM sales s GROUP BY s.region", stricter), DATA) == []


def test_columns_only_refuses_transformed_aggregates():
    refused("SELECT s.region, SUM(s.amount * 2) FROM sales s GROUP BY s.region", threshold(),
            contains=("transformed", "COLUMNS_ONLY"))
    refused("WITH x AS (SELECT s.region, ROUND(s.amount) AS a FROM sales s) SELECT region, SUM(a) FROM x "
            "GROUP BY region", threshold(), contains="COLUMNS_ONLY")
    plan("SELECT s.region, SUM(s.amount * 2) FROM sales s GROUP BY s.region", threshold(expression="ANY_EXPRESSION"))
    plan("SELECT s.region, SUM(s.amount), COUNT(1) FROM sales s GROUP BY s.region", threshold())


@pytest.mark.parametrize("sql, fragment", [
    ("SELECT s.region, s.amount FROM sales s", "must aggregate"),
    ("WITH x AS (SELECT s.region, SUM(s.amount) AS a FROM sales s GROUP BY s.region) SELECT region, SUM(a) FROM x "
     "GROUP BY region", "intermediate aggregation"),
    ("SELECT region, COUNT(*) FROM (SELECT DISTINCT s.region, s.segment FROM sales s) GROUP BY region", "DISTINCT"),
    ("SELECT s.region, COUNT(*) FROM sales s GROUP BY s.region UNION ALL SELECT 'x', 1", "set operation"),
    ("SELECT m.region, COUNT(*) FROM mine m WHERE m.id IN (SELECT s.id FROM sales s) GROUP BY m.region",
     "do not reach"),
])
def test_threshold_unprovable_shapes_are_refused(sql, fragment):
    refused(sql, threshold(expression="ANY_EXPRESSION"), MINE, contains=("cannot be proven", fragment))


def test_threshold_counts_every_read_of_the_table():
    result = plan("SELECT a.region, COUNT(*) FROM sales a JOIN sales b ON a.id = b.id GROUP BY a.region "
                  "ORDER BY a.region", threshold(2))
    assert result.sql("duckdb").count("COUNT(DISTINCT") == 2
    assert run(result, DATA) == [("apac", 2), ("eu", 3)]


def test_threshold_cte_referenced_twice_gets_one_hidden_column():
    result = plan("WITH x AS (SELECT s.region, s.id FROM sales s) SELECT a.region, COUNT(*) FROM x a JOIN x b "
                  "ON a.id = b.id GROUP BY a.region ORDER BY 1", threshold(3))
    assert result.sql("duckdb").count('AS "__id0"') == 1
    assert run(result, DATA) == [("eu", 3)]


def test_threshold_keeps_limit_after_filtering():
    result = plan("SELECT s.region, COUNT(*) AS n FROM sales s GROUP BY s.region ORDER BY n LIMIT 1", threshold(2))
    assert run(result, DATA) == [("apac", 2)]  # us (1 identity) is dropped before the LIMIT


def test_comparison_controls_cover_rollup_and_case_conditions():
    refused("SELECT s.region, COUNT(*) FROM sales s GROUP BY ROLLUP(s.region, s.segment)", controlled(),
            contains=("segment", "allowedColumnComparisonColumns"))
    refused("SELECT SUM(CASE WHEN s.amount > 3 THEN 1 ELSE 0 END) FROM sales s", controlled(),
            contains=("amount", "allowedLiteralComparisonColumns"))
    plan("SELECT SUM(CASE WHEN s.region = 'eu' THEN 1 ELSE 0 END) FROM sales s", controlled())
    plan("SELECT COUNT(*) FROM sales s JOIN sales t ON s.id = t.id GROUP BY s.id", controlled())


def test_hidden_identity_column_cannot_be_shadowed_by_the_query():
    """A CTE column named like the hidden identity column must not be what the threshold counts."""
    result = plan("WITH x AS (SELECT s.region, s.amount AS __id0 FROM sales s) SELECT region, COUNT(*) FROM x "
                  "GROUP BY region ORDER BY 1", threshold(3, expression="ANY_EXPRESSION"))
    assert '"__id1"' in result.sql("duckdb")
    assert run(result, DATA) == [("eu", 3)]  # us and apac have 1 and 2 identities, though 2 distinct amounts each


def test_identity_column_must_be_an_allowed_column():
    narrow = table("sales", owner=OTHER, rule_type="CUSTOM", columns=(("region", "string"), ("amount", "double")),
                   rule=custom_rule(aggregationThresholds=[{"identityColumns": ["id"], "minimumIdentityCount": 2,
                                                            "type": "COUNT_DISTINCT"}]))
    refused("SELECT s.region, COUNT(*) FROM sales s GROUP BY s.region", narrow, code="INVALID_RESOURCE",
            contains=("identity column `id`", "allowed columns"))


# ------------------------------------------------------------------------------------------------ deferred controls


def test_populating_defers_disallowed_columns_and_records_where_they_reach():
    """An intermediate table's population may carry a disallowed column: the plan says which outputs it reaches,
    even derived, so the intermediate table can inherit the restriction."""
    sales = table("sales", rule_type="CUSTOM", rule=custom_rule(disallowedOutputColumns=["email", "id"]))
    sql = "SELECT region, UPPER(email) AS mail, id FROM sales"
    with pytest.raises(QueryRejected):
        plan(sql, sales)
    deferred = plan(sql, sales, defer_output_controls=True)
    assert sorted(deferred.deferred_columns) == [("id", "sales", "id"), ("mail", "sales", "email")]
    assert plan("SELECT region FROM sales", sales, defer_output_controls=True).deferred_columns == ()


def test_populating_still_enforces_comparison_controls():
    sales = table("sales", rule_type="CUSTOM", rule=custom_rule(comparisonControls={
        "allowedLiteralComparisonColumns": [], "allowedColumnComparisonColumns": []}))
    with pytest.raises(QueryRejected):
        plan("SELECT region FROM sales WHERE region = 'x'", sales, defer_output_controls=True)


def test_an_unavailable_table_is_refused_with_its_reason():
    gone = TableInfo(name="derived", owner_account_id=OTHER, columns=(), rule_type="CUSTOM", rule=custom_rule(),
                     unavailable="its data expired")
    with pytest.raises(QueryRejected) as info:
        plan("SELECT anything FROM derived", gone)
    assert info.value.code == "INVALID_RESOURCE" and "its data expired" in info.value.message
