"""The "compute hidden counts, filter outside" rewrite used by output constraints and aggregation thresholds.

The aggregate query gets hidden `COUNT(DISTINCT ...)` columns and is wrapped:
`SELECT __c0 AS <name0>, ... FROM (<query>) AS __q WHERE __k0 >= m0 AND ...`, so groups below a minimum are dropped
silently and the member never sees the helper columns. ORDER BY, LIMIT, OFFSET and DISTINCT move to the outer
query so they apply to the rows that survive the filter.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp


def output_names(select: exp.Expression) -> list[str]:
    """The result column names of a (qualified) query: its projections' aliases or column names."""
    while isinstance(select, exp.SetOperation):
        select = select.this
    while isinstance(select, exp.Subquery):
        select = select.this
    return [projection.alias_or_name for projection in select.expressions]


def wrap(select: exp.Select, hidden: Sequence[tuple[exp.Expression, int]]) -> exp.Select:
    """`select` with hidden[i] = (aggregate, minimum) enforced on every output row."""
    inner = select.copy()
    names = output_names(inner)
    projections = [projection.unalias() for projection in inner.expressions]
    inner.set("expressions", [exp.alias_(p, f"__c{i}", quoted=True) for i, p in enumerate(projections)])
    order = inner.args.pop("order", None)
    limit, offset = inner.args.pop("limit", None), inner.args.pop("offset", None)
    distinct = inner.args.pop("distinct", None)
    with_ = inner.args.pop("with", None)
    for i, (expression, _) in enumerate(hidden):
        inner.append("expressions", exp.alias_(expression, f"__k{i}", quoted=True))
    outer_order = []
    if order is not None:
        for i, ordered in enumerate(order.expressions):
            target = ordered.this
            index = _projection_index(target, names, projections)
            if index is None:
                inner.append("expressions", exp.alias_(target.copy(), f"__o{i}", quoted=True))
                reference = exp.column(f"__o{i}", "__q", quoted=True)
            else:
                reference = exp.column(f"__c{index}", "__q", quoted=True)
            moved = ordered.copy()
            moved.set("this", reference)
            outer_order.append(moved)
    outer = exp.select(*[exp.alias_(exp.column(f"__c{i}", "__q", quoted=True), name, quoted=True)
                         for i, name in enumerate(names)]).from_(inner.subquery("__q", copy=False), copy=False)
    conditions = [exp.GTE(this=exp.column(f"__k{i}", "__q", quoted=True), expression=exp.Literal.number(minimum))
                  for i, (_, minimum) in enumerate(hidden)]
    if conditions:
        outer.where(exp.and_(*conditions, copy=False), copy=False)
    if outer_order:
        outer.set("order", exp.Order(expressions=outer_order))
    if distinct is not None:
        outer.set("distinct", distinct)
    if with_ is not None:  # CTEs stay at the top, where every engine accepts them
        outer.set("with", with_)
    if limit is not None:
        outer.set("limit", limit)
    if offset is not None:
        outer.set("offset", offset)
    return outer


def _projection_index(target: exp.Expression, names: list[str], projections: list[exp.Expression]) -> int | None:
    if isinstance(target, exp.Column) and not target.table and target.name in names:
        return names.index(target.name)  # ORDER BY an output alias
    for i, projection in enumerate(projections):
        if projection == target:
            return i
    return None
