"""Column lineage through a qualified query: which base-table columns flow into each value, and how.

Free-form CUSTOM SQL can carry a column through aliases, CTEs, subqueries, set operations, expressions and window
functions; the rules (disallowed output columns, comparison controls, aggregation thresholds) must see through all
of them. Each value's lineage maps (table, column) to how the column reaches it:

- DIRECT: the column's own values, only renamed or passed through (`x`, `x AS y`, a CTE column that is `x`);
- VALUE: derived from the column's values (expressions, functions, CASE, MIN/MAX, window partitions, subqueries);
- COUNT: only counted (`COUNT(x)`, `COUNT(DISTINCT x)`), which reveals no value of the column.

When a column reaches a value in several ways the strongest wins (VALUE > DIRECT > COUNT).
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, build_scope

from opencleanrooms.policy.parse import reject

COUNT, DIRECT, VALUE = 0, 1, 2
Lineage = dict[tuple[str, str], int]


def merge(into: Lineage, other: Lineage, cap: int | None = None) -> Lineage:
    for key, kind in other.items():
        kind = min(kind, cap) if cap is not None else kind
        if into.get(key, -1) < kind:
            into[key] = kind
    return into


def transformed(lineage: Lineage) -> Lineage:
    return {key: VALUE if kind == DIRECT else kind for key, kind in lineage.items()}


class Flow:
    """Lineage of every scope of one qualified query."""

    def __init__(self, tree: exp.Expression):
        self.tree = tree
        self.root = build_scope(tree)
        if self.root is None:
            reject("The query's structure cannot be analysed.")
        self._outputs: dict[int, list[tuple[str, Lineage]]] = {}

    def scopes(self) -> list[Scope]:
        return list(self.root.traverse())

    def outputs(self, scope: Scope) -> list[tuple[str, Lineage]]:
        """(output name, lineage) of each output column of a scope, in order."""
        key = id(scope.expression)
        if key not in self._outputs:
            self._outputs[key] = self._compute_outputs(scope)
        return self._outputs[key]

    def _compute_outputs(self, scope: Scope) -> list[tuple[str, Lineage]]:
        if isinstance(scope.expression, exp.SetOperation):
            parts = [self.outputs(child) for child in scope.set_operation_scopes]
            combined = [(name, dict(lineage)) for name, lineage in parts[0]]
            for part in parts[1:]:
                for i, (_, lineage) in enumerate(part[: len(combined)]):
                    merge(combined[i][1], lineage)
            return combined
        return [(projection.alias_or_name, self.lineage(projection, scope))
                for projection in scope.expression.expressions]

    def lineage(self, node: exp.Expression, scope: Scope) -> Lineage:
        """How base columns reach the value of `node`, an expression of `scope`."""
        if isinstance(node, exp.Column):
            return self._column(node, scope)
        if isinstance(node, (exp.Alias, exp.Paren)):
            return self.lineage(node.this, scope)
        if isinstance(node, (exp.Literal, exp.Boolean, exp.Null, exp.DataType, exp.Var, exp.Star)):
            return {}
        if isinstance(node, (exp.Subquery, exp.Select, exp.SetOperation)):
            child = self.child_scope(node, scope)
            result: Lineage = {}
            for _, lineage in self.outputs(child) if child else []:
                merge(result, transformed(lineage))
            return result
        if isinstance(node, exp.Count):
            argument = node.this
            if isinstance(argument, exp.Distinct) and len(argument.expressions) == 1:
                argument = argument.expressions[0]
            if isinstance(argument, exp.Column):
                return merge({}, self._column(argument, scope), cap=COUNT)
        result = {}
        for child in node.iter_expressions():
            merge(result, self.lineage(child, scope))
        return transformed(result)

    def _column(self, column: exp.Column, scope: Scope) -> Lineage:
        current = scope
        while current is not None:
            source = current.sources.get(column.table)
            if source is not None:
                break
            current = current.parent  # a correlated reference to an outer query
        if source is None:
            return {}
        if isinstance(source, exp.Table):
            return {(source.name, column.name): DIRECT}
        result: Lineage = {}
        for name, lineage in self.outputs(source):
            if name == column.name:  # every output of that name: an engine may resolve a duplicate either way
                merge(result, lineage)
        return result

    def child_scope(self, node: exp.Expression, scope: Scope) -> Scope | None:
        """The scope of a subquery written inside an expression of `scope`."""
        target = node.this if isinstance(node, exp.Subquery) else node
        for child in scope.subquery_scopes + scope.derived_table_scopes + scope.set_operation_scopes:
            if child.expression is target or child.expression is node:
                return child
        return None


def base_columns(lineage: Lineage, kinds=(DIRECT, VALUE)) -> set[tuple[str, str]]:
    return {key for key, kind in lineage.items() if kind in kinds}


def scope_nodes(scope: Scope):
    """The nodes of one scope's own query level (child scopes are visited on their own)."""
    stack = [scope.expression]
    while stack:
        node = stack.pop()
        yield node
        for child in node.iter_expressions():
            if isinstance(child, (exp.Subquery, exp.Select, exp.SetOperation, exp.CTE, exp.With)):
                continue
            stack.append(child)
