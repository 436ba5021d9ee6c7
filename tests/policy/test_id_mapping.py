"""The managed ID_MAPPING_TABLE rule (policy/id_mapping.py): join shapes, column use, requireOverlap, dimension
columns, and the rule type inherited from the query's other tables, with answers computed on DuckDB."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from opencleanrooms.policy import TableInfo
from tests.policy.helpers import OTHER, RUNNER, TEMPLATE, agg_rule, custom_rule, list_rule, plan, refused, table

MAP_COLUMNS = (("sourceid", "string"), ("targetid", "string"))
PEOPLE = (("pid", "string"), ("country", "string"), ("spend", "double"))
VISITS = (("vid", "string"), ("page", "string"), ("seconds", "bigint"))


def mapping(name="idmt", dimensions=(), owner=RUNNER, overlap=True) -> TableInfo:
    rule = {"joinColumns": ["sourceid", "targetid"], "dimensionColumns": list(dimensions),
            "queryConstraints": [{"requireOverlap": {"columns": ["sourceid", "targetid"]}}] if overlap else []}
    return TableInfo(name=name, owner_account_id=owner, columns=MAP_COLUMNS, rule_type="ID_MAPPING_TABLE", rule=rule)


def people(rule_type="CUSTOM", **rule) -> TableInfo:
    base = {"CUSTOM": custom_rule, "AGGREGATION": lambda **r: agg_rule(
        aggregateColumns=[{"columnNames": ["pid"], "function": "COUNT_DISTINCT"},
                          {"columnNames": ["spend"], "function": "SUM"}],
        joinColumns=["pid"], dimensionColumns=["country"], scalarFunctions=["UPPER"],
        outputConstraints=[{"columnName": "pid", "minimum": 2, "type": "COUNT_DISTINCT"}], **r),
        "LIST": lambda **r: list_rule(joinColumns=["pid"], listColumns=["country", "spend"], **r)}[rule_type]
    return table("people", owner=RUNNER, rule_type=rule_type, rule=base(**rule), columns=PEOPLE)


def visits(rule_type="CUSTOM", **rule) -> TableInfo:
    base = {"CUSTOM": custom_rule, "AGGREGATION": lambda **r: agg_rule(
        aggregateColumns=[{"columnNames": ["vid"], "function": "COUNT_DISTINCT"},
                          {"columnNames": ["seconds"], "function": "SUM"}],
        joinColumns=["vid"], dimensionColumns=["page"], scalarFunctions=["UPPER"],
        outputConstraints=[{"columnName": "vid", "minimum": 2, "type": "COUNT_DISTINCT"}], **r),
        "LIST": lambda **r: list_rule(joinColumns=["vid"], listColumns=["page"], **r)}[rule_type]
    return table("visits", owner=OTHER, rule_type=rule_type, rule=base(**rule), columns=VISITS)


DATA = {
    "people": (PEOPLE, [("p1", "FR", 10.0), ("p2", "FR", 20.0), ("p3", "DE", 5.0), ("p4", "US", 7.0)]),
    "visits": (VISITS, [("v1", "home", 3), ("v2", "home", 4), ("v3", "cart", 30), ("v4", "home", 1),
                        ("v9", "cart", 100)]),
    # p4 and v9 are in no pair; p1 maps to two visitors; (p9, v4): a pair whose source is not in `people`
    "idmt": (MAP_COLUMNS, [("p1", "v1"), ("p1", "v2"), ("p2", "v3"), ("p3", "v4"), ("p9", "v4")]),
}

JOIN = "FROM people p JOIN idmt m ON p.pid = m.sourceid JOIN visits v ON v.vid = m.targetid"


def run(plan_, data=DATA) -> list[tuple]:
    con = duckdb.connect()
    for name, scan in plan_.scan_names.items():
        columns, rows = data[name]
        con.execute(f'CREATE TABLE "{scan}" ({", ".join(f"{c} {_type(t)}" for c, t in columns)})')
        source = pa.table({c: [r[i] for r in rows] for i, (c, _) in enumerate(columns)})  # noqa: F841
        con.execute(f'INSERT INTO "{scan}" SELECT * FROM source')
    result = con.execute(plan_.sql("duckdb"))
    assert tuple(d[0] for d in result.description) == plan_.output_columns
    return sorted(result.fetchall(), key=repr)


def _type(glue: str) -> str:
    return {"string": "VARCHAR", "double": "DOUBLE", "bigint": "BIGINT"}[glue]


TABLES = (people(), mapping(), visits())


# ------------------------------------------------------------------------------------------------ CUSTOM


def test_the_documented_shape_returns_the_overlap_only():
    result = run(plan(f"SELECT p.country, v.page {JOIN}", *TABLES))
    assert result == [("DE", "home"), ("FR", "cart"), ("FR", "home"), ("FR", "home")]


def test_custom_aggregates_over_the_overlap():
    query = f"SELECT p.country, COUNT(DISTINCT p.pid) AS people, SUM(v.seconds) AS seconds {JOIN} GROUP BY p.country"
    assert run(plan(query, *TABLES)) == [("DE", 1, 1), ("FR", 2, 37)]


@pytest.mark.parametrize("sql", [
    "SELECT p.country, v.page FROM people p LEFT JOIN idmt m ON p.pid = m.sourceid JOIN visits v ON v.vid = m.targetid",
    "SELECT p.country, v.page FROM idmt m RIGHT JOIN people p ON p.pid = m.sourceid "
    "JOIN visits v ON v.vid = m.targetid",
    "SELECT p.country, v.page FROM people p INNER JOIN idmt m ON p.pid = m.sourceid INNER JOIN visits v "
    "ON m.targetid = v.vid",
    "SELECT p.country, v.page FROM idmt m JOIN people p ON (m.sourceid = p.pid) JOIN visits v ON v.vid = m.targetid",
    "SELECT p.country, v.page FROM people p JOIN visits v ON TRUE AND v.page IS NOT NULL "
    "JOIN idmt m ON p.pid = m.sourceid AND v.vid = m.targetid",
    "SELECT p.country, v.page FROM people p LEFT OUTER JOIN idmt m ON p.pid = m.sourceid JOIN visits v "
    "ON v.vid = m.targetid",
    "SELECT p.country, v.page FROM people p JOIN `IDMT` m ON p.pid = m.SourceId JOIN Visits v ON v.vid = M.TARGETID",
])
def test_allowed_join_shapes_give_the_same_overlap(sql):
    assert run(plan(sql, *TABLES)) == [("DE", "home"), ("FR", "cart"), ("FR", "home"), ("FR", "home")]


def test_an_outer_join_after_the_mapping_keeps_the_mapping_on_the_inner_side():
    """`(people JOIN idmt JOIN visits) RIGHT JOIN visits2`: the mapping is inside the RIGHT JOIN's inner side."""
    query = (f"SELECT w.page, COUNT(p.pid) AS n FROM people p JOIN idmt m ON p.pid = m.sourceid JOIN visits v "
             f"ON v.vid = m.targetid RIGHT JOIN visits w ON w.vid = v.vid GROUP BY w.page")
    assert run(plan(query, *TABLES)) == [("cart", 1), ("home", 3)]


