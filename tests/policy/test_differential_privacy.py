"""Differential privacy queries: the shapes accepted and refused, and the rewrite run in DuckDB (contributions
bounded per user, values clamped, the cells the runner releases)."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from opencleanrooms.policy import dp
from opencleanrooms.runner.dp import clamped_sums, release
from opencleanrooms.privacy.mechanisms import Bounds
from tests.policy.helpers import OTHER, RUNNER, custom_rule, plan, refused, row, table

DP = {"columns": [{"name": "id"}]}


def sales(**rule):
    return table("sales", owner=OTHER, rule_type="CUSTOM", rule=custom_rule(differentialPrivacy=DP, **rule))


def visits(**rule):
    return table("visits", owner=RUNNER, rule_type="CUSTOM", rule=custom_rule(differentialPrivacy=DP, **rule))


def mine():
    return table("mine", owner=RUNNER, rule_type="CUSTOM")


# ------------------------------------------------------------------------------------------------ accepted shapes

@pytest.mark.parametrize("sql, types", [
    ("SELECT COUNT(DISTINCT id) FROM sales", ["COUNT_DISTINCT"]),
    ("SELECT COUNT(*) AS n, COUNT(amount), SUM(amount), AVG(amount), STDDEV(amount) FROM sales WHERE region = 'eu'",
     ["COUNT", "COUNT", "SUM", "AVG", "STDDEV"]),
    ("WITH eu AS (SELECT id, amount FROM sales WHERE region = 'eu') SELECT SUM(amount) FROM eu", ["SUM"]),
    ("SELECT COUNT(DISTINCT s.id), SUM(v.amount) FROM sales s JOIN visits v ON s.id = v.id",
     ["COUNT_DISTINCT", "SUM"]),
    ("SELECT AVG(s.amount) FROM sales s JOIN mine m ON s.hashed_email = m.hashed_email", ["AVG"]),
    ("SELECT COUNT(DISTINCT region) FROM (SELECT id, region FROM sales) x", ["COUNT_DISTINCT"]),
])
def test_accepted_shapes(sql, types):
    result = plan(sql, sales(), visits(), mine())
    assert [e["type"] for e in result.dp_aggregations] == types
    assert all(e["contribution_limit"] == dp.USER_CONTRIBUTION_LIMIT for e in result.dp_aggregations)
    assert result.output_columns == tuple(e["output"] for e in result.dp_aggregations)
    assert sum(result.dp_counts().values()) == len(types)
    result.sql("spark")  # both dialects render


def test_count_distinct_of_the_user_column_has_sensitivity_one():
    modes = [e["mode"] for e in plan("SELECT COUNT(DISTINCT id), COUNT(DISTINCT region) FROM sales",
                                     sales()).dp_aggregations]
    assert modes == ["users", "distinct"]


# ------------------------------------------------------------------------------------------------ refused shapes

@pytest.mark.parametrize("sql, contains", [
    ("SELECT region, COUNT(*) FROM sales GROUP BY region", "GROUP BY"),
    ("SELECT id FROM sales", "COUNT, COUNT(DISTINCT), SUM, AVG or STDDEV"),
    ("SELECT MAX(amount) FROM sales", "COUNT, COUNT(DISTINCT), SUM, AVG or STDDEV"),
    ("SELECT SUM(amount) + 1 FROM sales", "COUNT, COUNT(DISTINCT), SUM, AVG or STDDEV"),
    ("SELECT SUM(DISTINCT amount) FROM sales", "DISTINCT"),
    ("SELECT COUNT(*) FROM sales UNION ALL SELECT COUNT(*) FROM sales", "UNION"),
    ("SELECT COUNT(*) FROM sales LIMIT 1", "LIMIT"),
    ("SELECT COUNT(*) FROM sales s LEFT JOIN visits v ON s.id = v.id", "inner joins"),
    ("WITH t AS (SELECT id, SUM(amount) AS total FROM sales GROUP BY id) SELECT SUM(total) FROM t",
     "intermediate aggregation"),
    ("WITH t AS (SELECT id, amount, ROW_NUMBER() OVER (PARTITION BY id ORDER BY amount) AS r FROM sales) "
     "SELECT SUM(amount) FROM t", "window function"),
    ("SELECT COUNT(*) FROM mine WHERE id IN (SELECT id FROM sales)", "user-level rows"),
    ("SELECT SUM((SELECT MAX(amount) FROM mine)) FROM sales", "subqueries"),
    ("SELECT COUNT(*) AS __dp_n FROM sales", "reserved"),
])
def test_refused_shapes(sql, contains):
    refused(sql, sales(), visits(), mine(), contains=contains)


def test_refused_with_aggregation_thresholds():
    thresholds = [{"identityColumns": ["id"], "minimumIdentityCount": 2, "type": "COUNT_DISTINCT"}]
    refused("SELECT COUNT(*) FROM sales", sales(aggregationThresholds=thresholds), contains="aggregationThresholds")


def test_refused_when_user_column_is_not_allowed():
    rule = custom_rule(differentialPrivacy={"columns": [{"name": "nope"}]})
    refused("SELECT COUNT(*) FROM sales", table("sales", rule_type="CUSTOM", rule=rule), code="INVALID_RESOURCE")


# ------------------------------------------------------------------------------------------------ the rewrite, run


def cells(plan_, data):
    import duckdb

    from tests.policy.helpers import COLUMNS, _duck_type
    con = duckdb.connect()
    for name, scan in plan_.scan_names.items():
        con.execute(f'CREATE TABLE "{scan}" ({", ".join(f"{c} {_duck_type(t)}" for c, t in COLUMNS)})')
        if data.get(name):
            con.executemany(f'INSERT INTO "{scan}" VALUES ({", ".join("?" for _ in COLUMNS)})', data[name])
    result = con.execute(plan_.sql("duckdb"))
    names = [d[0] for d in result.description]
    return pa.Table.from_pylist([dict(zip(names, r)) for r in result.fetchall()])


def test_each_user_contributes_at_most_the_limit():
    result = plan("SELECT COUNT(*), COUNT(DISTINCT id), SUM(amount) FROM sales", sales())
    data = {"sales": [row("heavy", amount=3.0) for _ in range(50)] + [row(f"u{i}", amount=3.0) for i in range(7)]}
    table_ = cells(result, data).to_pylist()
    counts = {r["__dp_agg"]: r["__dp_n"] for r in table_ if r["__dp_kind"] == "n"}
    limit = dp.USER_CONTRIBUTION_LIMIT
    assert counts == {0: 7 + limit, 1: 8}
    sum_cells = [r for r in table_ if r["__dp_agg"] == 2 and r["__dp_kind"] == "c"]
    assert sum(r["__dp_n"] for r in sum_cells) == 7 + limit
    assert sum(r["__dp_s1"] for r in sum_cells) == 3.0 * (7 + limit)
    histogram = {r["__dp_k"]: r["__dp_n"] for r in table_ if r["__dp_agg"] == 2 and r["__dp_kind"] == "h"}
    assert histogram == {2: 8}  # 3 is in bucket 2 = [2, 4); each user counted once


def test_joined_rows_of_different_users_never_count():
    result = plan("SELECT COUNT(*) FROM sales s JOIN visits v ON s.region = v.region", sales(), visits())
    data = {"sales": [row("a"), row("b")], "visits": [row("a"), row("c")]}
    assert [r["__dp_n"] for r in cells(result, data).to_pylist()] == [1]  # only a-a: the ids must agree


def test_values_are_clamped_to_the_released_bounds():
    result = plan("SELECT SUM(amount), STDDEV(amount) FROM sales", sales())
    values = [0.5, -0.25, 3.0, 5.0, 100.0, -7.0, 1e30, float("nan")]
    data = {"sales": [row(f"u{i}", amount=v) for i, v in enumerate(values)]}
    rows = [r for r in cells(result, data).to_pylist() if r["__dp_agg"] == 0 and r["__dp_kind"] == "c"]
    found = [(r["__dp_k"], r["__dp_neg"], r["__dp_n"], r["__dp_s1"], r["__dp_s2"]) for r in rows]
    for bounds in (Bounds(-8, 8), Bounds(0, 4), Bounds(-128, 1), Bounds(0, 1)):
        total, squares, n = clamped_sums(found, bounds)
        clamp = [min(max(v, bounds.lower), bounds.upper) for v in values]
        clamp[-1] = bounds.upper  # NaN sorts above every number: clamped to the upper bound
        assert n == len(values)
        assert math.isclose(total, sum(clamp), abs_tol=1e-9), (bounds, total, sum(clamp))
        assert math.isclose(squares, sum(c * c for c in clamp), abs_tol=1e-9)


def test_release_is_noisy_and_close():
    result = plan("SELECT COUNT(DISTINCT id) AS users, SUM(amount) AS total, AVG(amount) AS mean FROM sales",
                  sales())
    data = {"sales": [row(f"u{i}", amount=float(i % 50)) for i in range(3000)]}
    exact = cells(result, data)
    answers = [release(exact, [dict(e) for e in result.dp_aggregations], 10) for _ in range(3)]
    table_, parameters = answers[0]
    assert table_.column_names == ["users", "total", "mean"]
    first = table_.to_pylist()[0]
    assert abs(first["users"] - 3000) < 200
    assert abs(first["total"] - 73500) < 0.2 * 73500
    assert abs(first["mean"] - 24.5) < 5
    assert parameters[1]["minColumnValue"] == 0 and parameters[1]["maxColumnValue"] == 64
    assert "minColumnValue" not in parameters[0]
    assert len({a[0].to_pylist()[0]["total"] for a in answers}) == 3  # repeated releases differ
