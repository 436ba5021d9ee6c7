"""Protected queries: the same SQL run directly on DuckDB and through our server, in one run, as ratios.

    .venv/bin/python -m bench.queries                  # 5 M x 5 M rows (about 3 minutes on 2 cores)
    .venv/bin/python -m bench.queries --rows 200000    # a quick run

Rows measured:
1. join: a GROUP BY with COUNT(DISTINCT) and SUM over an inner join of two generated Parquet tables of N rows each,
   run bare (DuckDB, `read_parquet`, same threads) and as a protected query (StartProtectedQuery until SUCCESS,
   polled every 10 ms); median of 3 each, alternating. The overhead ratio is ours / bare.
2. small: StartProtectedQuery -> SUCCESS of a one-table COUNT on 1,000 rows, 20 times (p50, p95).
3. lists: ListProtectedQueries p50/p99 on one connection, idle and while the join runs.
The figures go to stdout as JSON and markdown; bench/REPORT.md records a run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
import botocore.config
import duckdb

from bench.servers import ACCESS_KEY_ID, ACCOUNT_ID, REPO, SECRET_ACCESS_KEY, create_credentials, ours

ALICE = ("111111111111", "AKIABENCHQUERY000001", "bench-query-secret-1")
BOB = ("222222222222", "AKIABENCHQUERY000002", "bench-query-secret-2")
JOIN = ("SELECT c.segment, COUNT(DISTINCT i.user_id) AS users, SUM(i.clicks) AS clicks FROM customers c "
        "INNER JOIN impressions i ON c.user_id = i.user_id GROUP BY c.segment")
SMALL = "SELECT COUNT(*) AS n FROM small"


def generate(directory: Path, rows: int) -> dict[str, Path]:
    paths = {name: directory / f"{name}.parquet" for name in ("customers", "impressions", "small")}
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT i AS user_id, 's' || (i % 20) AS segment FROM range({rows}) t(i)) "
                    f"TO '{paths['customers']}' (FORMAT parquet)")
        con.execute(f"COPY (SELECT (i * 7919) % {rows} AS user_id, i % 13 AS clicks FROM range({rows}) t(i)) "
                    f"TO '{paths['impressions']}' (FORMAT parquet)")
        con.execute(f"COPY (SELECT i AS user_id FROM range(1000) t(i)) TO '{paths['small']}' (FORMAT parquet)")
    return paths


def client(endpoint: str, account) -> object:
    return boto3.client("cleanrooms", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=account[1],
                        aws_secret_access_key=account[2],
                        config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1}))


def setup(endpoint: str) -> str:
    """A collaboration where alice queries her customers and small tables and bob's impressions (custom rules,
    ANY_QUERY by alice); returns alice's membership id."""
    alice, bob = client(endpoint, ALICE), client(endpoint, BOB)
    collaboration = alice.create_collaboration(
        name="bench", description="bench", creatorDisplayName="A", queryLogStatus="DISABLED",
        creatorMemberAbilities=["CAN_QUERY", "CAN_RECEIVE_RESULTS"],
        members=[{"accountId": BOB[0], "displayName": "B", "memberAbilities": []}])["collaboration"]
    result = {"outputConfiguration": {"s3": {"bucket": "bench-results", "resultFormat": "PARQUET"}}}
    memberships = {ALICE[0]: alice.create_membership(collaborationIdentifier=collaboration["id"],
                                                     queryLogStatus="DISABLED",
                                                     defaultResultConfiguration=result)["membership"]["id"],
                   BOB[0]: bob.create_membership(collaborationIdentifier=collaboration["id"],
                                                 queryLogStatus="DISABLED")["membership"]["id"]}
    rule = {"v1": {"custom": {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [ALICE[0]]}}}
    for who, account, name, columns in ((alice, ALICE, "customers", ["user_id", "segment"]),
                                        (bob, BOB, "impressions", ["user_id", "clicks"]),
                                        (alice, ALICE, "small", ["user_id"])):
        table = who.create_configured_table(name=name, tableReference={"glue": {"databaseName": "bench",
                                                                                 "tableName": name}},
                                            allowedColumns=columns, analysisMethod="DIRECT_QUERY")["configuredTable"]
        who.create_configured_table_analysis_rule(configuredTableIdentifier=table["id"], analysisRuleType="CUSTOM",
                                                  analysisRulePolicy=rule)
        association = who.create_configured_table_association(
            membershipIdentifier=memberships[account[0]], configuredTableIdentifier=table["id"], name=name,
            roleArn="arn:aws:iam::111111111111:role/bench")["configuredTableAssociation"]
        who.create_configured_table_association_analysis_rule(
            membershipIdentifier=memberships[account[0]], configuredTableAssociationIdentifier=association["id"],
            analysisRuleType="CUSTOM", analysisRulePolicy={"v1": {"custom": {"allowedResultReceivers": [ALICE[0]]}}})
    return memberships[ALICE[0]]


