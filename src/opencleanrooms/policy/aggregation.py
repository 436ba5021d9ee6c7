"""The AGGREGATION analysis rule: a fixed query shape (clean-rooms-semantics §4.6) and output constraints.

Every node of the query is checked against an allow-list: aggregates (COUNT, COUNT DISTINCT, SUM, SUM DISTINCT,
AVG) of one plain column listed for that function; dimension columns and the rule's scalar functions for SELECT,
WHERE, GROUP BY and ORDER BY; join columns only in INNER JOIN ... ON and allowed aggregates; HAVING only compares an
allowed aggregate with a number. Output constraints become hidden COUNT(DISTINCT ...) columns filtered outside
(wrap.py), so rows below a minimum vanish without a trace.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import build_scope

from opencleanrooms.policy import common, id_mapping
from opencleanrooms.policy.common import ARITHMETIC, COMPARISONS, is_literal, is_numeric_literal
from opencleanrooms.policy.model import QueryRequest
from opencleanrooms.policy.parse import fragment, reject
from opencleanrooms.policy.resolve import Relations, source_tables
from opencleanrooms.policy.wrap import wrap

LABEL = "AGGREGATION"
_AGGREGATES = (exp.Count, exp.Sum, exp.Avg)


def precheck(tree: exp.Expression, relations: Relations, request: QueryRequest) -> None:
    """Checks that need the query as written (qualification expands `*`)."""
    if tree.find(exp.Star) is not None:
        reject("`*` is not allowed: the AGGREGATION rule requires naming each column (COUNT(*) included).")


def enforce(tree: exp.Expression, relations: Relations, request: QueryRequest) -> exp.Expression:
    """Check the qualified query; return it rewritten with the output constraints."""
    checker = _Checker(tree, relations, request)
    checker.check()
    return checker.rewrite()


class _Checker:
    def __init__(self, tree: exp.Expression, relations: Relations, request: QueryRequest):
        self.tree, self.relations, self.request = tree, relations, request
        self._structure()
        self.aliases = source_tables(build_scope(tree))

    # ---------------------------------------------------------------------------------------- structure
    def _structure(self) -> None:
        tree = self.tree
        if isinstance(tree, exp.SetOperation):
            reject(f"{tree.key.upper()} is not allowed: the AGGREGATION rule allows a single SELECT.")
        if tree.args.get("with"):
            reject("WITH (common table expressions) is not allowed: the AGGREGATION rule allows a single SELECT.")
        for node in tree.walk():
            if node is not tree and isinstance(node, (exp.Select, exp.Subquery, exp.Exists, exp.SetOperation)):
                reject(f"Subqueries are not allowed: the AGGREGATION rule allows a single SELECT "
                       f"(`{fragment(node)}`).")
            if isinstance(node, exp.Window):
                reject(f"Window functions are not allowed by the AGGREGATION rule: `{fragment(node)}`.")
            if isinstance(node, exp.Filter):
                reject(f"FILTER clauses are not allowed by the AGGREGATION rule: `{fragment(node)}`.")
        group = tree.args.get("group")
        if group is not None and any(group.args.get(k) for k in ("rollup", "cube", "grouping_sets", "all", "totals")):
            reject(f"`{fragment(group)}` is not allowed: the AGGREGATION rule's GROUP BY lists dimension columns or "
                   f"scalar functions of them (no ROLLUP, CUBE, GROUPING SETS or ALL).")
        common.check_clauses(tree, {"expressions", "from", "from_", "joins", "where", "group", "having", "order",
                                    "limit", "offset", "qualify", "distinct", "windows", "cluster", "distribute",
                                    "sort", "prewhere", "with"}, LABEL)
        for clause, label in (("limit", "LIMIT"), ("offset", "OFFSET"), ("qualify", "QUALIFY"),
                              ("distinct", "SELECT DISTINCT"), ("prewhere", "PREWHERE"), ("cluster", "CLUSTER BY"),
                              ("distribute", "DISTRIBUTE BY"), ("sort", "SORT BY"), ("windows", "WINDOW")):
            if tree.args.get(clause):
                reject(f"{label} is not allowed by the AGGREGATION rule.")

    # ---------------------------------------------------------------------------------------- columns
    def info(self, column: exp.Column):
        return self.relations.tables[self.aliases[column.table]]

    def kind(self, column: exp.Column) -> str:
        rule = self.info(column).rule or {}
        if column.name in (rule.get("dimensionColumns") or []):
            return "dimension"
        if column.name in (rule.get("joinColumns") or []):
            return "join"
        return "other"

    def join_kind(self, column: exp.Column) -> str:
        """In a join condition: an ID mapping table's ID columns are join columns, dimension columns too."""
        info = self.info(column)
        if id_mapping.is_mapping(info) and column.name in ((info.rule or {}).get("joinColumns") or []):
            return "join"
        return self.kind(column)

    def _column(self, column: exp.Column, where: str) -> None:
        kind = self.kind(column)
        if kind == "dimension":
            return
        table = self.aliases[column.table]
        if kind == "join":
            reject(f"Join column `{column.name}` of table `{table}` cannot be used in {where}: the AGGREGATION rule "
                   f"of `{table}` allows join columns only in INNER JOIN ... ON and inside allowed aggregates.")
        reject(f"Column `{column.name}` of table `{table}` cannot be used in {where}: the AGGREGATION rule of "
               f"`{table}` lists it in no dimensionColumns (it may appear only inside the aggregates its "
               f"aggregateColumns allow).")

    # ---------------------------------------------------------------------------------------- expressions
    def scalar(self, node: exp.Expression, where: str, aggregates: bool) -> bool:
        """Check a non-boolean expression; returns whether it contains an allowed aggregate."""
        if isinstance(node, exp.Alias):
            return self.scalar(node.this, where, aggregates)
        if isinstance(node, exp.Column):
            self._column(node, where)
            return False
        if is_literal(node) or isinstance(node, (exp.DataType, exp.Var)):
            return False
        if isinstance(node, _AGGREGATES) or isinstance(node, exp.AggFunc):
            if not aggregates:
                reject(f"Aggregate functions are not allowed in {where}: `{fragment(node)}`.")
            self.aggregate(node)
            return True
        if isinstance(node, (*ARITHMETIC, exp.Neg, exp.Paren)):
            return any([self.scalar(child, where, aggregates) for child in node.iter_expressions()])
        if isinstance(node, exp.Func):
            self._scalar_function(node, where)
            children = [child.this if common.is_implicit(child) else child for child in node.iter_expressions()]
            return any([self.scalar(child, where, aggregates) for child in children])
        reject(f"`{fragment(node)}` is not allowed in {where}: the AGGREGATION rule allows only columns, literals, "
               f"math operators, aggregates and the rule's scalar functions.")
        return False

    def _scalar_function(self, node: exp.Func, where: str) -> None:
        names = common.scalar_names(node)
        label = node.sql_name() if not isinstance(node, (exp.Cast, exp.TryCast)) else "CAST"
        if not names:
            reject(f"Function {label} is not allowed in {where} (`{fragment(node)}`): the AGGREGATION rule allows "
                   f"only the scalar functions its scalarFunctions list.")
        referenced = {self.aliases[c.table] for c in node.find_all(exp.Column)} or set(self.relations.names)
        for table in sorted(referenced):
            allowed = set((self.relations.tables[table].rule or {}).get("scalarFunctions") or [])
            if not names & allowed:
                reject(f"Function {label} is not allowed in {where} (`{fragment(node)}`): the AGGREGATION rule of "
                       f"`{table}` lists it in no scalarFunctions.")

    def aggregate(self, node: exp.Expression) -> None:
        if not isinstance(node, _AGGREGATES):
            reject(f"Aggregate function {node.sql_name()} is not allowed (`{fragment(node)}`): the AGGREGATION rule "
                   f"allows COUNT, COUNT DISTINCT, SUM, SUM DISTINCT and AVG.")
        argument = node.this
        distinct = isinstance(argument, exp.Distinct)
        if distinct:
            if len(argument.expressions) != 1:
                reject(f"`{fragment(node)}`: DISTINCT aggregates take exactly one column.")
            argument = argument.expressions[0]
        function = {exp.Count: "COUNT", exp.Sum: "SUM", exp.Avg: "AVG"}[type(node)] + ("_DISTINCT" if distinct else "")
        if function == "AVG_DISTINCT":
            reject(f"AVG(DISTINCT ...) is not allowed (`{fragment(node)}`): the AGGREGATION rule allows COUNT, "
                   f"COUNT DISTINCT, SUM, SUM DISTINCT and AVG.")
        if isinstance(argument, exp.Star) or argument is None:
            reject(f"`{fragment(node)}` is not allowed: AGGREGATION rule aggregates take a single column listed "
                   f"in aggregateColumns.")
        if not isinstance(argument, exp.Column):
            reject(f"The argument of `{fragment(node)}` must be a single column: the AGGREGATION rule does not "
                   f"allow aggregating expressions, CASE or functions.")
        table = self.aliases[argument.table]
        rule = self.relations.tables[table].rule or {}
        allowed = {entry.get("function") for entry in rule.get("aggregateColumns") or []
                   if argument.name in (entry.get("columnNames") or [])}
        if function not in allowed:
            shown = ", ".join(sorted(allowed)) if allowed else "no function"
            reject(f"Column `{argument.name}` of table `{table}` cannot be aggregated with "
                   f"{function.replace('_', ' ')} (`{fragment(node)}`): the AGGREGATION rule of `{table}` lists it "
                   f"in aggregateColumns for {shown}.")

    def condition(self, node: exp.Expression, where: str) -> None:
        if isinstance(node, (exp.And, exp.Or)):
            self.condition(node.this, where)
            self.condition(node.expression, where)
        elif isinstance(node, (exp.Not, exp.Paren)):
            self.condition(node.this, where)
        elif isinstance(node, (*COMPARISONS, exp.Like, exp.ILike, exp.Between, exp.Is, exp.In)):
            if isinstance(node, exp.In) and (node.args.get("query") or node.args.get("unnest")):
                reject(f"Subqueries are not allowed in {where}: `{fragment(node)}`.")
            for child in node.iter_expressions():
                self.scalar(child, where, aggregates=False)
        else:
            reject(f"`{fragment(node)}` is not allowed in {where}: the AGGREGATION rule allows comparisons of "
                   f"dimension columns, literals and math operators combined with AND, OR and NOT.")

    def having(self, node: exp.Expression) -> None:
        if isinstance(node, (exp.And, exp.Or)):
            self.having(node.this)
            self.having(node.expression)
        elif isinstance(node, (exp.Not, exp.Paren)):
            self.having(node.this)
        elif isinstance(node, COMPARISONS):
            sides = (node.this, node.expression)
            aggregate = [side for side in sides if isinstance(side, _AGGREGATES)]
            number = [side for side in sides if is_numeric_literal(side)]
            if len(aggregate) != 1 or len(number) != 1:
                reject(f"HAVING may only compare an allowed aggregate with a number: `{fragment(node)}` "
                       f"(AGGREGATION rule).")
            self.aggregate(aggregate[0])
        else:
            reject(f"HAVING may only compare an allowed aggregate with a number: `{fragment(node)}` "
                   f"(AGGREGATION rule).")

    # ---------------------------------------------------------------------------------------- the query
    def check(self) -> None:
        select = self.tree
        tables = self.relations.tables
        edges = common.check_joins(select, self.aliases, tables, LABEL, self.join_kind)
        common.require_runner_join(self.aliases, edges, tables, self.request.runner_account_id,
                                   lambda info: (info.rule or {}).get("joinRequired") == "QUERY_RUNNER",
                                   "the AGGREGATION rule of `{table}` sets joinRequired to QUERY_RUNNER, so it must "
                                   "be INNER JOINed, directly or through other tables, to a table of the member "
                                   "running the query.")
        has_aggregate = False
        for projection in select.expressions:
            has_aggregate |= self.scalar(projection, "SELECT", aggregates=True)
        if not has_aggregate:
            reject("The SELECT list must contain at least one aggregate function (AGGREGATION rule).")
        if select.args.get("where"):
            self.condition(select.args["where"].this, "WHERE")
        group = select.args.get("group")
        grouped = list(group.expressions) if group else []
        for expression in grouped:
            self.scalar(expression, "GROUP BY", aggregates=False)
        if select.args.get("having"):
            self.having(select.args["having"].this)
        names = [p.alias_or_name for p in select.expressions]
        if select.args.get("order"):
            for ordered in select.args["order"].expressions:
                target = ordered.this
                if isinstance(target, exp.Column) and not target.table and target.name in names:
                    continue
                if not self.scalar(target, "ORDER BY", aggregates=True) and target not in grouped:
                    reject(f"ORDER BY `{fragment(target)}` must be an output column, a GROUP BY expression or an "
                           f"allowed aggregate (AGGREGATION rule).")
        for projection in select.expressions:
            value = projection.unalias()
            if not any(isinstance(n, _AGGREGATES) for n in value.walk()) and not is_literal(value) \
                    and value not in grouped:
                reject(f"`{fragment(value)}` must appear in GROUP BY: a non-aggregated output of an AGGREGATION "
                       f"query is a grouping column.")

    def rewrite(self) -> exp.Expression:
        """Wrap the query so every output row meets every table's output constraints (the largest minimum for a
        column name several tables constrain)."""
        minimum: dict[str, int] = {}
        for name in self.relations.names:
            info = self.relations.tables[name]
            columns = {column for column, _ in info.columns}
            for constraint in (info.rule or {}).get("outputConstraints") or []:
                column = constraint.get("columnName")
                if column not in columns:
                    reject(f"The AGGREGATION rule of table `{name}` constrains column `{column}`, which is not one "
                           f"of its allowed columns.", "INVALID_RESOURCE")
                if constraint.get("type", "COUNT_DISTINCT") != "COUNT_DISTINCT":
                    reject(f"The AGGREGATION rule of table `{name}` has an output constraint of type "
                           f"{constraint.get('type')}, which is not supported.", "INVALID_RESOURCE")
                minimum[column] = max(minimum.get(column, 0), int(constraint.get("minimum", 2)))
        hidden = []
        for alias, name in sorted(self.aliases.items()):
            info = self.relations.tables[name]
            for constraint in (info.rule or {}).get("outputConstraints") or []:
                column = constraint["columnName"]
                count = exp.Count(this=exp.Distinct(expressions=[exp.column(column, alias, quoted=True)]))
                hidden.append((count, minimum[column]))
        return wrap(self.tree, hidden)
