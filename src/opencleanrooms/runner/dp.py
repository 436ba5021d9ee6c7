"""Release a differential privacy query's answer: the engine returned exact, user-bounded cells (policy/dp.py);
every number that leaves here is drawn by privacy.mechanisms (OpenDP), one release per unit the query paid for.

COUNT and COUNT(DISTINCT) are one release each. SUM, AVG and STDDEV first release bounds from the histogram of
users per magnitude bucket (private_bounds), then their sums with every user brought within those bounds. The
bounded sums are computed exactly from the cells (clamped_sums): a bucket inside the bounds adds its own sums, a
bucket beyond them adds its users scaled down to the bound.

GROUP BY: the groups released are those whose noisy distinct-user count passes OpenDP's threshold
(mechanisms.release_groups); each user's rows are in one group (policy/dp.py), so every aggregate's per-group
releases compose in parallel. ORDER BY and LIMIT are then applied to the noisy rows (post-processing).
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa

from opencleanrooms.policy.model import key_release_parameter
from opencleanrooms.privacy import mechanisms
from opencleanrooms.privacy.mechanisms import Bounds


def release(table: pa.Table, aggregations: list[dict], users_noise_per_query: int,
            options: dict | None = None) -> tuple[pa.Table, list[dict]]:
    """The noisy answer (the query's own output columns: one row, or one per released group) and the
    sensitivityParameters used."""
    options = options or {}
    groups = int(options.get("groups") or 0)
    names = [f"__dp_g{j}" for j in range(groups)]
    counts: dict[tuple, dict[int, int]] = defaultdict(dict)  # group -> aggregate -> exact count
    cells: dict[tuple, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    histograms: dict[int, dict[int, int]] = defaultdict(dict)
    users: dict[tuple, int] = {}
    for row in table.to_pylist():
        i, kind, n = int(row["__dp_agg"]), row["__dp_kind"], int(row["__dp_n"] or 0)
        group = _group(row, names)
        if kind == "u":
            users[group] = n
        elif kind == "n":
            counts[group][i] = n
        elif kind == "c":
            k = int(row["__dp_k"])
            cells[group][i].append((k, bool(row["__dp_neg"]), n, float(row["__dp_s1"] or 0.0),
                                    float(row["__dp_s2"] or 0.0), float(row["__dp_s3"] or 0.0)))
            histogram = histograms[i]  # users per bucket, over both signs and every group
            histogram[k] = histogram.get(k, 0) + int(row["__dp_h"] or 0)
    n_noise = users_noise_per_query
    if groups:  # which groups exist is itself private: release only those whose noisy user count passes
        ids = {str(position): group for position, group in enumerate(users)}
        released = mechanisms.release_groups({key: users[group] for key, group in ids.items()}, n_noise)
        keys = sorted((ids[key] for key in released), key=_sort_key)
    else:
        keys = [()]
    # one private bounds release per value aggregate (each pays for its own), from its argument's shared cells
    bounds = {i: mechanisms.private_bounds(histograms.get(entry.get("cells_of", i), {}), n_noise)
              for i, entry in enumerate(aggregations) if entry["mode"] == "cells"}
    columns, fields, parameters = [], [], []
    for i, entry in enumerate(aggregations):
        if entry["mode"] == "key":
            j = int(entry["key"])
            columns.append([group[j] for group in keys])
            fields.append(pa.field(entry["output"], table.schema.field(names[j]).type))
            continue
        limit = int(entry["contribution_limit"])
        parameter = {"aggregationType": entry["type"], "aggregationExpression": entry["expression"],
                     "userContributionLimit": limit}
        # each user's rows are in one group, so the per-group releases of one aggregate compose in parallel
        source = entry.get("cells_of", i)
        values = [_noisy(entry, counts[group].get(i, 0), cells[group].get(source, []), bounds.get(i), limit,
                         n_noise) for group in keys]
        if entry["mode"] == "cells":
            parameter.update(minColumnValue=float(bounds[i].lower), maxColumnValue=float(bounds[i].upper))
        columns.append(values)
        fields.append(pa.field(entry["output"], pa.float64() if entry["mode"] == "cells" else pa.int64()))
        parameters.append(parameter)
    if groups:
        parameters.append(key_release_parameter(options))
    rows = _order(list(zip(*columns, strict=True)) if columns else [], options.get("order") or [])
    if options.get("limit") is not None:
        rows = rows[: int(options["limit"])]
    arrays = [pa.array([r[c] for r in rows], type=f.type) for c, f in enumerate(fields)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields)), parameters


def _noisy(entry: dict, count: int, cells: list, bounds: Bounds | None, limit: int, n_noise: int):
    if entry["mode"] == "users":
        return mechanisms.noisy_count_distinct(count, n_noise)
    if entry["mode"] in ("rows", "values", "distinct"):
        # a user's (at most `limit`) rows change a row count, or a count of distinct values, by at most `limit`
        return mechanisms.noisy_count(count, limit, n_noise)
    total, squares, n = clamped_sums(cells, bounds)
    if entry["type"] == "SUM":
        return float(mechanisms.noisy_sum(total, bounds, limit, n_noise))
    if entry["type"] == "AVG":
        return mechanisms.noisy_avg(total, n, bounds, limit, n_noise)
    return mechanisms.noisy_stddev(total, squares, n, bounds, limit, n_noise)


def _group(row: dict, names: list[str]) -> tuple:
    """A group's key as a hashable tuple (lists and maps become tuples)."""
    return tuple(_hashable(row[name]) for name in names)


def _hashable(value):
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _sort_key(group: tuple) -> tuple:
    """Released groups in key order (NULL first), never in the engine's order, which could depend on the data."""
    return tuple((0, "") if v is None else (1, v) for v in group)


def _order(rows: list[tuple], order: list[dict]) -> list[tuple]:
    """ORDER BY over the noisy rows (post-processing): stable sorts from the last key to the first."""
    for item in reversed(order):
        c, desc, nulls_first = int(item["output"]), bool(item["desc"]), bool(item["nulls_first"])
        present = sorted((r for r in rows if r[c] is not None), key=lambda r: r[c], reverse=desc)
        missing = [r for r in rows if r[c] is None]
        rows = missing + present if nulls_first else present + missing
    return rows


def clamped_sums(cells, bounds: Bounds) -> tuple[float, float, int]:
    """Sum, sum of squares and count of the users' weighted values after clamping to `bounds` (powers of two, as
    private_bounds returns them). Cell (k, negative) holds the users whose magnitude r (root mean square, or |mean|:
    policy/dp.py) is in magnitude bucket k and whose mean m has that sign: n = sum of weights w, s1 = sum of w * m,
    s2 = sum of w * r^2 and s3 = sum of w * m / r. A user beyond the bound E on their side has all their values
    scaled by E / r (with r = |mean|: their mean clamped), so they add E * (w * m / r) and E^2 * w: their mean stays
    within the bounds and their mean square within E^2."""
    upper_bucket = int(bounds.upper).bit_length() - 1  # upper = 2^m, m >= 0
    lower_bucket = int(-bounds.lower).bit_length() - 1 if bounds.lower < 0 else None  # lower = -2^a or 0
    total, squares, rows = 0.0, 0.0, 0
    for k, negative, n, s1, s2, s3 in cells:
        rows += n
        if k > 0:
            inside, edge = k <= upper_bucket, bounds.upper
        elif k < 0:
            inside, edge = lower_bucket is not None and -k <= lower_bucket, -bounds.lower
        else:  # r < 1: inside unless negative and the lower bound is 0
            inside, edge = (not negative) or bounds.lower < 0, -bounds.lower
        if inside:
            total, squares = total + s1, squares + s2
        else:
            total, squares = total + edge * s3, squares + n * edge * edge
    return total, squares, rows
