"""CUSTOM aggregationThresholds on free-form SQL: every output group must represent at least N distinct identities.

The final SELECT must aggregate, and every read of a thresholded table must reach that aggregation row by row
(through CTEs and derived tables that only filter, join and project). Then each intermediate query gets a hidden
column carrying the identity, the final aggregation a hidden COUNT(DISTINCT identity) per read of the table, and
groups below the threshold are filtered outside (wrap.py). Any shape where that cannot be proven — a set operation,
a non-aggregate final query, an intermediate aggregation, DISTINCT or window function, the table read in a
subquery expression — is refused rather than guessed at.

allowedAggregateExpressionType COLUMNS_ONLY (the default when absent: the stricter choice) refuses aggregate and
window function arguments that transform the table's columns, also when the transformation happened in a CTE.
Aggregates that return a group's individual values (collect_list, collect_set, string_agg) are refused on the
table's columns whatever the type.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from opencleanrooms.policy.common import walk_shallow
from opencleanrooms.policy.lineage import DIRECT, Flow, scope_nodes
from opencleanrooms.policy.parse import fragment, reject
from opencleanrooms.policy.resolve import Relations
from opencleanrooms.policy.wrap import wrap

_UNPROVEN = "The aggregation threshold of table `{table}` cannot be proven for this query shape"


def enforce(tree: exp.Expression, flow: Flow, relations: Relations) -> exp.Expression:
    configured = {}
    for name in relations.names:
        found = (relations.tables[name].rule or {}).get("aggregationThresholds") or []
        if found:
            configured[name] = found[0]
    if not configured:
        return tree
    for name, threshold in configured.items():
        _check_expression_type(flow, name, threshold)
        _check_collecting_aggregates(flow, name)
    root = flow.root
    first = next(iter(sorted(configured)))
    if isinstance(tree, exp.SetOperation):
        reject(f"{_UNPROVEN.format(table=first)}: set operations (UNION, INTERSECT, EXCEPT) are not supported "
               f"with aggregation thresholds.")
    if not _aggregates(tree):
        reject(f"{_UNPROVEN.format(table=first)}: the final SELECT must aggregate (GROUP BY or aggregate "
               f"functions) so each output row is a group of identities.")
    if any(isinstance(node, exp.Window) for node in scope_nodes(root)):
        reject(f"{_UNPROVEN.format(table=first)}: window functions in the final SELECT are not supported with "
               f"aggregation thresholds.")
    minimums = {name: _minimum(flow, name, threshold, relations) for name, threshold in configured.items()}
    hidden: list[tuple[exp.Expression, int]] = []
    tracer = _Tracer(relations, {identifier.name for identifier in tree.find_all(exp.Identifier)})
    for name in sorted(configured):
        identity = configured[name]["identityColumns"][0]
        if identity not in {column for column, _ in relations.tables[name].columns}:
            reject(f"The aggregation threshold of table `{name}` counts identity column `{identity}`, which is "
                   f"not one of its allowed columns.", "INVALID_RESOURCE")
        expressions = tracer.trace(root, name, identity)
        if tracer.untraced(tree, name):
            reject(f"{_UNPROVEN.format(table=name)}: the table is read where its rows do not reach the final "
                   f"aggregation (a subquery in an expression, a semi or anti join, or an unused CTE).")
        if minimums[name] > 0:
            for expression in expressions:
                hidden.append((exp.Count(this=exp.Distinct(expressions=[expression])), minimums[name]))
    return wrap(tree, hidden)


def _aggregates(select: exp.Select) -> bool:
    if select.args.get("group"):
        return True
    return any(isinstance(node, exp.AggFunc) and not _inside(node, exp.Window, projection)
               for projection in select.expressions for node in walk_shallow(projection))


def _inside(node: exp.Expression, kind: type, top: exp.Expression) -> bool:
    while node is not None and node is not top:
        if isinstance(node, kind):
            return True
        node = node.parent
    return isinstance(top, kind)


def _minimum(flow: Flow, name: str, threshold, relations: Relations) -> int:
    """The largest threshold any output column needs: its columns' overrides of the table, or the table-wide
    minimum (also for output columns not derived from the table)."""
    default = int(threshold.get("minimumIdentityCount", 2))
    overrides = {entry["outputColumnName"]: int(entry["minimumIdentityCount"])
                 for entry in threshold.get("outputColumnThresholds") or []}
    needed = 0
    for _, lineage in flow.outputs(flow.root):
        columns = [column for (table, column) in lineage if table == name]
        needed = max(needed, max((overrides.get(c, default) for c in columns), default=default))
    return needed


def _check_expression_type(flow: Flow, name: str, threshold) -> None:
    if threshold.get("allowedAggregateExpressionType", "COLUMNS_ONLY") != "COLUMNS_ONLY":
        return
    for scope in flow.scopes():
        for node in scope_nodes(scope):
            is_window_function = isinstance(node.parent, exp.Window) and node.arg_key == "this"
            if not isinstance(node, exp.AggFunc) and not is_window_function:
                continue
            for argument in node.iter_expressions():
                if isinstance(argument, exp.Distinct):
                    arguments = argument.expressions
                else:
                    arguments = [argument]
                for value in arguments:
                    lineage = {key: kind for key, kind in flow.lineage(value, scope).items() if key[0] == name}
                    if lineage and not (isinstance(value, exp.Column) and set(lineage.values()) == {DIRECT}):
                        reject(f"`{fragment(node)}` aggregates a transformed column of table `{name}`: its CUSTOM "
                               f"rule's aggregation threshold allows only plain columns or constants as aggregate "
                               f"and window function arguments (allowedAggregateExpressionType COLUMNS_ONLY).")


_COLLECTING = tuple(getattr(exp, kind) for kind in ("ArrayAgg", "ArrayUniqueAgg", "GroupConcat", "ArrayConcatAgg")
                    if hasattr(exp, kind))


def _check_collecting_aggregates(flow: Flow, name: str) -> None:
    """collect_list, collect_set, string_agg and the like return every member's value of a group, however large the
    group: a threshold on the group's size protects nothing then."""
    for scope in flow.scopes():
        for node in scope_nodes(scope):
            if isinstance(node, _COLLECTING) and any(table == name for table, _ in flow.lineage(node, scope)):
                reject(f"`{fragment(node)}` returns the individual values of table `{name}` in each group, which its "
                       f"CUSTOM rule's aggregation threshold does not allow: use aggregates that summarise a group "
                       f"(COUNT, SUM, AVG, MIN, MAX, ...).")


