"""Attempts to get around the rules. Every one must be refused (QueryRejected); the description says what it
tries. Codes are asserted where the contract fixes them."""

from __future__ import annotations

import pytest

from opencleanrooms.policy import QueryRejected, plan_query
from tests.policy.helpers import OTHER, RUNNER, TEMPLATE, agg_rule, custom_rule, request, table

AGG = (table("sales", owner=OTHER, rule=agg_rule(joinRequired="QUERY_RUNNER")), table("mine", owner=RUNNER))
LIST = (table("sales", owner=OTHER, rule_type="LIST"), table("mine", owner=RUNNER, rule_type="LIST"))
MINE_CUSTOM = table("mine", owner=RUNNER, rule_type="CUSTOM")
CUSTOM = (table("sales", owner=OTHER, rule_type="CUSTOM"), MINE_CUSTOM)
HIDE = (table("sales", owner=OTHER, rule_type="CUSTOM", rule=custom_rule(disallowedOutputColumns=["email"])),
        MINE_CUSTOM)
THRESH = (table("sales", owner=OTHER, rule_type="CUSTOM", rule=custom_rule(aggregationThresholds=[
    {"identityColumns": ["id"], "minimumIdentityCount": 5, "type": "COUNT_DISTINCT"}])), MINE_CUSTOM)
COMPARE = (table("sales", owner=OTHER, rule_type="CUSTOM", rule=custom_rule(comparisonControls={
    "allowedLiteralComparisonColumns": ["region"], "allowedColumnComparisonColumns": ["id"]})), MINE_CUSTOM)
J = "FROM sales s JOIN mine m ON s.id = m.id"

