"""The CUSTOM analysis rule: who may run what, then free-form SELECT SQL held to the rule's controls.

Order matters: authorization (allowedAnalyses / allowedAnalysisProviders) is decided before the SQL is looked at,
so a member who may not query a table learns nothing from its refusal but that. Then, on the lineage of the
qualified query (lineage.py): disallowedOutputColumns may not reach the output, even derived; comparisonControls
restrict which columns are compared with literals or with other columns; aggregationThresholds are enforced by
rewriting (thresholds.py). Differential privacy queries are checked and rewritten by dp.py instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlglot import exp

from opencleanrooms.policy import dp, id_mapping, thresholds
from opencleanrooms.policy.lineage import Flow, base_columns, scope_nodes
from opencleanrooms.policy.model import QueryRequest
from opencleanrooms.policy.parse import fragment, reject
from opencleanrooms.policy.resolve import Relations

LABEL = "CUSTOM"
_PAIRWISE = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ, exp.Like,
             exp.ILike, exp.RegexpLike, exp.RegexpILike, exp.SimilarTo, exp.Glob, exp.Contains, exp.StartsWith,
             exp.EndsWith, exp.Nullif, exp.ArrayContains, exp.StrPosition, exp.Levenshtein)
_PREDICATE_HOLDERS = (exp.Where, exp.Having, exp.Qualify)
_CONNECTIVES = (exp.And, exp.Or, exp.Not, exp.Paren, exp.Xor)


def precheck(tree: exp.Expression, relations: Relations, request: QueryRequest) -> None:
    """Authorization of every table, then the configurations not supported yet."""
    for name in relations.names:
        if not id_mapping.is_mapping(relations.tables[name]):  # the other tables' rules decide who may query
            _authorize(name, relations.tables[name].rule or {}, request)
    if _uses_differential_privacy(relations):
        _differential_privacy(tree, relations, request)


def enforce(tree: exp.Expression, relations: Relations, request: QueryRequest) -> exp.Expression:
    flow = Flow(tree)
    deferred = _reached_disallowed(flow, relations) if request.defer_output_controls else None
    if deferred is None:
        _disallowed_outputs(flow, relations)
    _comparison_controls(flow, relations)
    if _uses_differential_privacy(relations):
        tree = dp.enforce(tree, flow, relations)
    else:
        tree = thresholds.enforce(tree, flow, relations)
    if deferred:
        tree.meta["deferred_columns"] = deferred
    return tree


def _uses_differential_privacy(relations: Relations) -> bool:
    return any((relations.tables[name].rule or {}).get("differentialPrivacy") for name in relations.names)


def _authorize(name: str, rule, request: QueryRequest) -> None:
    analyses = list(rule.get("allowedAnalyses") or [])
    providers = list(rule.get("allowedAnalysisProviders") or [])
    if request.template_arn:
        if request.template_arn in analyses:
            return
        if "ANY_QUERY" in analyses and request.template_author_account_id in providers:
            return
        reject(f"The CUSTOM rule of table `{name}` does not allow this analysis template: its allowedAnalyses do "
               f"not list it and its author is not an allowed analysis provider.", "RESOURCE_ACCESS_DENIED")
    if "ANY_QUERY" in analyses and request.runner_account_id in providers:
        return
    reject(f"The CUSTOM rule of table `{name}` does not allow queries written by this member: run an analysis "
           f"template its allowedAnalyses list, or ask its owner to add ANY_QUERY and this account to "
           f"allowedAnalysisProviders.", "RESOURCE_ACCESS_DENIED")


def _differential_privacy(tree, relations: Relations, request: QueryRequest) -> None:
    """DP queries are planned by dp.py (shape, contribution bounds, the cells the runner adds noise to); what needs
    the query as written is checked here."""
    dp.precheck(tree, relations)


def _disallowed_outputs(flow: Flow, relations: Relations) -> None:
    disallowed = {(name, column) for name in relations.names
                  for column in (relations.tables[name].rule or {}).get("disallowedOutputColumns") or []}
    if not disallowed:
        return
    for output, lineage in flow.outputs(flow.root):
        for table, column in sorted(base_columns(lineage) & disallowed):
            how = "" if output == column else f" (it reaches output column `{output}`)"
            reject(f"Column `{column}` of table `{table}` cannot appear in the output{how}: the CUSTOM rule of "
                   f"`{table}` lists it in disallowedOutputColumns; only COUNT or COUNT(DISTINCT) of it may be "
                   f"output.")


def _reached_disallowed(flow: Flow, relations: Relations) -> list[tuple[str, str, str]]:
    """(output, table, column) for every disallowed column that reaches an output column, even derived."""
    disallowed = {(name, column) for name in relations.names
                  for column in (relations.tables[name].rule or {}).get("disallowedOutputColumns") or []}
    return [(output, table, column) for output, lineage in flow.outputs(flow.root)
            for table, column in sorted(base_columns(lineage) & disallowed)]


# ------------------------------------------------------------------------------------------------ comparisons


def _comparison_controls(flow: Flow, relations: Relations) -> None:
    controls = {name: (relations.tables[name].rule or {}).get("comparisonControls") for name in relations.names}
    controls = {name: c for name, c in controls.items() if c is not None}
    if not controls:
        return
    literal_allowed = {name: set(c.get("allowedLiteralComparisonColumns") or []) for name, c in controls.items()}
    column_allowed = {name: set(c.get("allowedColumnComparisonColumns") or []) for name, c in controls.items()}

    def check(columns: Iterable[tuple[str, str]], literal: bool, node: exp.Expression) -> None:
        allowed, field = (literal_allowed, "allowedLiteralComparisonColumns") if literal else \
            (column_allowed, "allowedColumnComparisonColumns")
        what = "a literal value" if literal else "another column"
        for table, column in sorted(columns):
            if table in allowed and column not in allowed[table]:
                reject(f"Column `{column}` of table `{table}` cannot be compared with {what} (`{fragment(node)}`): "
                       f"the CUSTOM rule of `{table}` does not list it in comparisonControls.{field}.")

    for scope in flow.scopes():
        lineage = lambda node, scope=scope: base_columns(flow.lineage(node, scope))  # noqa: E731
        expression = scope.expression
        if isinstance(expression, exp.SetOperation):
            _set_operation(flow, scope, check)
            continue
        for node in scope_nodes(scope):
            sides = _compared_sides(node)
            if sides is not None:
                lineages = [lineage(side) for side in sides]
                with_columns = [found for found in lineages if found]
                if len(with_columns) >= 2:
                    check(set().union(*with_columns), False, node)
                if with_columns and len(with_columns) < len(lineages):
                    check(set().union(*with_columns), True, node)
            elif isinstance(node, _PREDICATE_HOLDERS) or (isinstance(node, exp.Join) and node.args.get("on")):
                condition = node.args.get("on") if isinstance(node, exp.Join) else node.this
                for leaf in _predicate_leaves(condition):
                    if _compared_sides(leaf) is None and not isinstance(leaf, (exp.Exists, exp.Boolean)):
                        check(lineage(leaf), True, leaf)  # a bare boolean or function: compared with TRUE
            elif isinstance(node, exp.If) and not (isinstance(node.parent, exp.Case) and node.parent.args.get("this")):
                # IF(...) and searched CASE WHEN branches: their conditions are predicates
                for leaf in _predicate_leaves(node.this):
                    if _compared_sides(leaf) is None and not isinstance(leaf, (exp.Exists, exp.Boolean)):
                        check(lineage(leaf), True, leaf)
            elif isinstance(node, exp.Group):  # plain GROUP BY, ROLLUP, CUBE and GROUPING SETS alike
                check(lineage(node), False, node)
                if node.args.get("all"):  # GROUP BY ALL groups by every output without an aggregate
                    for projection in expression.expressions:
                        if not any(isinstance(n, exp.AggFunc) for n in projection.walk()):
                            check(lineage(projection), False, projection)
            elif isinstance(node, exp.Window):  # rows are compared to form partitions and to order them
                order = node.args.get("order")
                for item in [*(node.args.get("partition_by") or []), *(order.expressions if order else [])]:
                    check(lineage(item), False, item)
        if isinstance(expression, exp.Select) and expression.args.get("distinct"):
            for projection in expression.expressions:
                check(lineage(projection), False, projection)


def _set_operation(flow: Flow, scope, check) -> None:
    """INTERSECT and EXCEPT compare the rows of their operands, position by position; UNION (DISTINCT) compares all
    rows with each other to drop duplicates."""
    expression = scope.expression
    parts = [flow.outputs(child) for child in scope.set_operation_scopes]
    if isinstance(expression, (exp.Intersect, exp.Except)):
        for position in range(min(len(part) for part in parts)):
            lineages = [base_columns(part[position][1]) for part in parts]
            with_columns = [found for found in lineages if found]
            if len(with_columns) >= 2:
                check(set().union(*with_columns), False, expression)
            if with_columns and len(with_columns) < len(lineages):
                check(set().union(*with_columns), True, expression)
    elif expression.args.get("distinct"):
        for _, out in flow.outputs(scope):
            check(base_columns(out), False, expression)


def _compared_sides(node: exp.Expression) -> list[exp.Expression] | None:
    """The operands a comparison node compares with each other, or None for a node that compares nothing."""
    if isinstance(node, _PAIRWISE):
        return [node.this, node.expression]
    if isinstance(node, exp.In):
        return [node.this, *(node.expressions or []), *([node.args["query"]] if node.args.get("query") else [])]
    if isinstance(node, exp.Between):
        return [node.this, node.args["low"], node.args["high"]]
    if isinstance(node, exp.Is):
        return [node.this, node.expression]  # IS NULL compares with the literal NULL
    if isinstance(node, (exp.Greatest, exp.Least)):
        return [node.this, *node.expressions]
    if isinstance(node, exp.Case) and node.args.get("this") is not None:
        return [node.this, *(branch.this for branch in node.args.get("ifs") or [])]
    if isinstance(node, exp.Decode) or (isinstance(node, exp.Func) and node.sql_name() == "DECODE"):
        return list(node.iter_expressions())
    return None


def _predicate_leaves(node: exp.Expression | None):
    if node is None:
        return
    if isinstance(node, _CONNECTIVES):
        for child in node.iter_expressions():
            yield from _predicate_leaves(child)
    else:
        yield node