class _Tracer:
    """Carries a table's identity column from each read of the table up to the final aggregation."""

    def __init__(self, relations: Relations, used_names: set[str]):
        self.relations = relations
        self.used = set(used_names)  # a hidden column must not share a name the query already uses
        self.traced: set[int] = set()
        self.added: dict[tuple[int, str], list[str]] = {}
        self.counter = 0

    def trace(self, scope: Scope, name: str, identity: str) -> list[exp.Expression]:
        """Expressions of `scope` giving the identity of each read of `name` that reaches its rows."""
        found: list[exp.Expression] = []
        for alias, (_, source) in scope.selected_sources.items():
            if isinstance(source, exp.Table):
                if source.name == name:
                    self.traced.add(id(source))
                    found.append(exp.column(identity, alias, quoted=True))
                continue
            if not isinstance(source, Scope) or not _reads(source, name):
                continue
            for column in self._carry(source, name, identity):
                found.append(exp.column(column, alias, quoted=True))
        return found

    def _carry(self, scope: Scope, name: str, identity: str) -> list[str]:
        """Add hidden identity columns to an intermediate query (once, however often it is referenced)."""
        key = (id(scope.expression), name)
        if key in self.added:
            return self.added[key]
        select = scope.expression
        problem = _row_problem(select)
        if problem:
            reject(f"{_UNPROVEN.format(table=name)}: {problem} (`{fragment(select, 60)}`).")
        columns = []
        for expression in self.trace(scope, name, identity):
            column = f"__id{self.counter}"
            while column in self.used:
                self.counter += 1
                column = f"__id{self.counter}"
            self.used.add(column)
            self.counter += 1
            select.append("expressions", exp.alias_(expression, column, quoted=True))
            columns.append(column)
        self.added[key] = columns
        return columns

    def untraced(self, tree: exp.Expression, name: str) -> bool:
        return any(isinstance(t.this, exp.Identifier) and t.name == name and id(t) not in self.traced
                   for t in tree.find_all(exp.Table))


def _reads(scope: Scope, name: str) -> bool:
    """Whether a scope's rows come (in part) from table `name`, directly or through the CTEs it selects from."""
    for source in scope.sources.values():
        if isinstance(source, exp.Table) and source.name == name:
            return True
        if isinstance(source, Scope) and _reads(source, name):
            return True
    return any(_reads(child, name) for child in scope.subquery_scopes + scope.set_operation_scopes)


def _row_problem(select: exp.Expression) -> str | None:
    """Why an intermediate query does not pass its input rows through one by one, or None."""
    if isinstance(select, exp.SetOperation):
        return "a set operation in an intermediate query drops or merges rows"
    if not isinstance(select, exp.Select):
        return "an intermediate query of this kind"
    if select.args.get("group") or select.args.get("having"):
        return "an intermediate aggregation drops the identity column"
    if select.args.get("distinct"):
        return "an intermediate SELECT DISTINCT drops the identity column"
    for projection in select.expressions:
        for node in walk_shallow(projection):
            if isinstance(node, exp.Window):
                return "a window function in an intermediate query mixes rows"
            if isinstance(node, exp.AggFunc):
                return "an intermediate aggregation drops the identity column"
    if select.args.get("qualify"):
        return "QUALIFY in an intermediate query"
    return None
