"""The LIST analysis rule: `SELECT DISTINCT` of list columns over INNER JOINs on join columns, a function-free
WHERE over list columns, and an optional LIMIT (clean-rooms-semantics §4.6).

Every table not owned by the member running the query must be inner-joined, directly or transitively, to one that
is (the overlap requirement), so a LIST query can only ever list rows that match the runner's own data.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import build_scope

from opencleanrooms.policy import common
from opencleanrooms.policy.common import ARITHMETIC, COMPARISONS, is_literal
from opencleanrooms.policy.model import QueryRequest
from opencleanrooms.policy.parse import fragment, reject
from opencleanrooms.policy.resolve import Relations, source_tables

LABEL = "LIST"


def precheck(tree: exp.Expression, relations: Relations, request: QueryRequest) -> None:
    if tree.find(exp.Star) is not None:
        reject("`*` is not allowed: the LIST rule requires naming each list column.")


def enforce(tree: exp.Expression, relations: Relations, request: QueryRequest) -> exp.Expression:
    if isinstance(tree, exp.SetOperation):
        reject(f"{tree.key.upper()} is not allowed: the LIST rule allows a single SELECT DISTINCT.")
    if tree.args.get("with"):
        reject("WITH (common table expressions) is not allowed: the LIST rule allows a single SELECT DISTINCT.")
    for node in tree.walk():
        if node is not tree and isinstance(node, (exp.Select, exp.Subquery, exp.Exists, exp.SetOperation)):
            reject(f"Subqueries are not allowed: the LIST rule allows a single SELECT DISTINCT (`{fragment(node)}`).")
        if isinstance(node, exp.AggFunc) or isinstance(node, exp.Window):
            reject(f"Functions are not allowed by the LIST rule: `{fragment(node)}`.")
    common.check_clauses(tree, {"expressions", "from", "from_", "joins", "where", "group", "having", "order",
                                "limit", "offset", "qualify", "distinct", "windows", "cluster", "distribute", "sort",
                                "with"}, LABEL)
    for clause, label in (("group", "GROUP BY"), ("having", "HAVING"), ("order", "ORDER BY"), ("offset", "OFFSET"),
                          ("qualify", "QUALIFY"), ("cluster", "CLUSTER BY"), ("distribute", "DISTRIBUTE BY"),
                          ("sort", "SORT BY"), ("windows", "WINDOW")):
        if tree.args.get(clause):
            reject(f"{label} is not allowed by the LIST rule (SELECT DISTINCT ... FROM ... [WHERE] [LIMIT]).")
    distinct = tree.args.get("distinct")
    if distinct is None or distinct.args.get("on"):
        reject("A LIST query must be SELECT DISTINCT of list columns (LIST rule).")
    limit = tree.args.get("limit")
    if limit is not None and not (isinstance(limit.expression, exp.Literal) and limit.expression.is_int):
        reject(f"LIMIT must be a whole number: `{fragment(limit)}` (LIST rule).")
    aliases = source_tables(build_scope(tree))
    tables = relations.tables

    def kind(column: exp.Column) -> str:
        rule = tables[aliases[column.table]].rule or {}
        return "join" if column.name in (rule.get("joinColumns") or []) else "other"

    def listed(column: exp.Column, where: str) -> None:
        table = aliases[column.table]
        if column.name not in ((tables[table].rule or {}).get("listColumns") or []):
            reject(f"Column `{column.name}` of table `{table}` cannot be used in {where}: the LIST rule of "
                   f"`{table}` lists it in no listColumns.")

    edges = common.check_joins(tree, aliases, tables, LABEL, kind)
    common.require_runner_join(aliases, edges, tables, request.runner_account_id, lambda info: True,
                               "the LIST rule lists only the overlap with the data of the member running the "
                               "query, so `{table}` must be INNER JOINed, directly or through other tables, to one "
                               "of that member's tables.")
    for projection in tree.expressions:
        value = projection.unalias()
        if not isinstance(value, exp.Column):
            reject(f"`{fragment(value)}` is not allowed in SELECT: the LIST rule allows only list columns "
                   f"(with aliases), no functions or expressions.")
        listed(value, "SELECT")
    if tree.args.get("where"):
        _where(tree.args["where"].this, listed)
    return tree


def _where(node: exp.Expression, listed) -> None:
    if isinstance(node, (exp.And, exp.Or)):
        _where(node.this, listed)
        _where(node.expression, listed)
    elif isinstance(node, (exp.Not, exp.Paren)):
        _where(node.this, listed)
    elif isinstance(node, (*COMPARISONS, exp.Like, exp.Is, exp.In)):
        if isinstance(node, exp.In) and (node.args.get("query") or node.args.get("unnest")):
            reject(f"Subqueries are not allowed in WHERE: `{fragment(node)}` (LIST rule).")
        for child in node.iter_expressions():
            _operand(child, listed)
    else:
        reject(f"`{fragment(node)}` is not allowed in WHERE: the LIST rule allows comparisons (=, <>, <, >, <=, >=, "
               f"IN, LIKE, IS NULL) of list columns, literals and math operators, combined with AND, OR and NOT.")


def _operand(node: exp.Expression, listed) -> None:
    if isinstance(node, exp.Column):
        listed(node, "WHERE")
    elif isinstance(node, (exp.Literal, exp.Boolean, exp.Null)):
        return
    elif isinstance(node, (*ARITHMETIC, exp.Neg, exp.Paren)):
        for child in node.iter_expressions():
            _operand(child, listed)
    elif is_literal(node):  # a typed literal (DATE '...') or a bound date/timestamp parameter
        return
    else:
        reject(f"`{fragment(node)}` is not allowed in WHERE: the LIST rule allows no functions, only list columns, "
               f"literals and math operators.")
