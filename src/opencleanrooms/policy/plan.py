"""plan_query: parse -> resolve -> enforce the tables' rule -> rewrite -> a Plan the engine can run.

The steps are in this order so a refusal is as specific as possible: syntax first, then which tables (not found,
no rule, mixed rules), then authorization (CUSTOM), then the rule's shape and columns. Parameters are bound before
columns are resolved so a bound value is checked like any literal written in the query.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

from opencleanrooms.policy import aggregation, custom, listing, parameters
from opencleanrooms.policy.model import Plan, QueryRequest
from opencleanrooms.policy.parse import DIALECT, parse, reject
from opencleanrooms.policy.resolve import qualify_tree, relations
from opencleanrooms.policy.wrap import output_names

_RULES = {"AGGREGATION": aggregation, "LIST": listing, "CUSTOM": custom}


def plan_query(request: QueryRequest) -> Plan:
    """Refuse the query (QueryRejected) or return its enforced, rewritten plan. Pure and deterministic."""
    tree = parse(request.sql)
    found = relations(tree, request)
    rule = _RULES[found.rule_type]
    rule.precheck(tree, found, request) if rule is custom else rule.precheck(tree)
    _name_outputs(tree)
    tree = parameters.bind(tree, request.parameters, reject)
    tree = qualify_tree(tree, found.tables)
    tree = rule.enforce(tree, found, request)
    scan_names = {name: f"t{i}" for i, name in enumerate(found.names)}
    _rename_tables(tree, scan_names)
    return Plan(rule_type=found.rule_type, tables=found.names, scan_names=scan_names,
                output_columns=tuple(output_names(tree)), tree=tree)


def _name_outputs(tree: exp.Expression) -> None:
    """Give unnamed output expressions the name Spark would show (their SQL text) before the qualifier names them
    `_col_0`."""
    select = tree
    while isinstance(select, (exp.SetOperation, exp.Subquery)):
        select = select.this
    for projection in list(select.expressions):
        if isinstance(projection, (exp.Alias, exp.Column, exp.Star)):
            continue
        projection.replace(exp.alias_(projection.copy(), projection.sql(DIALECT), quoted=True))


def _rename_tables(tree: exp.Expression, scan_names: dict[str, str]) -> None:
    for scope in traverse_scope(tree):
        for source in scope.sources.values():
            if isinstance(source, exp.Table) and source.name in scan_names:
                if not source.alias:
                    source.set("alias", exp.TableAlias(this=exp.to_identifier(source.name, quoted=True)))
                source.set("this", exp.to_identifier(scan_names[source.name], quoted=True))


def warm_up() -> None:
    """Parse, qualify, enforce and transpile a representative query once: sqlglot's first use costs far more
    than later ones."""
    from opencleanrooms.policy.model import TableInfo

    rule = {"aggregateColumns": [{"columnNames": ["id"], "function": "COUNT_DISTINCT"},
                                 {"columnNames": ["amount"], "function": "SUM"}],
            "joinColumns": ["id"], "dimensionColumns": ["region", "day"], "scalarFunctions": ["UPPER", "TRUNC"],
            "outputConstraints": [{"columnName": "id", "minimum": 2, "type": "COUNT_DISTINCT"}]}
    tables = {"warm a": TableInfo("warm a", "1", (("id", "string"), ("amount", "double"), ("region", "string"),
                                                  ("day", "date")), "AGGREGATION", rule),
              "warm_b": TableInfo("warm_b", "1", (("id", "string"), ("region", "string"), ("amount", "double"),
                                                  ("day", "date")), "AGGREGATION", rule)}
    plan = plan_query(QueryRequest(
        sql="SELECT UPPER(a.region) AS r, COUNT(DISTINCT a.id), SUM(b.amount) FROM `warm a` a JOIN warm_b b "
            "ON a.id = b.id WHERE a.day >= :d GROUP BY UPPER(a.region) HAVING SUM(b.amount) > 1 ORDER BY r",
        runner_account_id="1", tables=tables, parameters={"d": ("DATE", "2024-01-01")}))
    plan.sql("duckdb")
    plan.sql("spark")