@pytest.mark.parametrize("sql, contains", [
    ("SELECT p.country FROM idmt m LEFT JOIN people p ON p.pid = m.sourceid JOIN visits v ON v.vid = m.targetid",
     "left side of a LEFT JOIN"),
    ("SELECT p.country FROM people p RIGHT JOIN idmt m ON p.pid = m.sourceid JOIN visits v ON v.vid = m.targetid",
     "right side of a RIGHT JOIN"),
    ("SELECT p.country FROM people p JOIN idmt m ON p.pid = m.sourceid LEFT JOIN visits v ON v.vid = m.targetid",
     "left side of a LEFT JOIN"),
    ("SELECT p.country FROM people p FULL JOIN idmt m ON p.pid = m.sourceid JOIN visits v ON v.vid = m.targetid",
     "FULL JOIN"),
    ("SELECT p.country FROM people p CROSS JOIN idmt m JOIN visits v ON v.vid = m.targetid", "CROSS JOIN"),
    ("SELECT p.country FROM people p, idmt m, visits v", "CROSS JOIN"),
    ("SELECT p.country FROM people p NATURAL JOIN idmt m", "NATURAL JOIN"),
    ("SELECT p.country FROM people p JOIN idmt m ON p.pid = m.sourceid JOIN visits v ON v.vid = m.targetid "
     "FULL JOIN visits w ON w.vid = v.vid", "FULL JOIN"),
    ("SELECT p.country FROM people p LEFT SEMI JOIN idmt m ON p.pid = m.sourceid", "SEMI JOIN"),
    ("SELECT p.country FROM people p LEFT ANTI JOIN idmt m ON p.pid = m.sourceid", "ANTI JOIN"),
    ("SELECT p.country FROM people p JOIN (idmt m JOIN visits v ON v.vid = m.targetid) ON p.pid = m.sourceid",
     "not supported"),  # refused by the parser for every query
])
def test_refused_join_shapes(sql, contains):
    refused(sql, *TABLES, contains=contains)


