"""Differential privacy on CUSTOM tables: check the query's shape, then rewrite it so each user's contribution is
bounded and the engine returns what the runner needs to release every aggregate with noise.

v1 accepts the shapes whose privacy we can prove (docs/differential-privacy.md): a final SELECT of COUNT,
COUNT(DISTINCT), SUM, AVG and STDDEV aggregates, optionally with GROUP BY plain expressions (each user keeps the rows
of one group; the runner releases only groups whose noisy user count passes OpenDP's threshold), over user-level
rows: CTEs and derived tables that only filter, join and project (thresholds._Tracer proves it and carries each DP
table's user-id column up), inner joins only. ORDER BY outputs and LIMIT are kept for the runner to apply to the
noisy rows (post-processing). Everything else (HAVING on exact aggregates, ROLLUP, OFFSET, ...) is refused.

The rewrite keeps the query's FROM/WHERE as a CTE of user-level rows (user id + one value per aggregate + the group
keys), sums them up per user (and group key) in one hash aggregation, keeps one group per user (the smallest key),
and counts each user as at most USER_CONTRIBUTION_LIMIT rows (a user over the limit counts as the limit times their
mean). It returns a long table: per group the distinct users ('u' rows, for the key release), per aggregate (and
group) its exact count ('n' rows), or, for value aggregates, per signed magnitude bucket of the users' magnitude
(root mean square, or the mean's magnitude when no STDDEV needs squares) their users and weighted sums ('c' rows,
from which runner/dp.clamped_sums brings every user within any released bounds, and whose users, summed over signs
and groups, are the histogram of the private bounds).
The query's own part (its CTEs and the user-level rows) stays a tree, rendered per engine; the rest depends only
on the query's shape, so render() renders it once per shape.
The runner (runner/dp.py) turns that into the noisy answer; the clamped sums are exact functions of these cells.
"""

from __future__ import annotations

import functools

import sqlglot
from sqlglot import exp

from opencleanrooms.policy import transpile
from opencleanrooms.policy.lineage import DIRECT, Flow, scope_nodes
from opencleanrooms.policy.parse import CleanRoomsSpark, fragment, reject
from opencleanrooms.policy.resolve import Relations
from opencleanrooms.policy.thresholds import _Tracer

USER_CONTRIBUTION_LIMIT = 5  # rows each user may contribute to one query (public, reported in sensitivityParameters)
USER_GROUP_LIMIT = 1  # groups each user may contribute to in a GROUP BY query (privacy.mechanisms assumes 1)
BUCKET_LIMIT = 64  # privacy.mechanisms.BUCKET_LIMIT: values are clamped to +-2^64 before bucketing
_EDGE = float(2 ** BUCKET_LIMIT)
_PREFIX = "__dp"
_KINDS = {exp.Count: "COUNT", exp.Sum: "SUM", exp.Avg: "AVG", exp.Stddev: "STDDEV", exp.StddevSamp: "STDDEV",
          exp.StddevPop: "STDDEV"}