CORPUS = [
    # --- hidden aggregation / aggregates of expressions (AGGREGATION)
    ("CASE inside SUM", AGG, f"SELECT SUM(CASE WHEN s.email = 'a@x' THEN 1 ELSE 0 END) {J}"),
    ("CASE inside COUNT", AGG, f"SELECT COUNT(CASE WHEN s.amount > 100 THEN s.id END) {J}"),
    ("IF inside SUM", AGG, f"SELECT SUM(IF(s.region = 'eu', s.amount, 0)) {J}"),
    ("arithmetic inside SUM", AGG, f"SELECT SUM(s.amount * 1000) {J}"),
    ("function inside COUNT DISTINCT", AGG, f"SELECT COUNT(DISTINCT upper(s.id)) {J}"),
    ("COUNT DISTINCT of two columns", AGG, f"SELECT COUNT(DISTINCT s.id, s.hashed_email) {J}"),
    ("MIN of a metric", AGG, f"SELECT MIN(s.amount) {J}"),
    ("collect_list leaks values", AGG, f"SELECT collect_list(s.email) {J}"),
    ("FILTER clause on aggregate", AGG, f"SELECT COUNT(s.visits) FILTER (WHERE s.email = 'a') {J}"),
    ("nested aggregate", AGG, f"SELECT SUM(SUM(s.amount)) {J}"),
    ("scalar over metric column outside aggregate", AGG, f"SELECT ROUND(s.amount), COUNT(DISTINCT s.id) {J} GROUP BY 1"),
    ("no aggregate at all", AGG, f"SELECT s.region {J} GROUP BY s.region"),
    ("dimension and metric without aggregation", AGG, f"SELECT s.region, s.amount {J}"),
    # --- join columns
    ("select a join column", AGG, f"SELECT s.id, COUNT(DISTINCT s.id) {J} GROUP BY s.id"),
    ("filter on a join column", AGG, f"SELECT COUNT(DISTINCT s.id) {J} WHERE s.id = '42'"),
    ("filter on a join column with LIKE", AGG, f"SELECT COUNT(DISTINCT s.id) {J} WHERE s.id LIKE '4%'"),
    ("group by a join column", AGG, f"SELECT COUNT(DISTINCT s.id) {J} GROUP BY s.hashed_email"),
    ("order by a join column", AGG, f"SELECT s.region, COUNT(DISTINCT s.id) {J} GROUP BY s.region ORDER BY s.id"),
    ("join columns combined with OR", AGG,
     "SELECT COUNT(DISTINCT s.id) FROM sales s JOIN mine m ON s.id = m.id OR s.hashed_email = m.hashed_email"),
    ("join condition with a literal", AGG, "SELECT COUNT(DISTINCT s.id) FROM sales s JOIN mine m ON s.id = '42'"),
    ("join condition with inequality", AGG, "SELECT COUNT(DISTINCT s.id) FROM sales s JOIN mine m ON s.id > m.id"),
    ("join filter smuggled into ON", AGG,
     "SELECT COUNT(DISTINCT s.id) FROM sales s JOIN mine m ON s.id = m.id AND s.region = 'eu'"),
    ("HAVING on a join column", AGG, f"SELECT COUNT(DISTINCT s.id) {J} HAVING s.id = '1'"),
    ("HAVING comparing two aggregates", AGG, f"SELECT COUNT(DISTINCT s.id) {J} HAVING SUM(s.amount) > AVG(s.amount)"),
    ("missing required join", AGG, "SELECT s.region, COUNT(DISTINCT s.id) FROM sales s GROUP BY s.region"),
    ("self join instead of runner join", AGG,
     "SELECT COUNT(DISTINCT a.id) FROM sales a JOIN sales b ON a.id = b.id"),
    ("left join keeps unmatched rows", AGG, "SELECT COUNT(DISTINCT s.id) FROM sales s LEFT JOIN mine m ON s.id = m.id"),
    ("comma join", AGG, "SELECT COUNT(DISTINCT s.id) FROM sales s, mine m WHERE s.id = m.id"),
    ("natural join", AGG, "SELECT COUNT(DISTINCT s.id) FROM sales s NATURAL JOIN mine m"),
    # --- structure on AGGREGATION
    ("subquery in FROM", AGG, f"SELECT COUNT(DISTINCT x.id) FROM (SELECT s.id {J}) x"),
    ("CTE", AGG, f"WITH x AS (SELECT s.id, s.region {J}) SELECT COUNT(DISTINCT id) FROM x"),
    ("UNION", AGG, f"SELECT COUNT(DISTINCT s.id) {J} UNION SELECT COUNT(DISTINCT m.id) FROM mine m"),
    ("scalar subquery in WHERE", AGG, f"SELECT COUNT(DISTINCT s.id) {J} WHERE s.region = (SELECT MAX(m.region) FROM mine m)"),
    ("IN subquery", AGG, f"SELECT COUNT(DISTINCT s.id) {J} WHERE s.region IN (SELECT m.region FROM mine m)"),
    ("window function", AGG, f"SELECT SUM(s.amount) OVER (PARTITION BY s.region) {J}"),
    ("window over aggregate", AGG, f"SELECT s.region, RANK() OVER (ORDER BY SUM(s.amount)) {J} GROUP BY s.region"),
    ("star", AGG, f"SELECT * {J}"),
    ("COUNT star", AGG, f"SELECT COUNT(*) {J}"),
    ("LIMIT to isolate a row", AGG, f"SELECT s.region, COUNT(DISTINCT s.id) {J} GROUP BY s.region LIMIT 1"),
    ("ROLLUP over a non-dimension column", AGG, f"SELECT COUNT(DISTINCT s.id) {J} GROUP BY ROLLUP(s.email)"),
    ("GROUPING SETS", AGG, f"SELECT COUNT(DISTINCT s.id) {J} GROUP BY GROUPING SETS ((s.email), ())"),
    ("GROUP BY ALL", AGG, f"SELECT s.region, COUNT(DISTINCT s.id) {J} GROUP BY ALL"),
    ("SELECT DISTINCT", AGG, f"SELECT DISTINCT s.region, COUNT(DISTINCT s.id) {J} GROUP BY s.region"),
    # --- file and table functions
    ("read_files", AGG, "SELECT COUNT(*) FROM read_files('/etc/passwd')"),
    ("parquet path", AGG, "SELECT * FROM parquet.`/etc/passwd`"),
    ("csv path", CUSTOM, "SELECT * FROM csv.`/data/other/customers.csv`"),
    ("json path", CUSTOM, "SELECT * FROM json.`s3://bucket/key.json`"),
    ("read_parquet", CUSTOM, "SELECT * FROM read_parquet('/etc/passwd')"),
    ("range table function", CUSTOM, "SELECT * FROM range(10)"),
    ("explode in FROM", CUSTOM, "SELECT * FROM explode(array(1, 2))"),
    ("lateral view explode", CUSTOM, "SELECT s.region FROM sales s LATERAL VIEW explode(array(1)) t AS x"),
    ("reflect into the JVM", CUSTOM, "SELECT reflect('java.lang.System', 'getenv', 'HOME') FROM sales"),
    ("java_method", CUSTOM, "SELECT java_method('java.lang.Runtime', 'getRuntime') FROM sales"),
    ("input_file_name", CUSTOM, "SELECT input_file_name(), COUNT(*) FROM sales GROUP BY 1"),
    ("engine-specific function", CUSTOM, "SELECT getenv('HOME'), COUNT(*) FROM sales GROUP BY 1"),
    # --- statements
    ("two statements", AGG, f"SELECT COUNT(DISTINCT s.id) {J}; DROP TABLE sales"),
    ("statement after comment", AGG, f"SELECT COUNT(DISTINCT s.id) {J} /* x */; SELECT * FROM sales"),
    ("SET", CUSTOM, "SET spark.sql.ansi.enabled = false"),
    ("USE", CUSTOM, "USE other_collaboration"),
    ("CACHE", CUSTOM, "CACHE TABLE sales"),
    ("INSERT", CUSTOM, "INSERT INTO mine SELECT * FROM sales"),
    ("CREATE TABLE AS", CUSTOM, "CREATE TABLE leak AS SELECT * FROM sales"),
    ("CREATE VIEW", CUSTOM, "CREATE VIEW v AS SELECT * FROM sales"),
    ("DELETE", CUSTOM, "DELETE FROM sales"),
    ("SELECT INTO", CUSTOM, "SELECT s.region INTO leak FROM sales s"),
    ("session variable", CUSTOM, "SELECT ${hivevar:x} FROM sales"),
    # --- names
    ("table of another collaboration", CUSTOM, "SELECT COUNT(*) FROM other_customers"),
    ("qualified table name", CUSTOM, "SELECT COUNT(*) FROM default.sales"),
    ("catalog-qualified name", CUSTOM, "SELECT COUNT(*) FROM spark_catalog.db.sales"),
    ("unicode look-alike table name", LIST, "SELECT DISTINCT s.region FROM ѕales s JOIN mine m ON s.id = m.id"),
    ("unicode look-alike column", LIST, "SELECT DISTINCT s.regіon FROM sales s JOIN mine m ON s.id = m.id"),
    ("backtick column not allowed", LIST, "SELECT DISTINCT s.`email` FROM sales s JOIN mine m ON s.id = m.id"),
    ("double-quoted column not allowed", LIST, 'SELECT DISTINCT s."EMAIL" FROM sales s JOIN mine m ON s.id = m.id'),
    ("upper-case column", LIST, "SELECT DISTINCT S.EMAIL FROM SALES S JOIN MINE M ON S.ID = M.ID"),
    ("comment hides a column", LIST, "SELECT DISTINCT s.region, /* harmless */ s.email FROM sales s JOIN mine m ON s.id = m.id"),
    ("line comment swallows the join", LIST, "SELECT DISTINCT s.region FROM sales s -- JOIN mine m ON s.id = m.id"),
    ("column hidden in alias quoting", LIST, "SELECT DISTINCT s.email AS `region` FROM sales s JOIN mine m ON s.id = m.id"),
    # --- parameters
    ("parameter injection attempt", AGG, f"SELECT s.region, COUNT(DISTINCT s.id) {J} WHERE s.region = :r GROUP BY s.region",
     {"parameters": {"r": ("INTEGER", "1 OR 1=1")}}),
    ("parameter without value", AGG, f"SELECT s.region, COUNT(DISTINCT s.id) {J} WHERE s.region = :r GROUP BY s.region"),
    ("parameter in LIMIT", LIST, "SELECT DISTINCT s.region FROM sales s JOIN mine m ON s.id = m.id LIMIT :n",
     {"parameters": {"n": ("INTEGER", "1")}}),
    ("parameter as table", CUSTOM, "SELECT COUNT(*) FROM :t", {"parameters": {"t": ("VARCHAR", "sales")}}),
    # --- LIST
    ("LIST with a function", LIST, "SELECT DISTINCT upper(s.region) FROM sales s JOIN mine m ON s.id = m.id"),
    ("LIST with a function in WHERE", LIST,
     "SELECT DISTINCT s.region FROM sales s JOIN mine m ON s.id = m.id WHERE length(s.email) > 3"),
    ("LIST select of a non-list column", LIST, "SELECT DISTINCT s.email FROM sales s JOIN mine m ON s.id = m.id"),
    ("LIST select of a join column", LIST, "SELECT DISTINCT s.id FROM sales s JOIN mine m ON s.id = m.id"),
    ("LIST without overlap", LIST, "SELECT DISTINCT s.region FROM sales s"),
    ("LIST aggregate", LIST, "SELECT DISTINCT COUNT(s.region) FROM sales s JOIN mine m ON s.id = m.id"),
    ("LIST subquery", LIST, "SELECT DISTINCT x.region FROM (SELECT s.region FROM sales s) x JOIN mine m ON 1 = 1"),
    ("LIST without DISTINCT", LIST, "SELECT s.region FROM sales s JOIN mine m ON s.id = m.id"),
    ("LIST cast", LIST, "SELECT DISTINCT CAST(s.region AS INT) FROM sales s JOIN mine m ON s.id = m.id"),
    # --- CUSTOM disallowed output columns
    ("disallowed column via alias", HIDE, "SELECT s.region, s.email AS e, COUNT(*) FROM sales s GROUP BY 1, 2"),
    ("disallowed column via CTE", HIDE,
     "WITH x AS (SELECT s.email AS e, s.id FROM sales s) SELECT e, COUNT(*) FROM x GROUP BY e"),
    ("disallowed column via CONCAT", HIDE,
     "SELECT concat(s.region, s.email), COUNT(*) FROM sales s GROUP BY 1"),
    ("disallowed column via MIN", HIDE, "SELECT s.region, MIN(s.email) FROM sales s GROUP BY s.region"),
    ("disallowed column via MAX in subquery", HIDE,
     "SELECT s.region, COUNT(*), (SELECT MAX(x.email) FROM sales x) FROM sales s GROUP BY s.region"),
    ("disallowed column via window", HIDE,
     "SELECT s.region, FIRST_VALUE(s.email) OVER (PARTITION BY s.region) FROM sales s"),
    ("disallowed column via CASE", HIDE,
     "SELECT CASE WHEN s.region = 'eu' THEN s.email END, COUNT(*) FROM sales s GROUP BY 1"),
    ("disallowed column via UNION", HIDE,
     "SELECT s.region, COUNT(*) FROM sales s GROUP BY 1 UNION ALL SELECT s.email, 1 FROM sales s"),
    ("disallowed column behind a duplicate CTE column name", HIDE,
     "WITH c AS (SELECT s.region AS x, s.email AS x FROM sales s) SELECT x FROM c"),
    ("disallowed column renamed by derived-table column aliases", HIDE,
     "SELECT c1 FROM (SELECT s.email FROM sales s) AS t(c1)"),
    ("disallowed column renamed by a CTE column list", HIDE,
     "WITH c(x) AS (SELECT s.email FROM sales s) SELECT x FROM c"),
    ("disallowed column via star", HIDE, "SELECT * FROM sales"),
    # --- CUSTOM thresholds
    ("identity dropped in CTE aggregation", THRESH,
     "WITH x AS (SELECT s.region, COUNT(*) AS c FROM sales s GROUP BY s.region) SELECT region, SUM(c) FROM x GROUP BY region"),
    ("DISTINCT subquery drops identity", THRESH,
     "SELECT region, COUNT(*) FROM (SELECT DISTINCT s.region, s.segment FROM sales s) GROUP BY region"),
    ("non-aggregate final query", THRESH, "SELECT s.region, s.amount FROM sales s"),
    ("window in intermediate", THRESH,
     "WITH x AS (SELECT s.region, ROW_NUMBER() OVER (PARTITION BY s.id ORDER BY s.day) AS rn FROM sales s) "
     "SELECT region, COUNT(*) FROM x WHERE rn = 1 GROUP BY region"),
    ("table only in a WHERE subquery", THRESH,
     "SELECT m.region, COUNT(*) FROM mine m WHERE m.id IN (SELECT s.id FROM sales s) GROUP BY m.region"),
    ("table only in a semi join", THRESH,
     "SELECT m.region, COUNT(*) FROM mine m LEFT SEMI JOIN sales s ON m.id = s.id GROUP BY m.region"),
    ("aggregate only inside a scalar subquery", THRESH, "SELECT (SELECT COUNT(*) FROM mine) FROM sales"),
    ("collect_list returns every identity's value", THRESH,
     "SELECT s.region, collect_list(s.email) FROM sales s GROUP BY s.region"),
    ("string_agg through a CTE", THRESH,
     "WITH x AS (SELECT s.region, s.email FROM sales s) SELECT region, string_agg(email, ',') FROM x GROUP BY region"),
    ("transformed aggregate (COLUMNS_ONLY default)", THRESH,
     "SELECT s.region, SUM(s.amount * 100) FROM sales s GROUP BY s.region"),
    # --- CUSTOM comparison controls
    ("compare through CTE alias", COMPARE,
     "WITH x AS (SELECT s.segment AS g, s.id FROM sales s) SELECT COUNT(*) FROM x WHERE g = 'a'"),
    ("compare through function", COMPARE, "SELECT COUNT(*) FROM sales s WHERE lower(s.segment) = 'a'"),
    ("compare via JOIN", COMPARE, "SELECT COUNT(*) FROM sales s JOIN mine m ON s.segment = m.segment"),
    ("compare via BETWEEN", COMPARE, "SELECT COUNT(*) FROM sales s WHERE s.amount BETWEEN 10 AND 11"),
    ("compare via IN list", COMPARE, "SELECT COUNT(*) FROM sales s WHERE s.segment IN ('a', 'b')"),
    ("compare via GROUP BY", COMPARE, "SELECT s.segment, COUNT(*) FROM sales s GROUP BY s.segment"),
    ("compare through a CTE column list", COMPARE, "WITH c(g) AS (SELECT s.segment FROM sales s) "
     "SELECT COUNT(*) FROM c WHERE g = 'a'"),
    ("compare via GROUP BY ALL", COMPARE, "SELECT s.segment, COUNT(*) FROM sales s GROUP BY ALL"),
    ("compare via rlike", COMPARE, "SELECT COUNT(*) FROM sales s WHERE s.segment RLIKE '^a'"),
    ("compare inside a lambda", COMPARE,
     "SELECT SUM(CAST(exists(array(s.segment), x -> x = 'a') AS INT)) FROM sales s"),
    ("compare via INTERSECT ALL with a literal row", COMPARE,
     "SELECT s.segment FROM sales s INTERSECT ALL SELECT 'a'"),
    ("compare via EXCEPT", COMPARE, "SELECT s.segment FROM sales s EXCEPT SELECT m.segment FROM mine m"),
    ("compare via window ORDER BY range", COMPARE,
     "SELECT COUNT(*) OVER (ORDER BY s.amount RANGE BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM sales s"),
    ("endless recursive CTE", CUSTOM,
     "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT r.n FROM r JOIN sales s ON TRUE"),
    ("inline VALUES table", CUSTOM, "SELECT v.a FROM sales s JOIN VALUES (1) AS v(a) ON TRUE"),
    ("compare via NULLIF", COMPARE, "SELECT COUNT(NULLIF(s.segment, 'a')) FROM sales s"),
    # --- authorization
    ("query string on template-only table", (table("sales", owner=OTHER, rule_type="CUSTOM",
                                                   rule=custom_rule(allowedAnalyses=[TEMPLATE])),),
     "SELECT COUNT(*) FROM sales"),
]