@pytest.mark.parametrize("sql, column", [
    (f"SELECT m.sourceid {JOIN}", "sourceid"),
    (f"SELECT COUNT(DISTINCT m.targetid) AS n {JOIN}", "targetid"),
    (f"SELECT * {JOIN}", "targetid"),
    (f"SELECT p.country {JOIN} WHERE m.targetid = 'v1'", "targetid"),
    (f"SELECT p.country, COUNT(*) AS n {JOIN} GROUP BY p.country, m.sourceid", "sourceid"),
    (f"SELECT p.country, COUNT(*) AS n {JOIN} GROUP BY p.country HAVING MAX(m.targetid) > 'a'", "targetid"),
    (f"SELECT p.country {JOIN} ORDER BY m.sourceid", "sourceid"),
    (f"SELECT p.country, ROW_NUMBER() OVER (PARTITION BY m.sourceid ORDER BY p.pid) AS r {JOIN}", "sourceid"),
    # in ON but not a plain equality with another table's column
    ("SELECT p.country FROM people p JOIN idmt m ON p.pid = m.sourceid AND m.targetid = 'v1' JOIN visits v "
     "ON v.vid = m.targetid", "targetid"),
    ("SELECT p.country FROM people p JOIN idmt m ON p.pid = m.sourceid OR p.pid = m.targetid JOIN visits v "
     "ON v.vid = m.targetid", "targetid"),
    ("SELECT p.country FROM people p JOIN idmt m ON UPPER(p.pid) = UPPER(m.sourceid) JOIN visits v "
     "ON v.vid = m.targetid", "sourceid"),
    ("SELECT p.country FROM people p JOIN idmt m ON p.pid = m.sourceid JOIN visits v ON v.vid = m.targetid "
     "AND NOT (m.sourceid = p.pid)", "sourceid"),
    ("SELECT p.country FROM people p JOIN idmt m ON p.pid = m.sourceid JOIN idmt n ON n.sourceid = m.sourceid "
     "JOIN visits v ON v.vid = m.targetid AND v.vid = n.targetid", "sourceid"),
    # a correlated reference from a subquery
    ("SELECT p.country FROM people p JOIN idmt m ON p.pid = m.sourceid JOIN visits v ON v.vid = m.targetid "
     "WHERE EXISTS (SELECT 1 FROM visits w WHERE w.vid = m.targetid)", "targetid"),
    # joined to a CTE, whose values could be guesses
    ("WITH g AS (SELECT 'v1' AS vid) SELECT p.country FROM people p JOIN idmt m ON p.pid = m.sourceid "
     "JOIN g ON g.vid = m.targetid", "targetid"),
])
def test_mapping_columns_only_in_join_conditions(sql, column):
    refused(sql, *TABLES, contains=[f"`{column}`", "JOIN ... ON", "dimensionColumns"])


