"""DuckDBEngine's overhead: the same join with GROUP BY and COUNT DISTINCT on bare DuckDB and through the sandbox.

    .venv/bin/python -m bench.engine_bench [--rows 2000000] [--repeat 3] [--threads 2] [--memory-mb 1024]

Generates two Parquet tables under /tmp (kept for later runs; regenerated when the row count changes): `a` with
`rows` rows (user_id, segment, spend, and a column the engine does not expose) and `b` with `rows` rows (user_id,
campaign, clicks) overlapping half of a's users. Bare DuckDB runs the query on `read_parquet` with the same
threads and memory limit; the engine gets the same files as TableScans exposing only the columns the query
needs, and runs the query on t0 and t1. Prints the median of `repeat` runs of each and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import duckdb

from opencleanrooms.catalog import make_source, prepare_scan
from opencleanrooms.engines import CancelToken, Limits, TableScan
from opencleanrooms.engines.duckdb import DuckDBEngine

QUERY = """
SELECT {a}.segment, {b}.campaign, COUNT(DISTINCT {a}.user_id) AS users, SUM({b}.clicks) AS clicks,
       SUM({a}.spend) AS spend
FROM {a} JOIN {b} ON {a}.user_id = {b}.user_id
GROUP BY {a}.segment, {b}.campaign
ORDER BY 1, 2
"""


def generate(directory: str, rows: int) -> tuple[str, str]:
    os.makedirs(directory, exist_ok=True)
    a, b = os.path.join(directory, f"a-{rows}.parquet"), os.path.join(directory, f"b-{rows}.parquet")
    with duckdb.connect() as con:
        if not os.path.exists(a):
            con.execute(f"COPY (SELECT 'u' || (range % {rows // 2}) AS user_id, range % 20 AS segment, "
                        f"(range % 1000) / 10.0 AS spend, md5(range::VARCHAR) AS email_hash "
                        f"FROM range({rows})) TO '{a}' (FORMAT parquet)")
        if not os.path.exists(b):
            con.execute(f"COPY (SELECT 'u' || ((range * 7) % {rows}) AS user_id, "
                        f"'c' || (range % 50) AS campaign, range % 5 AS clicks "
                        f"FROM range({rows})) TO '{b}' (FORMAT parquet)")
    return a, b


def bare(a: str, b: str, threads: int, memory_mb: int):
    with duckdb.connect(config={"threads": threads, "memory_limit": f"{memory_mb}MB"}) as con:
        sql = QUERY.format(a="a", b="b").replace(
            "FROM a JOIN b", f"FROM read_parquet('{a}') a JOIN read_parquet('{b}') b")
        return con.sql(sql).to_arrow_table()


def engine_run(engine: DuckDBEngine, scans: list[TableScan], limits: Limits):
    return engine.execute(QUERY.format(a="t0", b="t1"), scans, limits, CancelToken())


def timed(fn, repeat: int):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def _rounded(table) -> list:
    return [{k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()} for row in table.to_pylist()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--dir", default="/tmp/opencleanrooms-engine-bench")
    args = parser.parse_args()

    start = time.perf_counter()
    a, b = generate(args.dir, args.rows)
    print(f"data: {args.rows:,} x {args.rows:,} rows in {args.dir} ({time.perf_counter() - start:.1f} s to prepare)")

    def source(path):
        return make_source(account_id="111111111111", database="bench", table="t", location=path)

    scans = [TableScan("t0", prepare_scan(source(a)), ("user_id", "segment", "spend")),
             TableScan("t1", prepare_scan(source(b)), ("user_id", "campaign", "clicks"))]
    limits = Limits(timeout_seconds=600, memory_limit_mb=args.memory_mb, threads=args.threads)
    engine = DuckDBEngine()

    bare(a, b, args.threads, args.memory_mb)  # warm the page cache and DuckDB's import
    engine.execute("SELECT count(*) FROM t0, t1 WHERE false", scans, limits, CancelToken())  # and pyarrow's
    fixed_median, _, _ = timed(lambda: engine.execute("SELECT 1 AS one", scans, limits, CancelToken()), args.repeat)
    bare_median, bare_times, bare_result = timed(lambda: bare(a, b, args.threads, args.memory_mb), args.repeat)
    eng_median, eng_times, eng_result = timed(lambda: engine_run(engine, scans, limits), args.repeat)
    same = _rounded(bare_result) == _rounded(eng_result)  # float sums differ in the last digits between runs
    print(f"threads={args.threads} memory_limit={args.memory_mb}MB repeat={args.repeat} result rows="
          f"{eng_result.num_rows} identical={same}")
    runs = lambda times: ", ".join(f"{t:.3f}" for t in times)  # noqa: E731
    print(f"bare DuckDB (read_parquet):   median {bare_median:.3f} s  runs {runs(bare_times)}")
    print(f"DuckDBEngine.execute:         median {eng_median:.3f} s  runs {runs(eng_times)}")
    print(f"engine fixed cost per query (SELECT 1 over the same two scans): median {fixed_median:.3f} s")
    print(f"overhead ratio (engine/bare): {eng_median / bare_median:.2f}x")


if __name__ == "__main__":
    main()
