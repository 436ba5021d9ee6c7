"""plan_query: parse -> resolve -> enforce the tables' rule -> rewrite -> a Plan the engine can run.

The steps are in this order so a refusal is as specific as possible: syntax first, then which tables (not found,
no rule, mixed rules), then authorization (CUSTOM), then the rule's shape and columns. Parameters are bound before
columns are resolved so a bound value is checked like any literal written in the query.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import traverse_scope

from opencleanrooms.policy import aggregation, custom, id_mapping, listing, parameters
from opencleanrooms.policy.model import Plan, QueryRequest
from opencleanrooms.policy.parse import DIALECT, clean, parse, reject
from opencleanrooms.policy.resolve import qualify_tree, relations, schema_of
from opencleanrooms.policy.wrap import output_names

_RULES = {"AGGREGATION": aggregation, "LIST": listing, "CUSTOM": custom}


def plan_query(request: QueryRequest) -> Plan:
    """Refuse the query (QueryRejected) or return its enforced, rewritten plan. Pure and deterministic."""
    try:
        return _plan(request)
    except RecursionError:
        reject("The query is nested too deeply to be analysed.")
    except SqlglotError as error:  # the parser or optimizer gave up on a construct: refuse, never guess
        reject(f"The query cannot be analysed: {clean(str(error).splitlines()[0])}")
    raise AssertionError("unreachable")


def _plan(request: QueryRequest) -> Plan:
    tree = request.parsed.take(request.sql) if request.parsed is not None else None
    if tree is None:
        tree = parse(request.sql)
    found = relations(tree, request)
    rule = _RULES[found.rule_type]
    rule.precheck(tree, found, request)  # what needs the query as written: `*`, authorization
    display = _name_outputs(tree)
    tree = parameters.bind(tree, request.parameters, reject)
    tree = qualify_tree(tree, found.tables)
    id_mapping.enforce(tree, found.tables)  # the managed rule of any ID mapping table read, then the inherited one
    tree = rule.enforce(tree, found, request)
    scan_names = {name: f"t{i}" for i, name in enumerate(found.names)}
    _rename_tables(tree, scan_names)
    _restore_output_case(tree, display)
    dp_aggregations = tuple({**entry, "output": display.get(entry["output"], entry["output"])}
                            for entry in tree.meta.get("dp", ()))
    outputs = tuple(e["output"] for e in dp_aggregations) if dp_aggregations else tuple(output_names(tree))
    return Plan(rule_type=found.rule_type, tables=found.names, scan_names=scan_names,
                output_columns=outputs, tree=tree,
                scan_schema={scan: schema_of(found.tables)[name] for name, scan in scan_names.items()},
                dp_aggregations=dp_aggregations, dp_release=dict(tree.meta.get("dp_release") or {}),
                dp_wrapper=tree.meta.get("dp_wrapper", ""),
                deferred_columns=tuple((display.get(o, o), t, c) for o, t, c in tree.meta.get("deferred_columns", ())))


def _outermost_select(tree: exp.Expression) -> exp.Select:
    while isinstance(tree, (exp.SetOperation, exp.Subquery)):
        tree = tree.this
    return tree


def _name_outputs(tree: exp.Expression) -> dict[str, str]:
    """Give unnamed output expressions the name Spark would show (their SQL text) before the qualifier names them
    `_col_0`. Returns lower-case name -> name as written: the qualifier lower-cases aliases (Spark compares names
    case-insensitively) but Spark's result keeps an alias's case."""
    display = {}
    for projection in list(_outermost_select(tree).expressions):
        if isinstance(projection, (exp.Column, exp.Star)):
            continue
        if not isinstance(projection, exp.Alias):
            alias = exp.Alias(alias=exp.to_identifier(projection.sql(DIALECT), quoted=True))
            projection.replace(alias)
            alias.set("this", projection)
            projection = alias
        display.setdefault(projection.alias.lower(), projection.alias)
    return display


def _restore_output_case(tree: exp.Expression, display: dict[str, str]) -> None:
    for projection in _outermost_select(tree).expressions:
        if isinstance(projection, exp.Alias) and projection.alias in display:
            projection.set("alias", exp.to_identifier(display[projection.alias], quoted=True))


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
    custom = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": ["1"], "disallowedOutputColumns": ["id"],
              "comparisonControls": {"allowedLiteralComparisonColumns": ["day"],
                                     "allowedColumnComparisonColumns": ["id", "region"]},
              "aggregationThresholds": [{"identityColumns": ["id"], "minimumIdentityCount": 2,
                                         "type": "COUNT_DISTINCT"}]}
    tables = {name: TableInfo(name, "1", info.columns, "CUSTOM", custom) for name, info in tables.items()}
    plan_query(QueryRequest(
        sql="WITH j AS (SELECT a.region, a.amount, a.id FROM `warm a` a LEFT JOIN warm_b b ON a.id = b.id "
            "WHERE a.day >= DATE '2024-01-01') SELECT region, COUNT(DISTINCT id), AVG(amount) FROM j GROUP BY region",
        runner_account_id="1", tables=tables)).sql("duckdb")