@pytest.mark.parametrize("sql", [
    "SELECT p.country FROM people p JOIN idmt m ON p.pid = m.sourceid",
    "SELECT v.page FROM idmt m JOIN visits v ON v.vid = m.targetid",
    "SELECT p.country FROM people p JOIN idmt m ON p.pid = m.sourceid JOIN visits v ON v.page = p.country",
])
def test_require_overlap_needs_both_sides(sql):
    refused(sql, *TABLES, contains=["joined on both sides", "requireOverlap"[:7]])


def test_only_mapping_tables_is_refused():
    refused("SELECT COUNT(*) AS n FROM idmt", mapping(), contains="joined between tables")


def test_without_require_overlap_one_side_is_enough():
    result = run(plan("SELECT p.country FROM people p JOIN idmt m ON p.pid = m.sourceid",
                      people(), mapping(overlap=False), visits()))
    assert result == [("DE",), ("FR",), ("FR",), ("FR",)]


def test_dimension_columns_may_be_selected_and_filtered():
    tables = (people(), mapping(dimensions=["sourceid"]), visits())
    query = (f"SELECT m.sourceid, COUNT(*) AS visits {JOIN} WHERE m.sourceid <> 'p3' GROUP BY m.sourceid "
             f"ORDER BY m.sourceid")
    assert run(plan(query, *tables)) == [("p1", 2), ("p2", 1)]
    # targetid is still a join column only
    refused(f"SELECT m.targetid {JOIN}", *tables, contains="`targetid`")
    # a dimension column used only in WHERE does not satisfy the overlap
    refused("SELECT p.country FROM people p JOIN idmt m ON p.pid = m.targetid "
            "JOIN visits v ON v.vid = m.targetid WHERE m.sourceid = 'p1'", *tables,
            contains="`sourceid` must be joined")


def test_custom_rules_of_the_other_tables_still_apply():
    # authorization of the other tables: the mapping table itself never authorizes nor refuses
    refused(f"SELECT p.country {JOIN}", people(), mapping(), visits(allowedAnalysisProviders=[OTHER]),
            code="RESOURCE_ACCESS_DENIED", contains="`visits`")
    assert run(plan(f"SELECT p.country {JOIN}", people(), mapping(owner=OTHER), visits(), template_arn=None)) \
        == [("DE",), ("FR",), ("FR",), ("FR",)]
    refused(f"SELECT p.country {JOIN}", people(allowedAnalyses=[TEMPLATE]), mapping(), visits(),
            code="RESOURCE_ACCESS_DENIED", contains="`people`")
    # disallowed output columns of the others
    refused(f"SELECT v.vid {JOIN}", people(), mapping(), visits(disallowedOutputColumns=["vid"]),
            contains="disallowedOutputColumns")
    # comparison controls of the others see the join with the mapping table
    refused(f"SELECT p.country {JOIN}", people(), mapping(),
            visits(comparisonControls={"allowedColumnComparisonColumns": ["page"],
                                       "allowedLiteralComparisonColumns": []}),
            contains="allowedColumnComparisonColumns")
    # aggregation thresholds of the others are enforced over the join
    thresholded = visits(aggregationThresholds=[{"identityColumns": ["vid"], "minimumIdentityCount": 2,
                                                 "type": "COUNT_DISTINCT"}])
    query = f"SELECT p.country, COUNT(*) AS n {JOIN} GROUP BY p.country"
    assert run(plan(query, people(), mapping(), thresholded)) == [("FR", 3)]  # DE has one visitor


