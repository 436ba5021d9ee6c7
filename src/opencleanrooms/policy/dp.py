"""Differential privacy on CUSTOM tables: check the query's shape, then rewrite it so each user's contribution is
bounded and the engine returns what the runner needs to release every aggregate with noise.

v1 accepts the smallest shape whose privacy we can prove (docs/differential-privacy.md): a final SELECT of
COUNT, COUNT(DISTINCT), SUM, AVG and STDDEV aggregates without GROUP BY (released group keys would leak which
values exist; pure epsilon-DP cannot release them), over user-level rows: CTEs and derived tables that only filter,
join and project (thresholds._Tracer proves it and carries each DP table's user-id column up), inner joins only.
Everything else is refused.

The rewrite keeps the query's FROM/WHERE as a CTE of user-level rows (user id + one value per aggregate), keeps at
most USER_CONTRIBUTION_LIMIT rows per user, and returns a long table: per aggregate its exact count ('n' rows), or,
for value aggregates, per signed magnitude bucket the rows' count, sum and sum of squares ('c' rows, each value
clamped to its bucket's edge) and the users per bucket of their largest value ('h' rows, for the private bounds).
The runner (runner/dp.py) turns that into the noisy answer; the clamped sums are exact functions of these cells.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from opencleanrooms.policy.lineage import DIRECT, Flow, scope_nodes
from opencleanrooms.policy.parse import CleanRoomsSpark, fragment, reject
from opencleanrooms.policy.resolve import Relations
from opencleanrooms.policy.thresholds import _Tracer

USER_CONTRIBUTION_LIMIT = 5  # rows each user may contribute to one query (public, reported in sensitivityParameters)
BUCKET_LIMIT = 64  # privacy.mechanisms.BUCKET_LIMIT: values are clamped to +-2^64 before bucketing
_EDGE = float(2 ** BUCKET_LIMIT)
_PREFIX = "__dp"
_KINDS = {exp.Count: "COUNT", exp.Sum: "SUM", exp.Avg: "AVG", exp.Stddev: "STDDEV", exp.StddevSamp: "STDDEV",
          exp.StddevPop: "STDDEV"}
RESULT_COLUMNS = ("__dp_agg", "__dp_kind", "__dp_k", "__dp_neg", "__dp_n", "__dp_s1", "__dp_s2")


def user_columns(relations: Relations) -> dict[str, str]:
    """DP table name -> its user-id column."""
    found = {}
    for name in relations.names:
        config = (relations.tables[name].rule or {}).get("differentialPrivacy")
        if config:
            columns = [c.get("name") for c in config.get("columns") or [] if c.get("name")]
            if len(columns) != 1:
                reject(f"The CUSTOM rule of table `{name}` must name exactly one differentialPrivacy user "
                       f"identifier column.", "INVALID_RESOURCE")
            if columns[0] not in {column for column, _ in relations.tables[name].columns}:
                reject(f"The differential privacy user identifier column `{columns[0]}` of table `{name}` is not "
                       f"one of its allowed columns.", "INVALID_RESOURCE")
            found[name] = columns[0]
    return found


def precheck(tree: exp.Expression, relations: Relations) -> None:
    """What needs the query as written: names the rewrite reserves, thresholds combined with DP."""
    user_columns(relations)
    for identifier in tree.find_all(exp.Identifier):
        if identifier.name.lower().startswith(_PREFIX):
            reject(f"Names starting with `{_PREFIX}` are reserved in differential privacy queries: "
                   f"`{identifier.name}`.")
    for name in relations.names:
        if (relations.tables[name].rule or {}).get("aggregationThresholds"):
            reject(f"Differential privacy queries cannot read table `{name}`: its CUSTOM rule sets "
                   f"aggregationThresholds, which this server does not combine with differential privacy.")


def enforce(tree: exp.Expression, flow: Flow, relations: Relations) -> exp.Expression:
    """The rewritten tree; its `meta['dp']` lists the aggregates the runner releases (in output order)."""
    users = user_columns(relations)
    first = sorted(users)[0]
    why = f"Differential privacy query on `{first}` not supported"
    if not isinstance(tree, exp.Select):
        reject(f"{why}: the final query must be one SELECT of aggregates (no UNION, INTERSECT or EXCEPT).")
    for arg, what in (("group", "GROUP BY"), ("having", "HAVING"), ("qualify", "QUALIFY"), ("order", "ORDER BY"),
                      ("limit", "LIMIT"), ("offset", "OFFSET"), ("distinct", "SELECT DISTINCT")):
        if tree.args.get(arg):
            detail = (" (group keys would reveal which values exist; only whole-table aggregates are supported "
                      "for now)") if arg in ("group", "having") else ""
            reject(f"{why}: {what} in the final SELECT{detail}.")
    for join in tree.find_all(exp.Join):
        if join.side or (join.kind and join.kind.upper() != "INNER"):
            reject(f"{why}: only inner joins are supported (`{fragment(join, 60)}`).")
    root = flow.root
    if any(isinstance(node, exp.Window) for node in scope_nodes(root)):
        reject(f"{why}: window functions in the final SELECT.")
    aggregations = [_aggregation(projection, flow, users, why) for projection in tree.expressions]

    tracer = _Tracer(relations, {identifier.name for identifier in tree.find_all(exp.Identifier)})
    identities: list[exp.Expression] = []
    for name in sorted(users):
        identities += tracer.trace(root, name, users[name])
        if tracer.untraced(tree, name):
            reject(f"{why}: table `{name}` is read where its rows do not reach the final aggregation as "
                   f"user-level rows (a subquery in an expression, a semi or anti join, or an unused CTE).")
    if not identities:
        reject(f"{why}: the final SELECT does not read the table's user-level rows.")
    return _rewrite(tree, aggregations, identities)


def _aggregation(projection: exp.Expression, flow: Flow, users: dict[str, str], why: str) -> dict:
    node = projection.this if isinstance(projection, exp.Alias) else projection
    kind = _KINDS.get(type(node))
    if kind is None:
        reject(f"{why}: every output of the final SELECT must be one of COUNT, COUNT(DISTINCT), SUM, AVG or STDDEV "
               f"of user-level values, not `{fragment(node, 60)}`.")
    argument = node.this
    distinct = isinstance(argument, exp.Distinct)
    if distinct:
        if kind != "COUNT" or len(argument.expressions) != 1:
            reject(f"{why}: DISTINCT is supported in COUNT(DISTINCT x) of one expression only (`{fragment(node)}`).")
        argument = argument.expressions[0]
    if not (kind == "COUNT" and isinstance(argument, exp.Star)):
        if node.args.get("expressions") or any(isinstance(n, (exp.AggFunc, exp.Window, exp.Subquery, exp.Select))
                                                for n in argument.walk()):
            reject(f"{why}: aggregate arguments may not hold aggregates, window functions or subqueries "
                   f"(`{fragment(node)}`).")
    entry = {"output": projection.alias_or_name, "type": kind, "expression": fragment(node, 200),
             "contribution_limit": USER_CONTRIBUTION_LIMIT, "argument": argument}
    if kind == "COUNT" and distinct:
        lineage = flow.lineage(argument, flow.root)
        is_user = isinstance(argument, exp.Column) and len(lineage) == 1 and \
            next(iter(lineage.items())) in {((t, c), DIRECT) for t, c in users.items()}
        entry["type"] = "COUNT_DISTINCT"
        entry["mode"] = "users" if is_user else "distinct"
    elif kind == "COUNT":
        entry["mode"] = "rows" if isinstance(argument, exp.Star) or isinstance(argument, exp.Literal) else "values"
    else:
        entry["mode"] = "cells"
    return entry


def _q(name: str) -> str:
    return f"`{name}`"


def _rewrite(tree: exp.Select, aggregations: list[dict], identities: list[exp.Expression]) -> exp.Expression:
    key = "with_" if "with_" in exp.Select.arg_types else "with"
    ctes = tree.args.get(key)
    tree.set(key, None)
    user = identities[0].copy()
    projections = [exp.alias_(user, "__dp_u", quoted=True)]
    for i, entry in enumerate(aggregations):
        argument = entry.pop("argument")
        if entry["mode"] == "cells":
            value = exp.TryCast(this=argument.copy(), to=exp.DataType.build("DOUBLE"))
            projections.append(exp.alias_(value, f"__dp_v{i}", quoted=True))
        elif entry["mode"] in ("values", "distinct"):
            projections.append(exp.alias_(argument.copy(), f"__dp_v{i}", quoted=True))
    tree.set("expressions", projections)
    condition: exp.Expression = exp.Not(this=exp.Is(this=user.copy(), expression=exp.Null()))
    for other in identities[1:]:  # rows joined across DP tables belong to one user only when the ids agree
        condition = exp.and_(condition, exp.EQ(this=user.copy(), expression=other.copy()))
    tree.where(condition, copy=False)

    values = [p.alias for p in projections[1:]]
    columns = ", ".join(_q(c) for c in ["__dp_u", *values])
    limit = USER_CONTRIBUTION_LIMIT
    with_parts = [
        f"`__dp_ranked` AS (SELECT {columns}, ROW_NUMBER() OVER (PARTITION BY `__dp_u` ORDER BY `__dp_u`) AS "
        f"`__dp_rn` FROM `__dp_rows`)",
        f"`__dp_kept` AS (SELECT {columns} FROM `__dp_ranked` WHERE `__dp_rn` <= {limit})",
    ]
    selects = []
    null = "CAST(NULL AS DOUBLE)"

    def row(i: int, kind: str, k: str, neg: str, n: str, s1: str, s2: str, source: str, extra: str = "") -> str:
        return (f"SELECT {i} AS `__dp_agg`, '{kind}' AS `__dp_kind`, {k} AS `__dp_k`, {neg} AS `__dp_neg`, "
                f"CAST({n} AS BIGINT) AS `__dp_n`, {s1} AS `__dp_s1`, {s2} AS `__dp_s2` FROM {source}{extra}")

    for i, entry in enumerate(aggregations):
        mode, v = entry["mode"], _q(f"__dp_v{i}")
        if mode == "users":  # sensitivity 1 over all of a user's rows: no need to drop rows
            selects.append(row(i, "n", "0", "FALSE", "COUNT(DISTINCT `__dp_u`)", null, null, "`__dp_rows`"))
        elif mode == "rows":
            selects.append(row(i, "n", "0", "FALSE", "COUNT(*)", null, null, "`__dp_kept`"))
        elif mode == "values":
            selects.append(row(i, "n", "0", "FALSE", f"COUNT({v})", null, null, "`__dp_kept`"))
        elif mode == "distinct":
            selects.append(row(i, "n", "0", "FALSE", f"COUNT(DISTINCT {v})", null, null, "`__dp_kept`"))
        else:
            a, b = _q(f"__dp_a{i}"), _q(f"__dp_b{i}")
            with_parts.append(
                f"{a} AS (SELECT `__dp_u`, LEAST(GREATEST({v}, -{_EDGE!r}), {_EDGE!r}) AS `__dp_x` "
                f"FROM `__dp_kept` WHERE {v} IS NOT NULL)")
            bucket = (f"CASE WHEN ABS(`__dp_x`) < 1 THEN 0 ELSE CAST(SIGN(`__dp_x`) AS INT) * "
                      f"LEAST(CAST(FLOOR(LOG(2, ABS(`__dp_x`))) AS INT) + 1, {BUCKET_LIMIT}) END")
            edge = "POWER(2, ABS(`__dp_k`))"
            with_parts.append(
                f"{b} AS (SELECT `__dp_u`, `__dp_k`, `__dp_x` < 0 AS `__dp_neg`, "
                f"LEAST(GREATEST(`__dp_x`, -{edge}), {edge}) AS `__dp_y` "
                f"FROM (SELECT `__dp_u`, `__dp_x`, {bucket} AS `__dp_k` FROM {a}) AS `__dp_s`)")
            selects.append(row(i, "c", "`__dp_k`", "`__dp_neg`", "COUNT(*)", "SUM(`__dp_y`)",
                               "SUM(`__dp_y` * `__dp_y`)", b, " GROUP BY `__dp_k`, `__dp_neg`"))
            top = "CASE WHEN MAX(`__dp_k`) >= -MIN(`__dp_k`) THEN MAX(`__dp_k`) ELSE MIN(`__dp_k`) END"
            selects.append(row(i, "h", "`__dp_k`", "FALSE", "COUNT(*)", null, null,
                               f"(SELECT {top} AS `__dp_k` FROM {b} GROUP BY `__dp_u`) AS `__dp_h`",
                               " GROUP BY `__dp_k`"))
    text = "WITH `__dp_rows` AS (SELECT 1), " + ", ".join(with_parts) + " " + " UNION ALL ".join(selects)
    outer = sqlglot.parse_one(text, read=CleanRoomsSpark)
    with_node = outer.args[key]
    placeholder = with_node.expressions[0]
    placeholder.set("this", tree)
    if ctes is not None:
        for position, cte in enumerate(ctes.expressions):
            with_node.expressions.insert(position, cte)
            cte.parent = with_node
        with_node.set("expressions", list(with_node.expressions))
    outer.meta["dp"] = aggregations
    return outer
