"""Render a plan's tree (Spark semantics) as engine SQL.

Spark is the reference: a query must give the same rows on every engine. sqlglot translates most of Spark SQL to
DuckDB; the differences that change results are fixed here on a copy of the tree, and pinned by
tests/policy/test_transpile.py:

- One error policy, Spark's non-ANSI mode (what sqlglot's Spark dialect assumes): a failed CAST is NULL (every CAST
  becomes TRY_CAST), division, integer division and modulo by zero are NULL.
- Spark's TIMESTAMP is a timestamp without a zone offset in the result (session time zone = UTC here); sqlglot reads
  it as TIMESTAMPTZ, which DuckDB would render with an offset: casts use TIMESTAMP.
- date_add/date_sub/add_months return DATE in Spark; DuckDB's date + interval is a TIMESTAMP: cast back to DATE.
- Spark sorts NULLs first in ascending order and last in descending order; DuckDB sorts them last in both: every
  ORDER BY item gets its null ordering spelled out.

Known remaining differences (documented, not fixed): approx_count_distinct estimates differ; integer overflow wraps
in non-ANSI Spark but fails the query in DuckDB; floating-point aggregates may differ in the last digits.
"""

from __future__ import annotations

from sqlglot import exp

DIALECTS = ("duckdb", "spark")


def render(tree: exp.Expression, dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ValueError(f"unsupported dialect {dialect!r}; use one of {DIALECTS}")
    if dialect == "spark":
        return tree.sql("spark", identify=True)
    return to_duckdb(tree).sql("duckdb", identify=True)


def to_duckdb(tree: exp.Expression) -> exp.Expression:
    """A copy of `tree` with Spark's semantics made explicit for DuckDB."""
    tree = tree.copy()
    for node in list(tree.walk()):
        if isinstance(node, exp.Ordered):
            _null_ordering(node)
        elif isinstance(node, exp.DataType) and node.is_type("timestamptz", "timestampltz"):
            node.replace(exp.DataType.build("TIMESTAMP"))
    for node in list(tree.walk()):
        if isinstance(node, exp.Cast) and not isinstance(node, exp.TryCast):
            node.replace(exp.TryCast(this=node.this, to=node.to))
        elif isinstance(node, exp.IntDiv):
            node.set("expression", exp.Nullif(this=node.expression, expression=exp.Literal.number(0)))
    for node in list(tree.find_all(exp.TsOrDsAdd, exp.AddMonths, exp.DateAdd, exp.DateSub)):
        if node.parent is not None and not (isinstance(node.parent, exp.Cast) and node.parent.to.is_type("date")):
            node.replace(exp.Cast(this=node.copy(), to=exp.DataType.build("DATE")))
    return tree


def _null_ordering(ordered: exp.Ordered) -> None:
    """Spark: NULLS FIRST for ASC, NULLS LAST for DESC, unless the query says otherwise."""
    if ordered.args.get("nulls_first") is None:
        ordered.set("nulls_first", not ordered.args.get("desc"))
