"""Checks shared by the AGGREGATION and LIST rules: literals, the scalar-function vocabulary, INNER JOIN
conditions and the "inner join to a query runner table" requirement.

Both rules describe a fixed query shape, so these checks accept node kinds from a list and refuse everything else:
a construct sqlglot adds later is refused until someone decides it is safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache

import sqlglot
from sqlglot import exp

from opencleanrooms.policy import id_mapping
from opencleanrooms.policy.model import TableInfo
from opencleanrooms.policy.parse import DIALECT, fragment, reject

COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ)
ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.IntDiv)
# Spark spellings of the Clean Rooms scalar functions (ScalarFunctions enum); the node kinds they parse to are
# what a query may use once the function's name is in the rule's scalarFunctions.
_SCALAR_SPELLINGS = {
    "ABS": ["abs(x)"],
    "CAST": ["cast(x as int)", "try_cast(x as int)"],
    "CONVERT": ["cast(x as int)", "try_cast(x as int)"],
    "CEILING": ["ceiling(x)", "ceil(x)"],
    "COALESCE": ["coalesce(x, 1)", "nvl(x, 1)", "ifnull(x, 1)"],
    "CURRENT_DATE": ["current_date()"],
    "GETDATE": ["current_timestamp()"],
    "DATEADD": ["date_add(x, 1)", "date_sub(x, 1)", "dateadd(day, 1, x)", "timestampadd(day, 1, x)",
                "add_months(x, 1)"],
    "EXTRACT": ["extract(year from x)", "year(x)", "month(x)", "day(x)", "dayofmonth(x)", "quarter(x)",
                "hour(x)", "minute(x)", "second(x)", "dayofweek(x)", "dayofyear(x)", "weekofyear(x)"],
    "FLOOR": ["floor(x)"],
    "LN": ["ln(x)"],
    "LOG": ["log(10, x)", "log10(x)", "log2(x)"],
    "LOWER": ["lower(x)"],
    "UPPER": ["upper(x)"],
    "ROUND": ["round(x, 1)"],
    "SQRT": ["sqrt(x)"],
    "SUBSTRING": ["substring(x, 1, 2)", "substr(x, 1)", "left(x, 1)", "right(x, 1)"],
    "TO_CHAR": ["to_char(x, 'yyyy')", "date_format(x, 'yyyy')"],
    "TO_DATE": ["to_date(x)", "to_date(x, 'yyyy')"],
    "TO_NUMBER": ["to_number(x, '999')"],
    "TO_TIMESTAMP": ["to_timestamp(x, 'yyyy')"],
    "TRUNC": ["trunc(x, 'MM')", "date_trunc('MM', x)"],
    # TRIM and RTRIM share a node kind: told apart in scalar_names
}


@lru_cache(maxsize=1)
def _scalar_classes() -> dict[type, frozenset[str]]:
    names: dict[type, set[str]] = {}
    for name, spellings in _SCALAR_SPELLINGS.items():
        for spelling in spellings:
            names.setdefault(type(sqlglot.parse_one(spelling, read=DIALECT)), set()).add(name)
    return {kind: frozenset(found) for kind, found in names.items()}


def extract_classes() -> tuple[type, ...]:
    return tuple(kind for kind, names in _scalar_classes().items() if "EXTRACT" in names)


def scalar_names(node: exp.Expression) -> frozenset[str]:
    """The Clean Rooms scalar function names a function node counts as (empty: not a scalar function)."""
    if isinstance(node, exp.Trim):
        position = (node.args.get("position") or "").upper()
        return frozenset({"RTRIM", "TRIM"}) if position == "TRAILING" else frozenset({"TRIM"})
    if isinstance(node, (exp.Cast, exp.TryCast)):
        names = {"CAST", "CONVERT"}
        if node.to.is_type(*exp.DataType.TEMPORAL_TYPES) and not node.to.is_type("date"):
            names.add("TO_TIMESTAMP")
        if node.to.is_type("date"):
            names.add("TO_DATE")
        return frozenset(names)
    return _scalar_classes().get(type(node), frozenset())


def is_implicit(node: exp.Expression) -> bool:
    """A node sqlglot adds around an argument (year(d) parses as YEAR(TS_OR_DS_TO_DATE(d)))."""
    return isinstance(node, exp.TsOrDsToDate) and isinstance(node.parent, extract_classes()) \
        and node.arg_key == "this"


def is_literal(node: exp.Expression) -> bool:
    """A constant written in the query (or a bound parameter): numbers, strings, booleans, NULL, typed literals."""
    if isinstance(node, (exp.Literal, exp.Boolean, exp.Null)):
        return True
    if isinstance(node, exp.Neg):
        return is_literal(node.this)
    if isinstance(node, exp.Paren):
        return is_literal(node.this)
    if isinstance(node, (exp.Cast, exp.TryCast)) and isinstance(node.this, exp.Literal):
        return True
    if isinstance(node, exp.Interval):
        return is_literal(node.this)
    return False


def is_numeric_literal(node: exp.Expression) -> bool:
    """A number written in the query or bound from a numeric parameter (`-5`, `CAST(1.5 AS DOUBLE)`)."""
    while isinstance(node, (exp.Neg, exp.Paren, exp.Cast, exp.TryCast)):
        node = node.this
    return isinstance(node, exp.Literal) and not node.is_string


def join_operators(rule: Mapping) -> frozenset[str]:
    """allowedJoinOperators; absent means AND (model default). An explicit empty list: a single condition only."""
    if "allowedJoinOperators" not in rule or rule.get("allowedJoinOperators") is None:
        return frozenset({"AND"})
    return frozenset(rule["allowedJoinOperators"])


def check_joins(select: exp.Select, aliases: Mapping[str, str], tables: Mapping[str, TableInfo], rule_label: str,
                column_kind: Callable[[exp.Column], str]) -> list[tuple[str, str]]:
    """Every join is an INNER JOIN ... ON whose condition compares join columns of two tables with `=`, combined
    only with the operators every table involved allows. Returns the alias pairs the conditions link."""
    edges: list[tuple[str, str]] = []
    for join in select.args.get("joins") or []:
        side, kind, method = join.side.upper(), join.kind.upper(), join.method.upper()
        if side or method or kind not in ("", "INNER"):
            what = " ".join(part for part in (method, side, kind) if part) or "This join"
            reject(f"{what} JOIN is not allowed: the {rule_label} rule allows only INNER JOIN ... ON "
                   f"(`{fragment(join, 60)}`).")
        condition = join.args.get("on")
        if condition is None:
            reject(f"A join without an ON condition is not allowed: the {rule_label} rule allows only INNER JOIN "
                   f"... ON join columns (`{fragment(join, 60)}`).")
        operators: set[str] = set()
        leaves: list[exp.EQ] = []
        _split_condition(condition, operators, leaves, rule_label)
        involved = set()
        for leaf in leaves:
            left, right = leaf.this, leaf.expression
            for column in (left, right):
                if not isinstance(column, exp.Column):
                    reject(f"Join conditions may compare only join columns with `=`: `{fragment(leaf)}` "
                           f"({rule_label} rule).")
                if column_kind(column) != "join":
                    table = aliases[column.table]
                    reject(f"Column `{column.name}` of table `{table}` cannot be used in a join condition: the "
                           f"{rule_label} rule of `{table}` does not list it in joinColumns (`{fragment(leaf)}`).")
            if left.table == right.table:
                reject(f"A join condition must compare columns of two different tables: `{fragment(leaf)}`.")
            involved.update((aliases[left.table], aliases[right.table]))
            edges.append((left.table, right.table))
        for name in sorted(involved):
            allowed = join_operators(tables[name].rule)
            for operator in sorted(operators):
                if operator not in allowed:
                    shown = ", ".join(sorted(allowed)) or "none (a single condition only)"
                    reject(f"{operator} cannot combine join conditions on table `{name}`: its {rule_label} rule's "
                           f"allowedJoinOperators are {shown} (`{fragment(condition)}`).")
    return edges


def _split_condition(node, operators: set[str], leaves: list, rule_label: str) -> None:
    if isinstance(node, exp.Paren):
        _split_condition(node.this, operators, leaves, rule_label)
    elif isinstance(node, (exp.And, exp.Or)):
        operators.add("AND" if isinstance(node, exp.And) else "OR")
        _split_condition(node.this, operators, leaves, rule_label)
        _split_condition(node.expression, operators, leaves, rule_label)
    elif isinstance(node, exp.EQ):
        leaves.append(node)
    else:
        reject(f"Join conditions may only compare join columns with `=` combined with AND/OR: `{fragment(node)}` "
               f"({rule_label} rule).")


def require_runner_join(aliases: Mapping[str, str], edges: Iterable[tuple[str, str]],
                        tables: Mapping[str, TableInfo], runner: str, needs_join: Callable[[TableInfo], bool],
                        reason: str) -> None:
    """Each table that needs it must be inner-joined, directly or transitively, to a table the runner owns."""
    parent = {alias: alias for alias in aliases}

    def root(alias: str) -> str:
        while parent[alias] != alias:
            parent[alias] = parent[parent[alias]]
            alias = parent[alias]
        return alias

    for left, right in edges:
        parent[root(left)] = root(right)
    # an ID mapping table is no data of its owner's: it neither satisfies the requirement nor is subject to it
    runner_groups = {root(alias) for alias, name in aliases.items()
                     if tables[name].owner_account_id == runner and not id_mapping.is_mapping(tables[name])}
    for alias, name in sorted(aliases.items()):
        info = tables[name]
        if id_mapping.is_mapping(info):
            continue
        if info.owner_account_id != runner and needs_join(info) and root(alias) not in runner_groups:
            reject(f"Inner join to query runner table required for table {name}: {reason.format(table=name)}")


def walk_shallow(node: exp.Expression) -> Iterable[exp.Expression]:
    """Nodes under `node` in the same query level (not inside subqueries)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for child in current.iter_expressions():
            if not isinstance(child, (exp.Subquery, exp.Select, exp.SetOperation)):
                stack.append(child)


def check_clauses(select: exp.Select, allowed: set[str], rule_label: str) -> None:
    """Refuse any clause of the SELECT outside the rule's grammar (an allow-list, so clauses sqlglot learns later
    are refused too)."""
    for key, value in select.args.items():
        if value in (None, [], False) or key in allowed:
            continue
        reject(f"{key.rstrip('_').upper().replace('_', ' ')} is not allowed by the {rule_label} rule's query "
               f"structure.")