RESULT_COLUMNS = ("__dp_agg", "__dp_kind", "__dp_k", "__dp_neg", "__dp_n", "__dp_h", "__dp_s1", "__dp_s2", "__dp_s3")
# ... then, in a GROUP BY query, one column per group key: __dp_g0, __dp_g1, ...


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
    """The rewritten tree; its `meta['dp']` lists the outputs the runner releases (in output order: aggregates, and
    group keys as mode 'key'), `meta['dp_release']` the grouping, ORDER BY and LIMIT the runner applies."""
    users = user_columns(relations)
    first = sorted(users)[0]
    why = f"Differential privacy query on `{first}` not supported"
    if not isinstance(tree, exp.Select):
        reject(f"{why}: the final query must be one SELECT of aggregates (no UNION, INTERSECT or EXCEPT).")
    for arg, what in (("having", "HAVING"), ("qualify", "QUALIFY"), ("offset", "OFFSET"),
                      ("distinct", "SELECT DISTINCT")):
        if tree.args.get(arg):
            detail = (" (it would filter groups on their exact aggregates; filter the noisy result instead)"
                      if arg == "having" else "")
            reject(f"{why}: {what} in the final SELECT{detail}.")
    for join in tree.find_all(exp.Join):
        if join.side or (join.kind and join.kind.upper() != "INNER"):
            reject(f"{why}: only inner joins are supported (`{fragment(join, 60)}`).")
    root = flow.root
    if any(isinstance(node, exp.Window) for node in scope_nodes(root)):
        reject(f"{why}: window functions in the final SELECT.")
    keys = _group_keys(tree, why)
    aggregations = [_output(projection, flow, users, keys, why) for projection in tree.expressions]
    release = {"groups": len(keys), "order": _order(tree, aggregations, why), "limit": _limit(tree, why)}
    if keys:
        release["expression"] = (f"COUNT(DISTINCT {first}.{users[first]}) per group of GROUP BY "
                                 + ", ".join(fragment(k, 60) for k in keys))[:400]
        release["contribution_limit"] = USER_GROUP_LIMIT
    tree.set("order", None)
    tree.set("limit", None)

    tracer = _Tracer(relations, {identifier.name for identifier in tree.find_all(exp.Identifier)})
    identities: list[exp.Expression] = []
    for name in sorted(users):
        identities += tracer.trace(root, name, users[name])
        if tracer.untraced(tree, name):
            reject(f"{why}: table `{name}` is read where its rows do not reach the final aggregation as "
                   f"user-level rows (a subquery in an expression, a semi or anti join, or an unused CTE).")
    if not identities:
        reject(f"{why}: the final SELECT does not read the table's user-level rows.")
    outer = _rewrite(tree, aggregations, identities, keys)
    outer.meta["dp_release"] = release
    return outer


def _group_keys(tree: exp.Select, why: str) -> list[exp.Expression]:
    """The GROUP BY expressions: plain expressions of the row (no ROLLUP, CUBE, GROUPING SETS or aggregates)."""
    group = tree.args.get("group")
    if not group:
        return []
    if any(group.args.get(arg) for arg in ("rollup", "cube", "grouping_sets", "totals", "all")):
        reject(f"{why}: GROUP BY supports plain expressions only (no ROLLUP, CUBE, GROUPING SETS or ALL).")
    keys = list(group.expressions)
    if not keys or any(isinstance(k, (exp.Rollup, exp.Cube, exp.GroupingSets)) for k in keys):
        reject(f"{why}: GROUP BY supports plain expressions only (no ROLLUP, CUBE, GROUPING SETS or ALL).")
    for key in keys:
        if any(isinstance(n, (exp.AggFunc, exp.Window, exp.Subquery, exp.Select)) for n in key.walk()):
            reject(f"{why}: GROUP BY expressions may not hold aggregates, window functions or subqueries "
                   f"(`{fragment(key)}`).")
    return keys


def _output(projection: exp.Expression, flow: Flow, users: dict[str, str], keys: list[exp.Expression],
            why: str) -> dict:
    """One output: a group key (released only for groups that pass the user threshold) or an aggregate."""
    node = projection.this if isinstance(projection, exp.Alias) else projection
    for index, key in enumerate(keys):
        if node == key:
            return {"output": projection.alias_or_name, "mode": "key", "key": index}
    if keys and not isinstance(node, tuple(_KINDS)):
        reject(f"{why}: every output of a grouped SELECT must be a GROUP BY expression or one of COUNT, "
               f"COUNT(DISTINCT), SUM, AVG or STDDEV, not `{fragment(node, 60)}`.")
    return _aggregation(projection, flow, users, why)


def _order(tree: exp.Select, outputs: list[dict], why: str) -> list[dict]:
    """ORDER BY of outputs, applied by the runner to the noisy rows (post-processing, so it costs no privacy)."""
    order = tree.args.get("order")
    if not order:
        return []
    names = [entry["output"] for entry in outputs]
    nodes = [p.this if isinstance(p, exp.Alias) else p for p in tree.expressions]
    items = []
    for ordered in order.expressions:
        node = ordered.this
        index = None
        if isinstance(node, exp.Column) and not node.table and node.name in names:
            index = names.index(node.name)
        elif node in nodes:
            index = nodes.index(node)
        if index is None:
            reject(f"{why}: ORDER BY may only name outputs of the SELECT (it sorts the noisy answer), not "
                   f"`{fragment(node, 60)}`.")
        desc = bool(ordered.args.get("desc"))
        nulls_first = ordered.args.get("nulls_first")
        items.append({"output": index, "desc": desc, "nulls_first": (not desc) if nulls_first is None
                      else bool(nulls_first)})
    return items