def test_mixed_rules_are_still_refused_and_the_mapping_table_is_not_one():
    refused(f"SELECT p.country {JOIN}", people(), mapping(), visits("LIST"), code="INVALID_RESOURCE",
            contains="same analysis rule type")
    error = refused(f"SELECT p.country {JOIN}", people(), mapping(), visits("LIST"), code="INVALID_RESOURCE")
    assert "idmt" not in error.message


def test_differential_privacy_is_refused():
    dp = {"columns": [{"name": "vid"}]}
    refused(f"SELECT COUNT(*) AS n {JOIN}", people(), mapping(), visits(differentialPrivacy=dp),
            code="INVALID_RESOURCE", contains="Differential privacy")


def test_an_unpopulated_mapping_table_is_refused():
    info = mapping()
    unpopulated = TableInfo(name=info.name, owner_account_id=info.owner_account_id, columns=info.columns,
                            rule_type=info.rule_type, rule=info.rule, unavailable="it has not been populated.")
    refused(f"SELECT p.country {JOIN}", people(), unpopulated, visits(), code="INVALID_RESOURCE",
            contains="not been populated")


def test_cte_and_set_operation_scopes_are_checked_too():
    query = (f"WITH j AS (SELECT p.country, v.page {JOIN}) SELECT country, COUNT(*) AS n FROM j GROUP BY country "
             f"UNION ALL SELECT 'all', COUNT(*) FROM j")
    assert run(plan(query, *TABLES)) == [("DE", 1), ("FR", 3), ("all", 4)]
    refused(f"WITH j AS (SELECT m.targetid AS t {JOIN}) SELECT COUNT(*) AS n FROM j", *TABLES, contains="`targetid`")
    refused(f"SELECT p.country {JOIN} UNION SELECT sourceid FROM idmt", *TABLES, contains="`sourceid`")


# ------------------------------------------------------------------------------------------------ AGGREGATION


AGG = (people("AGGREGATION"), mapping(), visits("AGGREGATION"))


def test_aggregation_joins_through_the_mapping_table():
    query = f"SELECT p.country, COUNT(DISTINCT v.vid) AS visitors, SUM(v.seconds) AS seconds {JOIN} GROUP BY p.country"
    # the output constraints of both tables still apply: DE has one person and one visitor
    assert run(plan(query, *AGG)) == [("FR", 3, 37)]
    # a dimension of the other table with an allowed scalar function
    query = (f"SELECT UPPER(v.page) AS page, COUNT(DISTINCT p.pid) AS people {JOIN} GROUP BY UPPER(v.page)")
    assert run(plan(query, *AGG)) == [("HOME", 2)]  # CART: one person


@pytest.mark.parametrize("sql, contains", [
    ("SELECT COUNT(DISTINCT v.vid) AS n FROM people p LEFT JOIN idmt m ON p.pid = m.sourceid JOIN visits v "
     "ON v.vid = m.targetid", "LEFT JOIN is not allowed"),
    (f"SELECT COUNT(DISTINCT m.sourceid) AS n {JOIN}", "`sourceid`"),
    (f"SELECT m.sourceid, COUNT(DISTINCT v.vid) AS n {JOIN} GROUP BY m.sourceid", "`sourceid`"),
    ("SELECT COUNT(DISTINCT p.pid) AS n FROM people p JOIN idmt m ON p.pid = m.sourceid", "joined on both sides"),
    ("SELECT COUNT(DISTINCT v.vid) AS n FROM people p JOIN idmt m ON p.country = m.sourceid JOIN visits v "
     "ON v.vid = m.targetid", "joinColumns"),
])
def test_aggregation_refusals(sql, contains):
    refused(sql, *AGG, contains=contains)


def test_aggregation_dimension_columns_of_the_mapping_table():
    tables = (people("AGGREGATION"), mapping(dimensions=["targetid"]), visits("AGGREGATION"))
    query = f"SELECT m.targetid, COUNT(DISTINCT p.pid) AS n {JOIN} GROUP BY m.targetid"
    assert run(plan(query, *tables)) == []  # every visitor maps to a single person: below the minimum of 2
    # ID columns are never aggregated: the managed rule lists no aggregate columns
    refused(f"SELECT COUNT(DISTINCT m.targetid) AS n {JOIN}", *tables, contains="aggregated")