# The reason each attempt must be refused for (a fragment of the message): a refusal for an unrelated reason would
# hide a hole in the check the attempt targets.
REASON = {
    "CASE inside SUM": "single column", "CASE inside COUNT": "single column", "IF inside SUM": "single column",
    "arithmetic inside SUM": "single column", "function inside COUNT DISTINCT": "single column",
    "COUNT DISTINCT of two columns": "exactly one column", "MIN of a metric": "MIN is not allowed",
    "collect_list leaks values": "is not allowed", "FILTER clause on aggregate": "FILTER",
    "nested aggregate": "single column", "scalar over metric column outside aggregate": "dimensionColumns",
    "no aggregate at all": "at least one aggregate", "dimension and metric without aggregation": "dimensionColumns",
    "select a join column": "Join column `id`", "filter on a join column": "in WHERE",
    "filter on a join column with LIKE": "in WHERE", "group by a join column": "in GROUP BY",
    "order by a join column": "in ORDER BY", "join columns combined with OR": "allowedJoinOperators",
    "join condition with a literal": "only join columns", "join condition with inequality": "with `=`",
    "join filter smuggled into ON": "joinColumns", "HAVING on a join column": "HAVING",
    "HAVING comparing two aggregates": "HAVING", "missing required join": "Inner join to query runner table",
    "self join instead of runner join": "Inner join to query runner table", "left join keeps unmatched rows": "LEFT JOIN",
    "comma join": "CROSS JOIN", "natural join": "joinColumns", "subquery in FROM": "Subqueries",
    "CTE": "Subqueries", "UNION": "UNION", "scalar subquery in WHERE": "Subqueries", "IN subquery": "Subqueries",
    "window function": "Window functions", "window over aggregate": "Window functions", "star": "`*`",
    "COUNT star": "`*`", "LIMIT to isolate a row": "LIMIT", "ROLLUP over a non-dimension column": "ROLLUP",
    "GROUPING SETS": "GROUPING SETS", "GROUP BY ALL": "ALL", "SELECT DISTINCT": "SELECT DISTINCT",
    "read_files": "Table-valued", "parquet path": "Reading files", "csv path": "Reading files",
    "json path": "Reading files", "read_parquet": "parquet", "range table function": "Table-valued",
    "explode in FROM": "Table-valued", "lateral view explode": "LATERAL VIEW", "reflect into the JVM": "REFLECT",
    "java_method": "JAVA_METHOD", "input_file_name": "INPUT_FILE_NAME", "engine-specific function": "GETENV",
    "two statements": "2 statements", "statement after comment": "2 statements", "SET": "SET", "USE": "USE",
    "CACHE": "CACHE", "INSERT": "INSERT", "CREATE TABLE AS": "CREATE", "CREATE VIEW": "CREATE", "DELETE": "DELETE",
    "SELECT INTO": "INTO", "session variable": "variable", "table of another collaboration": "not a table associated",
    "qualified table name": "not a table associated", "catalog-qualified name": "not a table associated",
    "unicode look-alike table name": "not a table associated", "unicode look-alike column": "column",
    "backtick column not allowed": "listColumns", "double-quoted column not allowed": "listColumns",
    "upper-case column": "listColumns", "comment hides a column": "listColumns",
    "line comment swallows the join": "Inner join to query runner table",
    "column hidden in alias quoting": "listColumns", "parameter injection attempt": "not a valid INTEGER",
    "parameter without value": "has no value", "parameter in LIMIT": "LIMIT",
    "parameter as table": "not a table associated", "LIST with a function": "LIST rule allows only list columns",
    "LIST with a function in WHERE": "no functions", "LIST select of a non-list column": "listColumns",
    "LIST select of a join column": "listColumns", "LIST without overlap": "Inner join to query runner table",
    "LIST aggregate": "Functions are not allowed", "LIST subquery": "Subqueries", "LIST without DISTINCT": "DISTINCT",
    "LIST cast": "LIST rule allows only list columns",
    **{d: "disallowedOutputColumns" for d in (
        "disallowed column via alias", "disallowed column via CTE", "disallowed column via CONCAT",
        "disallowed column via MIN", "disallowed column via MAX in subquery", "disallowed column via window",
        "disallowed column via CASE", "disallowed column via UNION", "disallowed column via star",
        "disallowed column behind a duplicate CTE column name",
        "disallowed column renamed by derived-table column aliases", "disallowed column renamed by a CTE column list")},
    "identity dropped in CTE aggregation": "intermediate aggregation",
    "DISTINCT subquery drops identity": "DISTINCT", "non-aggregate final query": "must aggregate",
    "window in intermediate": "window function", "table only in a WHERE subquery": "do not reach",
    "transformed aggregate (COLUMNS_ONLY default)": "COLUMNS_ONLY",
    "aggregate only inside a scalar subquery": "must aggregate", "table only in a semi join": "do not reach",
    "collect_list returns every identity's value": "individual values",
    "string_agg through a CTE": "individual values",
    **{d: "comparisonControls" for d in (
        "compare through CTE alias", "compare through function", "compare via JOIN", "compare via BETWEEN",
        "compare via IN list", "compare via GROUP BY", "compare via GROUP BY ALL", "compare through a CTE column list", "compare via rlike", "compare via NULLIF",
        "compare via INTERSECT ALL with a literal row", "compare via EXCEPT", "compare via window ORDER BY range")},
    "compare inside a lambda": "lambda", "endless recursive CTE": "RECURSIVE", "inline VALUES table": "VALUES",
    "query string on template-only table": "does not allow",
}


@pytest.mark.parametrize("case", CORPUS, ids=[case[0] for case in CORPUS])
def test_bypass_is_refused(case):
    description, tables, sql, *rest = case
    kwargs = rest[0] if rest else {}
    with pytest.raises(QueryRejected) as info:
        plan_query(request(sql, *tables, **kwargs))
    assert REASON[description].lower() in info.value.message.lower(), info.value.message


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 70
    assert len({case[0] for case in CORPUS}) == len(CORPUS)
    assert set(REASON) == {case[0] for case in CORPUS}


@pytest.mark.parametrize("sql, code", [
    ("SELECT * FROM parquet.`/etc/passwd`", "MALFORMED_QUERY"),
    ("SELECT COUNT(*) FROM other_customers", "RESOURCE_NOT_FOUND"),
    ("SELECT COUNT(*) FROM default.sales", "RESOURCE_NOT_FOUND"),
])
def test_codes_of_relation_bypasses(sql, code):
    with pytest.raises(QueryRejected) as info:
        plan_query(request(sql, *CUSTOM))
    assert info.value.code == code