def _limit(tree: exp.Select, why: str) -> int | None:
    """LIMIT n keeps the first n noisy rows (post-processing); only a literal count is accepted."""
    limit = tree.args.get("limit")
    if not limit:
        return None
    value = limit.expression
    if not (isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()):
        reject(f"{why}: LIMIT must be a whole number (`{fragment(limit, 60)}`).")
    return int(value.this)


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


_ROWS = _q("__dp_rows")


def _clamp(value: str) -> str:
    """`value` within +-2^64 (NaN to the upper edge: it sorts above every number in both engines)."""
    return f"LEAST(GREATEST({value}, -{_EDGE!r}), {_EDGE!r})"


def render(tree: exp.Expression, wrapper: str, dialect: str, schema) -> str:
    """A rewritten query in `dialect`: the query's user-level rows (`tree`, which ends in `SELECT * FROM
    __dp_rows`), continued by the wrapper's CTEs and final SELECT. The wrapper depends only on the query's shape
    (its aggregates and groups), so it is parsed and rendered once per shape and dialect."""
    text = transpile.render(tree, dialect, schema)
    tail = _tail(dialect)
    if not text.endswith(tail):
        raise ValueError("the rows of a differential privacy query do not end in their placeholder")
    return text[: -len(tail)] + ", " + _wrapper(wrapper, dialect)


@functools.lru_cache(maxsize=256)
def _tail(dialect: str) -> str:
    return " " + transpile.render(sqlglot.parse_one(f"SELECT * FROM {_ROWS}", read=CleanRoomsSpark), dialect)


@functools.lru_cache(maxsize=256)
def _wrapper(text: str, dialect: str) -> str:
    """The wrapper's CTEs and final SELECT in `dialect` (without the leading WITH)."""
    tree = sqlglot.parse_one(text, read=CleanRoomsSpark)
    for cast in tree.find_all(exp.Cast):  # counts and bucket numbers: whole numbers, nothing to truncate
        cast.meta["integral"] = True
    rendered = transpile.render(tree, dialect)
    if not rendered.startswith("WITH "):
        raise ValueError("the differential privacy wrapper does not start with its CTEs")
    return rendered[len("WITH "):]


