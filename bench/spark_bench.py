"""The same protected query on DuckDB and on Spark (through Spark Connect), at two data sizes.

    .venv/bin/python -m bench.spark_bench [--rows 1000000 20000000] [--repeat 3] [--spark-remote sc://HOST:PORT]

The query is engine_bench's join with GROUP BY and COUNT DISTINCT, written in Spark SQL and rendered for each engine
by the policy layer, as a protected query is; both engines get the same TableScans (the catalog's schema and
files). Without --spark-remote a local Spark Connect server is started from the installed pyspark (local[2], as the
tests do) and its start-up time is reported. For each size: DuckDB's median, Spark's first (cold) run and warm
median, and whether both returned the same rows. The break-even is where Spark's cost per query stops exceeding
DuckDB's: on one small machine, never; the figures show by how much, and what a cluster must repay.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import sqlglot

from bench.engine_bench import QUERY, generate
from opencleanrooms.catalog import make_source, prepare_scan, read_schema
from opencleanrooms.engines import CancelToken, Limits, TableScan, open_engine
from opencleanrooms.policy.transpile import render


def scans_for(a: str, b: str) -> list[TableScan]:
    out = []
    for name, path, columns in (("t0", a, ("user_id", "segment", "spend")), ("t1", b, ("user_id", "campaign",
                                                                                       "clicks"))):
        source = make_source(account_id="111111111111", database="bench", table=name, location=path)
        schema = tuple((c.name, c.type) for c in read_schema(source, cache=None))
        out.append(TableScan(name, prepare_scan(source), columns, schema=schema))
    return out


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def compare(left, right) -> str:
    """"identical", "floats within 1e-9" (sums of doubles in another order differ in the last digits), or what
    differs."""
    a = sorted(tuple(row.values()) for row in left.to_pylist())
    b = sorted(tuple(row.values()) for row in right.to_pylist())
    if a == b:
        return "identical"
    if len(a) != len(b):
        return f"DIFFERENT: {len(a)} vs {len(b)} rows"
    worst = 0.0
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if isinstance(u, float) and isinstance(v, float):
                worst = max(worst, abs(u - v) / max(abs(u), abs(v), 1e-300))
            elif u != v:
                return f"DIFFERENT: {x} vs {y}"
    return f"floats within {worst:.1e}" if worst <= 1e-9 else f"DIFFERENT: floats off by {worst:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 20_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--spark-remote")
    parser.add_argument("--dir", default="/tmp/ocr-engine-bench")
    args = parser.parse_args()

    local = None
    if args.spark_remote is None:
        from tests.support.spark import LocalSparkConnect

        local = LocalSparkConnect(driver_memory="1536m")
        started, _ = timed(local.start)  # includes one tiny warm-up query
        remote = local.remote
        print(f"local Spark Connect server (local[2]) started and answered a first query in {started:.1f} s")
    else:
        remote = args.spark_remote
    tree = sqlglot.parse_one(QUERY.format(a="t0", b="t1"), read="spark")
    limits = Limits(timeout_seconds=1800, memory_limit_mb=1024, threads=2)
    duck, spark = open_engine("duckdb"), open_engine("spark", remote=remote)
    print(f"{'rows':>11} | {'duckdb median':>13} | {'spark cold':>10} | {'spark warm median':>17} | "
          f"{'spark/duckdb':>12} | rows")
    try:
        for rows in args.rows:
            a, b = generate(args.dir, rows)
            scans = scans_for(a, b)
            schema = {t.name: dict(t.schema) for t in scans}
            sql = {engine.name: render(tree, engine.name, schema) for engine in (duck, spark)}
            duck_times, spark_times = [], []
            for _ in range(args.repeat):
                seconds, duck_result = timed(lambda: duck.execute(sql["duckdb"], scans, limits, CancelToken()))
                duck_times.append(seconds)
            cold, spark_result = timed(lambda: spark.execute(sql["spark"], scans, limits, CancelToken()))
            for _ in range(args.repeat):
                seconds, spark_result = timed(lambda: spark.execute(sql["spark"], scans, limits, CancelToken()))
                spark_times.append(seconds)
            d, s = statistics.median(duck_times), statistics.median(spark_times)
            same = compare(duck_result, spark_result)
            print(f"{rows:>11,} | {d:>11.2f} s | {cold:>8.2f} s | {s:>15.2f} s | {s / d:>11.1f}x | {same}",
                  flush=True)
    finally:
        spark.close()
        duck.close()
        if local is not None:
            local.stop()
    print(f"machine: {os.cpu_count()} cores; DuckDB threads={limits.threads}, memory={limits.memory_limit_mb} MB; "
          f"Spark local[2]")


if __name__ == "__main__":
    main()