def test_aggregation_join_required_is_not_met_by_a_mapping_table():
    """joinRequired QUERY_RUNNER: the runner's ID mapping table is not the runner's data."""
    theirs = table("theirs", owner=OTHER, rule_type="AGGREGATION", columns=PEOPLE, rule=agg_rule(
        aggregateColumns=[{"columnNames": ["pid"], "function": "COUNT_DISTINCT"}], joinColumns=["pid"],
        dimensionColumns=["country"], scalarFunctions=[], joinRequired="QUERY_RUNNER",
        outputConstraints=[{"columnName": "pid", "minimum": 2, "type": "COUNT_DISTINCT"}]))
    refused("SELECT COUNT(DISTINCT t.pid) AS n FROM theirs t JOIN idmt m ON t.pid = m.sourceid JOIN visits v "
            "ON v.vid = m.targetid", theirs, mapping(owner=RUNNER), visits("AGGREGATION"),
            contains="Inner join to query runner table required for table theirs")
    # joined through the mapping table to the runner's own table: met
    required = visits("AGGREGATION", joinRequired="QUERY_RUNNER")
    assert run(plan(f"SELECT COUNT(DISTINCT v.vid) AS n {JOIN}", people("AGGREGATION"), mapping(), required)) \
        == [(4,)]
    query = (f"SELECT COUNT(DISTINCT p.pid) AS n FROM people p JOIN idmt m ON p.pid = m.sourceid JOIN visits v "
             f"ON v.vid = m.targetid JOIN theirs t ON t.pid = p.pid")
    assert run(plan(query, people("AGGREGATION"), mapping(), visits("AGGREGATION"), theirs),
               dict(DATA, theirs=DATA["people"])) == [(3,)]


# ------------------------------------------------------------------------------------------------ LIST


LIST = (people("LIST"), mapping(), visits("LIST"))


def test_list_through_the_mapping_table():
    query = f"SELECT DISTINCT p.country, v.page {JOIN}"
    assert run(plan(query, *LIST)) == [("DE", "home"), ("FR", "cart"), ("FR", "home")]
    tables = (people("LIST"), mapping(dimensions=["sourceid"]), visits("LIST"))
    query = f"SELECT DISTINCT m.sourceid, v.page {JOIN} WHERE m.sourceid <> 'p2'"
    assert run(plan(query, *tables)) == [("p1", "home"), ("p3", "home")]


@pytest.mark.parametrize("sql, contains", [
    (f"SELECT DISTINCT m.targetid {JOIN}", "`targetid`"),
    (f"SELECT DISTINCT p.country {JOIN} WHERE m.sourceid = 'p1'", "`sourceid`"),
    ("SELECT DISTINCT p.country FROM idmt m RIGHT JOIN people p ON p.pid = m.sourceid JOIN visits v "
     "ON v.vid = m.targetid", "RIGHT JOIN is not allowed"),
    ("SELECT DISTINCT v.page FROM visits v JOIN idmt m ON v.vid = m.targetid", "joined on both sides"),
])
def test_list_refusals(sql, contains):
    refused(sql, *LIST, contains=contains)


def test_list_overlap_with_the_runner_is_not_met_by_a_mapping_table():
    """A LIST query lists only the overlap with the runner's data; the runner's mapping table is not its data."""
    other = table("other_people", owner=OTHER, rule_type="LIST", columns=PEOPLE,
                  rule=list_rule(joinColumns=["pid"], listColumns=["country"]))
    refused("SELECT DISTINCT o.country FROM other_people o JOIN idmt m ON o.pid = m.sourceid JOIN visits v "
            "ON v.vid = m.targetid", other, mapping(owner=RUNNER), visits("LIST"),
            contains="Inner join to query runner table required")