def _rewrite(tree: exp.Select, aggregations: list[dict], identities: list[exp.Expression],
             keys: list[exp.Expression]) -> exp.Expression:
    key = "with_" if "with_" in exp.Select.arg_types else "with"
    ctes = tree.args.get(key)
    tree.set(key, None)
    tree.set("group", None)
    user = identities[0].copy()
    projections = [exp.alias_(user, "__dp_u", quoted=True)]
    cells_of: dict[str, int] = {}
    for i, entry in enumerate(aggregations):
        if entry["mode"] == "key":
            continue
        argument = entry.pop("argument")
        if entry["mode"] == "cells":
            # value aggregates of the same argument share one set of cells (each still releases its own bounds)
            first = cells_of.setdefault(argument.sql("spark"), i)
            if first != i:
                entry["cells_of"] = first
                continue
            value = exp.TryCast(this=argument.copy(), to=exp.DataType.build("DOUBLE"))
            projections.append(exp.alias_(value, f"__dp_v{i}", quoted=True))
        elif entry["mode"] in ("values", "distinct"):
            projections.append(exp.alias_(argument.copy(), f"__dp_v{i}", quoted=True))
    groups = [f"__dp_g{j}" for j in range(len(keys))]
    projections += [exp.alias_(k.copy(), g, quoted=True) for k, g in zip(keys, groups, strict=True)]
    tree.set("expressions", projections)
    condition: exp.Expression = exp.Not(this=exp.Is(this=user.copy(), expression=exp.Null()))
    for other in identities[1:]:  # rows joined across DP tables belong to one user only when the ids agree
        condition = exp.and_(condition, exp.EQ(this=user.copy(), expression=other.copy()))
    tree.where(condition, copy=False)

    # an argument only STDDEV needs squares of: its users are bucketed (and scaled) by their root mean square;
    # otherwise by their mean's magnitude, which needs only each user's count and sum of values
    rms = {entry.get("cells_of", i) for i, entry in enumerate(aggregations) if entry.get("type") == "STDDEV"}
    g_cols = [_q(g) for g in groups]
    g_list = "".join(f", {g}" for g in g_cols)  # appended to projections and GROUP BYs
    limit = USER_CONTRIBUTION_LIMIT
    # 1. one hash aggregation of the rows by user (and group key): what each user has, summed up
    per_user, clamped = (["COUNT(*) AS `__dp_c`"] if any(e["mode"] == "rows" for e in aggregations) else []), []
    for i, entry in enumerate(aggregations):
        v = _q(f"__dp_v{i}")
        if entry["mode"] == "values":
            per_user.append(f"COUNT({v}) AS {_q(f'__dp_n{i}')}")
        elif entry["mode"] == "cells" and "cells_of" not in entry and i in rms:
            # +-inf and NaN clamped too (NaN sorts above every number); NULL stays NULL (GREATEST skips NULLs)
            x = _q(f"__dp_x{i}")
            clamped.append(f"CASE WHEN {v} IS NULL THEN NULL ELSE {_clamp(v)} END AS {x}")
            per_user += [f"COUNT({v}) AS {_q(f'__dp_n{i}')}", f"SUM({x}) AS {_q(f'__dp_m{i}')}",
                         f"SUM({x} * {x}) AS {_q(f'__dp_q{i}')}"]  # sums: each user's means follow from them
        elif entry["mode"] == "cells" and "cells_of" not in entry:  # the mean is clamped (per user, below)
            per_user += [f"COUNT({v}) AS {_q(f'__dp_n{i}')}", f"SUM({v}) AS {_q(f'__dp_m{i}')}"]
    source = f"(SELECT *, {', '.join(clamped)} FROM `__dp_rows`) AS `__dp_x`" if clamped else "`__dp_rows`"
    summed = f"SELECT `__dp_u`{g_list}, {', '.join(per_user)} FROM {source} GROUP BY `__dp_u`{g_list}"
    with_parts = [f"`__dp_pu` AS ({summed})"]
    # 2. one row per user: in a GROUP BY query, the user's group of smallest key only
    if groups:
        with_parts.append(f"`__dp_one` AS (SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY `__dp_u` "
                          f"ORDER BY {', '.join(g_cols)}) AS `__dp_rn` FROM `__dp_pu`) AS `__dp_r` "
                          f"WHERE `__dp_rn` = 1)")
        one = "`__dp_one`"
    else:
        one = "`__dp_pu`"
    selects = []
    null = "CAST(NULL AS DOUBLE)"

    def row(i: int, kind: str, k: str, neg: str, n: str, sums: tuple[str, str, str], source: str,
            extra: str = "", users: str = "0") -> str:
        if groups:
            extra = f"{extra}, {g_list[2:]}" if extra else f" GROUP BY {g_list[2:]}"
        s1, s2, s3 = sums
        return (f"SELECT {i} AS `__dp_agg`, '{kind}' AS `__dp_kind`, {k} AS `__dp_k`, {neg} AS `__dp_neg`, "
                f"CAST({n} AS BIGINT) AS `__dp_n`, CAST({users} AS BIGINT) AS `__dp_h`, {s1} AS `__dp_s1`, "
                f"{s2} AS `__dp_s2`, {s3} AS `__dp_s3`{g_list} FROM {source}{extra}")

    no_sums = (null, null, null)
    if groups:  # users per group, for the thresholded key release (first, so the key columns get their types)
        selects.append(row(-1, "u", "0", "FALSE", "COUNT(*)", no_sums, one))
    for i, entry in enumerate(aggregations):
        mode, v = entry["mode"], _q(f"__dp_v{i}")
        if mode == "key" or "cells_of" in entry:
            continue
        if mode == "users":  # sensitivity 1: one row per user
            selects.append(row(i, "n", "0", "FALSE", "COUNT(*)", no_sums, one))
        elif mode == "rows":  # each user's rows count up to the limit
            selects.append(row(i, "n", "0", "FALSE", f"SUM(LEAST(`__dp_c`, {limit}))", no_sums, one))
        elif mode == "values":
            selects.append(row(i, "n", "0", "FALSE", f"SUM(LEAST({_q(f'__dp_n{i}')}, {limit}))", no_sums, one))
        elif mode == "distinct":  # each user brings up to `limit` of their distinct values (the smallest)
            d = _q(f"__dp_d{i}")
            join = ("" if not groups else " JOIN `__dp_one` AS `__dp_o` ON `__dp_e`.`__dp_u` = `__dp_o`.`__dp_u` AND "
                    + " AND ".join(f"`__dp_e`.{g} <=> `__dp_o`.{g}" for g in g_cols))
            e_groups = "".join(f", `__dp_e`.{g}" for g in g_cols)
            with_parts.append(
                f"{d} AS (SELECT `__dp_w`{g_list} FROM (SELECT `__dp_e`.`__dp_w`{e_groups}, ROW_NUMBER() OVER "
                f"(PARTITION BY `__dp_e`.`__dp_u` ORDER BY `__dp_e`.`__dp_w`) AS `__dp_rn` FROM (SELECT DISTINCT "
                f"`__dp_u`, {v} AS `__dp_w`{g_list} FROM `__dp_rows` WHERE {v} IS NOT NULL) AS `__dp_e`{join}) "
                f"AS `__dp_f` WHERE `__dp_rn` <= {limit})")
            selects.append(row(i, "n", "0", "FALSE", "COUNT(DISTINCT `__dp_w`)", no_sums, d))
        else:  # per user: weight min(values, limit), mean, mean square and magnitude r, by the user's bucket
            n, m, q = _q(f"__dp_n{i}"), _q(f"__dp_m{i}"), _q(f"__dp_q{i}")
            b = _q(f"__dp_b{i}")
            magnitude = f"CASE WHEN `__dp_r` < 1 THEN 0.0 ELSE LEAST(FLOOR(LOG(2, `__dp_r`)) + 1, {BUCKET_LIMIT}) END"
            weight = f"LEAST({n}, {limit}) AS `__dp_w`"
            if i in rms:  # mean and mean square of the clamped values; r = the root mean square
                means = (f"SELECT {weight}, {m} / {n} AS `__dp_m`, {q} / {n} AS `__dp_q`{g_list} FROM {one} "
                         f"WHERE {n} > 0")
                r = "SQRT(`__dp_q`)"
            else:  # the mean of the values as they are, clamped (+-inf and NaN too); r = its magnitude
                means = (f"SELECT *, `__dp_m` * `__dp_m` AS `__dp_q` FROM (SELECT {weight}, {_clamp(f'{m} / {n}')} "
                         f"AS `__dp_m`{g_list} FROM {one} WHERE {n} > 0) AS `__dp_o`")
                r = "ABS(`__dp_m`)"
            with_parts.append(
                f"{b} AS (SELECT CASE WHEN `__dp_m` < 0 THEN -`__dp_e` ELSE `__dp_e` END AS `__dp_k`, "
                f"`__dp_m` < 0 AS `__dp_neg`, `__dp_w`, `__dp_m`, `__dp_q`, `__dp_r`{g_list} FROM (SELECT *, "
                f"{magnitude} AS `__dp_e` FROM (SELECT *, {r} AS `__dp_r` FROM ({means}) AS `__dp_p`) "
                f"AS `__dp_a`) AS `__dp_s`)")
            k_out = "CAST(`__dp_k` AS BIGINT)"
            ratio = "CASE WHEN `__dp_r` > 0 THEN `__dp_m` / `__dp_r` ELSE 0.0 END"
            selects.append(row(i, "c", k_out, "`__dp_neg`", "SUM(`__dp_w`)",
                               ("SUM(`__dp_w` * `__dp_m`)", "SUM(`__dp_w` * `__dp_q`)", f"SUM(`__dp_w` * {ratio})"),
                               b, " GROUP BY `__dp_k`, `__dp_neg`", users="COUNT(*)"))
    outer = sqlglot.parse_one(f"WITH {_ROWS} AS (SELECT 1) SELECT * FROM {_ROWS}", read=CleanRoomsSpark)
    with_node = outer.args[key]
    with_node.expressions[0].set("this", tree)
    if ctes is not None:
        for position, cte in enumerate(ctes.expressions):
            with_node.expressions.insert(position, cte)
            cte.parent = with_node
        with_node.set("expressions", list(with_node.expressions))
    outer.meta["dp_wrapper"] = "WITH " + ", ".join(with_parts) + " " + " UNION ALL ".join(selects)
    outer.meta["dp"] = aggregations
    return outer
