"""Builders for policy tests: tables with rules, requests, refusals, and running a plan in DuckDB."""

from __future__ import annotations

import duckdb
import pytest

from opencleanrooms.policy import Plan, QueryRejected, QueryRequest, TableInfo, plan_query

RUNNER = "111111111111"
OTHER = "222222222222"
THIRD = "333333333333"
TEMPLATE = "arn:aws:cleanrooms:us-east-1:111111111111:membership/m/analysistemplate/t1"


def agg_rule(**overrides) -> dict:
    rule = {
        "aggregateColumns": [{"columnNames": ["id", "hashed_email"], "function": "COUNT_DISTINCT"},
                             {"columnNames": ["amount"], "function": "SUM"},
                             {"columnNames": ["amount"], "function": "AVG"},
                             {"columnNames": ["visits"], "function": "COUNT"}],
        "joinColumns": ["id", "hashed_email"],
        "dimensionColumns": ["region", "day", "segment"],
        "scalarFunctions": ["UPPER", "TRUNC", "ROUND", "CAST", "COALESCE", "DATEADD", "EXTRACT"],
        "outputConstraints": [{"columnName": "id", "minimum": 2, "type": "COUNT_DISTINCT"}],
    }
    rule.update(overrides)
    return rule


def list_rule(**overrides) -> dict:
    rule = {"joinColumns": ["id", "hashed_email"], "listColumns": ["region", "segment", "day", "amount"]}
    rule.update(overrides)
    return rule


def custom_rule(**overrides) -> dict:
    rule = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [RUNNER]}
    rule.update(overrides)
    return rule


COLUMNS = (("id", "string"), ("hashed_email", "string"), ("region", "string"), ("segment", "string"),
           ("day", "date"), ("amount", "double"), ("visits", "bigint"), ("email", "string"))


def table(name: str, owner: str = OTHER, rule_type: str | None = "AGGREGATION", rule: dict | None = None,
          columns=COLUMNS) -> TableInfo:
    if rule is None and rule_type is not None:
        rule = {"AGGREGATION": agg_rule, "LIST": list_rule, "CUSTOM": custom_rule}[rule_type]()
    return TableInfo(name=name, owner_account_id=owner, columns=tuple(columns), rule_type=rule_type, rule=rule)


def request(sql: str, *tables: TableInfo, runner: str = RUNNER, **kwargs) -> QueryRequest:
    return QueryRequest(sql=sql, runner_account_id=runner, tables={t.name: t for t in tables}, **kwargs)


def plan(sql: str, *tables: TableInfo, **kwargs) -> Plan:
    return plan_query(request(sql, *tables, **kwargs))


def refused(sql: str, *tables: TableInfo, code: str = "MALFORMED_QUERY", contains=(), **kwargs) -> QueryRejected:
    with pytest.raises(QueryRejected) as info:
        plan_query(request(sql, *tables, **kwargs))
    error = info.value
    assert error.code == code, (error.code, error.message)
    assert len(error.message) <= 500
    for internal in ("sqlglot", "<class", "Traceback", "/work/", "Token"):
        assert internal not in error.message, error.message
    for text in ([contains] if isinstance(contains, str) else contains):
        assert text.lower() in error.message.lower(), (text, error.message)
    return error


# Rows of the standard columns; every table in execution tests gets these columns.
def load(plan_: Plan, data: dict[str, list[tuple]], columns=COLUMNS) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection holding `data` (association name -> rows) under the plan's scan names (loaded through
    Arrow: row-by-row inserts made the statistical tests slow)."""
    import pyarrow as pa
    con = duckdb.connect()
    for name, scan in plan_.scan_names.items():
        rows = data.get(name, [])
        column_sql = ", ".join(f'"{c}" {_duck_type(t)}' for c, t in columns)
        con.execute(f'CREATE TABLE "{scan}" ({column_sql})')
        if rows:
            source = pa.table({str(i): [r[i] for r in rows] for i in range(len(columns))})  # noqa: F841
            con.execute(f'INSERT INTO "{scan}" SELECT * FROM source')
    return con


def run(plan_: Plan, data: dict[str, list[tuple]], columns=COLUMNS) -> list[tuple]:
    """Run plan_.sql('duckdb') over `data`, registered under the scan names."""
    result = load(plan_, data, columns).execute(plan_.sql("duckdb"))
    names = tuple(d[0] for d in result.description)
    assert names == plan_.output_columns, (names, plan_.output_columns)
    return result.fetchall()


def _duck_type(glue: str) -> str:
    return {"string": "VARCHAR", "bigint": "BIGINT", "double": "DOUBLE", "date": "DATE",
            "timestamp": "TIMESTAMP", "boolean": "BOOLEAN"}.get(glue, glue.upper())


def row(id, region="eu", amount=1.0, *, hashed_email=None, segment="a", day="2024-01-01", visits=1, email=None):
    import datetime
    return (id, hashed_email or f"h{id}", region, segment, datetime.date.fromisoformat(day), amount, visits,
            email or f"{id}@x")
