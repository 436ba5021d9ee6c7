"""Release a differential privacy query's answer: the engine returned exact, user-bounded cells (policy/dp.py);
every number that leaves here is drawn by privacy.mechanisms (OpenDP), one release per unit the query paid for.

COUNT and COUNT(DISTINCT) are one release each. SUM, AVG and STDDEV first release clamping bounds from the
histogram of users per magnitude bucket (private_bounds), then their sums over values clamped to those bounds.
The clamped sums are computed exactly from the cells: a bucket inside the bounds adds its own sums, a bucket beyond
them adds the bound once per row.
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa

from opencleanrooms.privacy import mechanisms
from opencleanrooms.privacy.mechanisms import Bounds


def release(table: pa.Table, aggregations: list[dict], users_noise_per_query: int) -> tuple[pa.Table, list[dict]]:
    """The one-row noisy answer (the query's own output columns) and the sensitivityParameters used."""
    counts: dict[int, int] = {}
    cells: dict[int, list[tuple[int, bool, int, float, float]]] = defaultdict(list)
    histograms: dict[int, dict[int, int]] = defaultdict(dict)
    for row in table.to_pylist():
        i, kind, n = int(row["__dp_agg"]), row["__dp_kind"], int(row["__dp_n"] or 0)
        if kind == "n":
            counts[i] = n
        elif kind == "c":
            cells[i].append((int(row["__dp_k"]), bool(row["__dp_neg"]), n, float(row["__dp_s1"] or 0.0),
                             float(row["__dp_s2"] or 0.0)))
        elif kind == "h":
            histograms[i][int(row["__dp_k"])] = n
    columns, types, parameters = [], [], []
    n_noise = users_noise_per_query
    for i, entry in enumerate(aggregations):
        limit = int(entry["contribution_limit"])
        parameter = {"aggregationType": entry["type"], "aggregationExpression": entry["expression"],
                     "userContributionLimit": limit}
        if entry["mode"] == "users":
            value, kind = mechanisms.noisy_count_distinct(counts.get(i, 0), n_noise), pa.int64()
        elif entry["mode"] in ("rows", "values", "distinct"):
            # a user's (at most `limit`) rows change a row count, or a count of distinct values, by at most `limit`
            value, kind = mechanisms.noisy_count(counts.get(i, 0), limit, n_noise), pa.int64()
        else:
            bounds = mechanisms.private_bounds(histograms.get(i, {}), n_noise)
            total, squares, n = clamped_sums(cells.get(i, []), bounds)
            if entry["type"] == "SUM":
                value = float(mechanisms.noisy_sum(total, bounds, limit, n_noise))
            elif entry["type"] == "AVG":
                value = mechanisms.noisy_avg(total, n, bounds, limit, n_noise)
            else:
                value = mechanisms.noisy_stddev(total, squares, n, bounds, limit, n_noise)
            kind = pa.float64()
            parameter.update(minColumnValue=float(bounds.lower), maxColumnValue=float(bounds.upper))
        columns.append([value])
        types.append(pa.field(entry["output"], kind))
        parameters.append(parameter)
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, types)],
                                schema=pa.schema(types)), parameters


def clamped_sums(cells, bounds: Bounds) -> tuple[float, float, int]:
    """Sum, sum of squares and count of the rows' values clamped to `bounds` (powers of two, as private_bounds
    returns them): cell (k, negative) holds values of magnitude bucket k already clamped to the bucket's edge."""
    upper_bucket = int(bounds.upper).bit_length() - 1  # upper = 2^m, m >= 0
    lower_bucket = int(-bounds.lower).bit_length() - 1 if bounds.lower < 0 else None  # lower = -2^a or 0
    total, squares, rows = 0.0, 0.0, 0
    for k, negative, n, s1, s2 in cells:
        rows += n
        if k > 0:
            inside, edge = k <= upper_bucket, bounds.upper
        elif k < 0:
            inside, edge = lower_bucket is not None and -k <= lower_bucket, bounds.lower
        else:  # |v| < 1: inside unless negative and the lower bound is 0
            inside, edge = (not negative) or bounds.lower < 0, bounds.lower
        if inside:
            total, squares = total + s1, squares + s2
        else:
            total, squares = total + n * edge, squares + n * edge * edge
    return total, squares, rows
