"""Differential privacy overhead: the same protected queries on the same 1 M rows, on a table without and with a
differentialPrivacy rule, through our server, in one run.

    .venv/bin/python -m bench.dp_bench                  # 1 M rows, 200,000 users (about a minute on 2 cores)
    .venv/bin/python -m bench.dp_bench --rows 100000    # a quick run

Two configured tables of bob read the same Parquet file: `plain` (CUSTOM, ANY_QUERY) and `private` (the same rule
plus differentialPrivacy on user_id, budget epsilon 20, noise 100). Each query runs as StartProtectedQuery until
SUCCESS (polled every 10 ms), median of 3, alternating plain and private. The DP run includes the rewrite (per-user
contribution bound, magnitude buckets) and the OpenDP releases. Goal (issue 10): DP <= 1.5x non-DP.
Besides the wall time, the server's CPU time per query (utime + stime of the server process, all threads, from
/proc; it includes the status polls) is reported: on a shared machine it moves much less with other load.
The figures go to stdout as JSON and markdown; bench/REPORT.md records a run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

from bench.queries import ALICE, BOB, client, protected
from bench.servers import ACCESS_KEY_ID, ACCOUNT_ID, REPO, SECRET_ACCESS_KEY, create_credentials, ours

QUERIES = {
    "whole table": "SELECT COUNT(DISTINCT user_id) AS users, SUM(clicks) AS clicks, AVG(clicks) AS mean FROM {t}",
    "GROUP BY segment": "SELECT segment, COUNT(DISTINCT user_id) AS users, SUM(clicks) AS clicks FROM {t} "
                        "GROUP BY segment",
}


def generate(directory: Path, rows: int) -> Path:
    """`rows` events of rows/5 users (5 each, the contribution limit), 20 segments (a user's events in one)."""
    path = directory / "events.parquet"
    users = max(rows // 5, 1)
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT i % {users} AS user_id, 's' || (i % {users} % 20) AS segment, "
                    f"CAST(i % 13 AS BIGINT) AS clicks FROM range({rows}) t(i)) TO '{path}' (FORMAT parquet)")
    return path


def setup(endpoint: str) -> str:
    """Alice queries bob's `plain` and `private` tables; bob sets the DP budget. Returns alice's membership id."""
    alice, bob = client(endpoint, ALICE), client(endpoint, BOB)
    collaboration = alice.create_collaboration(
        name="dp-bench", description="dp-bench", creatorDisplayName="A", queryLogStatus="DISABLED",
        creatorMemberAbilities=["CAN_QUERY", "CAN_RECEIVE_RESULTS"],
        members=[{"accountId": BOB[0], "displayName": "B", "memberAbilities": []}])["collaboration"]
    result = {"outputConfiguration": {"s3": {"bucket": "bench-results", "resultFormat": "PARQUET"}}}
    mine = alice.create_membership(collaborationIdentifier=collaboration["id"], queryLogStatus="DISABLED",
                                   defaultResultConfiguration=result)["membership"]["id"]
    theirs = bob.create_membership(collaborationIdentifier=collaboration["id"],
                                   queryLogStatus="DISABLED")["membership"]["id"]
    for name in ("plain", "private"):
        custom = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [ALICE[0]]}
        if name == "private":
            custom["differentialPrivacy"] = {"columns": [{"name": "user_id"}]}
        table = bob.create_configured_table(
            name=name, tableReference={"glue": {"databaseName": "bench", "tableName": name}},
            allowedColumns=["user_id", "segment", "clicks"], analysisMethod="DIRECT_QUERY")["configuredTable"]
        bob.create_configured_table_analysis_rule(configuredTableIdentifier=table["id"], analysisRuleType="CUSTOM",
                                                  analysisRulePolicy={"v1": {"custom": custom}})
        association = bob.create_configured_table_association(
            membershipIdentifier=theirs, configuredTableIdentifier=table["id"], name=name,
            roleArn="arn:aws:iam::222222222222:role/bench")["configuredTableAssociation"]
        bob.create_configured_table_association_analysis_rule(
            membershipIdentifier=theirs, configuredTableAssociationIdentifier=association["id"],
            analysisRuleType="CUSTOM", analysisRulePolicy={"v1": {"custom": {"allowedResultReceivers": [ALICE[0]]}}})
    bob.create_privacy_budget_template(
        membershipIdentifier=theirs, privacyBudgetType="DIFFERENTIAL_PRIVACY", autoRefresh="NONE",
        parameters={"differentialPrivacy": {"epsilon": 20, "usersNoisePerQuery": 100}})
    return mine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    figures: dict = {"rows": args.rows, "users": max(args.rows // 5, 1), "queries": {}}
    with tempfile.TemporaryDirectory(prefix="bench-dp-") as tmp:
        work = Path(tmp)
        events = generate(work, args.rows)
        data_dir = work / "data"
        for account in (ALICE, BOB, (ACCOUNT_ID, ACCESS_KEY_ID, SECRET_ACCESS_KEY)):  # the last: start-up probe
            create_credentials(data_dir, *account)
        for name in ("plain", "private"):
            subprocess.run([sys.executable, "-m", "opencleanrooms", "catalog", "add", "--data-dir", str(data_dir),
                            "--account-id", BOB[0], "--database", "bench", "--table", name, "--location",
                            str(events)], check=True, stdout=subprocess.DEVNULL, cwd=REPO)
        server = ours(data_dir, work)
        server.start()
        try:
            endpoint = f"http://127.0.0.1:{server.port}"
            cr = client(endpoint, ALICE)
            membership_id = setup(endpoint)
            for label, sql in QUERIES.items():
                protected(cr, membership_id, sql.format(t="plain"))  # warm both paths once
                protected(cr, membership_id, sql.format(t="private"))
                plain, private, plain_cpu, private_cpu = [], [], [], []
                for _ in range(args.repeat):
                    for name, wall, cpu in (("plain", plain, plain_cpu), ("private", private, private_cpu)):
                        before = server.cpu_seconds()
                        wall.append(protected(cr, membership_id, sql.format(t=name)))
                        cpu.append(server.cpu_seconds() - before)
                figures["queries"][label] = {"plain_s": statistics.median(plain),
                                             "dp_s": statistics.median(private),
                                             "ratio": statistics.median(private) / statistics.median(plain),
                                             "plain_cpu_s": statistics.median(plain_cpu),
                                             "dp_cpu_s": statistics.median(private_cpu),
                                             "cpu_ratio": statistics.median(private_cpu) / statistics.median(plain_cpu)}
        finally:
            server.stop()
    print(json.dumps(figures, indent=2))
    print("\n| query | rows | without DP | with DP | ratio | server CPU without DP | with DP | CPU ratio |\n"
          "|---|---|---|---|---|---|---|---|")
    for label, f in figures["queries"].items():
        print(f"| {label} | {args.rows:,} | {f['plain_s']:.2f} s | {f['dp_s']:.2f} s | {f['ratio']:.2f} | "
              f"{f['plain_cpu_s']:.2f} s | {f['dp_cpu_s']:.2f} s | {f['cpu_ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