def protected(cr, membership_id: str, sql: str) -> float:
    began = time.perf_counter()
    query = cr.start_protected_query(type="SQL", membershipIdentifier=membership_id,
                                     sqlParameters={"queryString": sql})["protectedQuery"]
    while query["status"] not in ("SUCCESS", "FAILED", "CANCELLED", "TIMED_OUT"):
        time.sleep(0.01)
        query = cr.get_protected_query(membershipIdentifier=membership_id,
                                       protectedQueryIdentifier=query["id"])["protectedQuery"]
    if query["status"] != "SUCCESS":
        raise RuntimeError(f"query {query['status']}: {query.get('error')}")
    return time.perf_counter() - began


def bare(paths: dict, sql: str, threads: int) -> float:
    began = time.perf_counter()
    with duckdb.connect() as con:
        con.execute(f"SET threads={threads}")
        for name, path in paths.items():
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
        con.execute(sql).fetchall()
    return time.perf_counter() - began


def list_latencies(cr, membership_id: str, seconds: float) -> list[float]:
    samples, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        cr.list_protected_queries(membershipIdentifier=membership_id, maxResults=20)
        samples.append(time.perf_counter() - began)
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-queries-") as tmp:
        work = Path(tmp)
        paths = generate(work, args.rows)
        data_dir = work / "data"
        for account in (ALICE, BOB, (ACCOUNT_ID, ACCESS_KEY_ID, SECRET_ACCESS_KEY)):  # the last: start-up probe
            create_credentials(data_dir, *account)
        for name, path in paths.items():
            owner = BOB if name == "impressions" else ALICE
            subprocess.run([sys.executable, "-m", "opencleanrooms", "catalog", "add", "--data-dir", str(data_dir),
                            "--account-id", owner[0], "--database", "bench", "--table", name, "--location",
                            str(path)], check=True, stdout=subprocess.DEVNULL, cwd=REPO)
        server = ours(data_dir, work)
        server.start()
        try:
            cr = client(f"http://127.0.0.1:{server.port}", ALICE)
            membership_id = setup(f"http://127.0.0.1:{server.port}")
            protected(cr, membership_id, SMALL)  # warm both paths once
            bare({k: v for k, v in paths.items() if k != "small"}, JOIN, 2)
            ours_join, bare_join = [], []
            for _ in range(args.repeat):
                bare_join.append(bare({k: v for k, v in paths.items() if k != "small"}, JOIN, 2))
                ours_join.append(protected(cr, membership_id, JOIN))
            small = [protected(cr, membership_id, SMALL) for _ in range(20)]
            idle = list_latencies(cr, membership_id, 3.0)
            busy: list[float] = []
            heavy = threading.Thread(target=lambda: protected(client(f"http://127.0.0.1:{server.port}", ALICE),
                                                              membership_id, JOIN))
            heavy.start()
            time.sleep(0.2)
            while heavy.is_alive():
                busy.extend(list_latencies(cr, membership_id, 0.5))
            heavy.join()
        finally:
            server.stop()
    figures = {
        "rows": args.rows,
        "join_bare_s": statistics.median(bare_join), "join_ours_s": statistics.median(ours_join),
        "join_overhead_ratio": statistics.median(ours_join) / statistics.median(bare_join),
        "small_p50_ms": percentile(small, 0.5) * 1000, "small_p95_ms": percentile(small, 0.95) * 1000,
        "list_idle_p50_ms": percentile(idle, 0.5) * 1000, "list_idle_p99_ms": percentile(idle, 0.99) * 1000,
        "list_busy_p50_ms": percentile(busy, 0.5) * 1000, "list_busy_p99_ms": percentile(busy, 0.99) * 1000,
        "list_busy_samples": len(busy),
    }
    figures["list_p99_ratio"] = figures["list_busy_p99_ms"] / figures["list_idle_p99_ms"]
    print(json.dumps(figures, indent=2))
    print(f"\n| rows | bare join | ours join | ratio | small p50 / p95 | list p99 idle / busy (ratio) |\n"
          f"|---|---|---|---|---|---|\n| {args.rows:,} | {figures['join_bare_s']:.2f} s | {figures['join_ours_s']:.2f} s"
          f" | {figures['join_overhead_ratio']:.2f} | {figures['small_p50_ms']:.0f} / {figures['small_p95_ms']:.0f} ms"
          f" | {figures['list_idle_p99_ms']:.1f} / {figures['list_busy_p99_ms']:.1f} ms "
          f"({figures['list_p99_ratio']:.2f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
