"""Time plan_query (parse + resolve + enforce + rewrite) and Plan.sql('duckdb') for typical protected queries.

Run: .venv/bin/python -m bench.policy_bench [--rounds N]. Prints mean and p95 wall-clock milliseconds per query
after warm_up(), and the mean CPU time of this process (steadier on a shared machine); the target is <= 20 ms. No
assertions: figures for reports, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

from opencleanrooms.policy import QueryRequest, TableInfo, plan_query, warm_up

RUNNER, OTHER = "111111111111", "222222222222"
COLUMNS = (("id", "string"), ("hashed_email", "string"), ("region", "string"), ("segment", "string"),
           ("day", "date"), ("amount", "double"), ("visits", "bigint"), ("email", "string"))
AGG = {"aggregateColumns": [{"columnNames": ["id"], "function": "COUNT_DISTINCT"},
                            {"columnNames": ["amount"], "function": "SUM"},
                            {"columnNames": ["amount"], "function": "AVG"}],
       "joinColumns": ["id", "hashed_email"], "joinRequired": "QUERY_RUNNER", "dimensionColumns": ["region", "day",
                                                                                                  "segment"],
       "scalarFunctions": ["UPPER", "TRUNC", "ROUND"],
       "outputConstraints": [{"columnName": "id", "minimum": 10, "type": "COUNT_DISTINCT"}]}
LIST = {"joinColumns": ["id", "hashed_email"], "listColumns": ["region", "segment", "day"]}
CUSTOM = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [RUNNER],
          "disallowedOutputColumns": ["email"],
          "comparisonControls": {"allowedLiteralComparisonColumns": ["region", "day"],
                                 "allowedColumnComparisonColumns": ["id", "region", "day"]},
          "aggregationThresholds": [{"identityColumns": ["id"], "minimumIdentityCount": 10,
                                     "type": "COUNT_DISTINCT"}]}


def tables(kind: str, rule: dict) -> dict[str, TableInfo]:
    return {"sales": TableInfo("sales", OTHER, COLUMNS, kind, rule),
            "my customers": TableInfo("my customers", RUNNER, COLUMNS, kind, rule)}


QUERIES = [
    ("agg count distinct", "AGGREGATION", AGG,
     "SELECT s.region, COUNT(DISTINCT s.id) FROM sales s JOIN `my customers` c ON s.id = c.id GROUP BY s.region"),
    ("agg sum+avg, where, order", "AGGREGATION", AGG,
     "SELECT s.region, s.segment, SUM(s.amount) AS total, AVG(s.amount) FROM sales s JOIN `my customers` c "
     "ON s.id = c.id AND s.hashed_email = c.hashed_email WHERE s.day >= DATE '2024-01-01' AND s.region IN "
     "('eu', 'us') GROUP BY 1, 2 ORDER BY total DESC"),
    ("agg scalar functions + having", "AGGREGATION", AGG,
     "SELECT UPPER(s.region), TRUNC(s.day, 'MM'), ROUND(SUM(s.amount), 2) FROM sales s JOIN `my customers` c "
     "ON s.id = c.id GROUP BY 1, 2 HAVING SUM(s.amount) > 100"),
    ("agg template parameter", "AGGREGATION", AGG,
     "SELECT s.region, COUNT(DISTINCT s.id) FROM sales s JOIN `my customers` c ON s.id = c.id "
     "WHERE s.day >= :start AND s.segment = :segment GROUP BY s.region"),
    ("list overlap", "LIST", LIST,
     "SELECT DISTINCT s.region, s.segment, c.day FROM sales s JOIN `my customers` c ON s.id = c.id "
     "WHERE s.day > DATE '2024-01-01' LIMIT 1000"),
    ("custom simple group", "CUSTOM", CUSTOM,
     "SELECT s.region, COUNT(*) AS n, SUM(s.amount) FROM sales s GROUP BY s.region ORDER BY n DESC"),
    ("custom cte + join", "CUSTOM", CUSTOM,
     "WITH j AS (SELECT s.region, s.amount, s.id FROM sales s JOIN `my customers` c ON s.id = c.id "
     "WHERE s.day >= DATE '2024-01-01') SELECT region, COUNT(DISTINCT id), AVG(amount) FROM j GROUP BY region"),
    ("custom two ctes", "CUSTOM", CUSTOM,
     "WITH a AS (SELECT s.id, s.region, s.amount FROM sales s WHERE s.region <> 'x'), b AS (SELECT a.region, "
     "a.amount FROM a JOIN `my customers` c ON a.id = c.id) SELECT region, SUM(amount) FROM b GROUP BY region"),
    ("custom outer join", "CUSTOM", CUSTOM,
     "SELECT c.region, COUNT(s.id) FROM `my customers` c LEFT JOIN sales s ON c.id = s.id GROUP BY c.region"),
    ("custom wide select", "CUSTOM", CUSTOM,
     "SELECT s.region, s.day, COUNT(*), COUNT(DISTINCT s.email), SUM(s.amount), AVG(s.amount), MIN(s.amount), "
     "MAX(s.amount) FROM sales s JOIN `my customers` c ON s.id = c.id WHERE s.region = 'eu' GROUP BY 1, 2"),
]
PARAMETERS = {"start": ("DATE", "2024-01-01"), "segment": ("VARCHAR", "a")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    started = time.perf_counter()
    warm_up()
    print(f"warm_up: {(time.perf_counter() - started) * 1000:.0f} ms")
    print(f"{'query':34} {'plan mean':>10} {'plan p95':>9} {'+sql mean':>10} {'+sql cpu':>9}")
    everything, cpu_all = [], []
    for label, kind, rule, sql in QUERIES:
        request = QueryRequest(sql=sql, runner_account_id=RUNNER, tables=tables(kind, rule), parameters=PARAMETERS)
        plans, totals, cpu = [], [], []
        for _ in range(args.rounds):
            start, start_cpu = time.perf_counter(), time.process_time()
            plan = plan_query(request)
            middle = time.perf_counter()
            plan.sql("duckdb")
            end, end_cpu = time.perf_counter(), time.process_time()
            plans.append((middle - start) * 1000)
            totals.append((end - start) * 1000)
            cpu.append((end_cpu - start_cpu) * 1000)
        everything += totals
        cpu_all += cpu
        p95 = statistics.quantiles(plans, n=20)[18]
        print(f"{label:34} {statistics.mean(plans):8.2f}ms {p95:7.2f}ms {statistics.mean(totals):8.2f}ms "
              f"{statistics.mean(cpu):7.2f}ms")
    p95_all = statistics.quantiles(everything, n=20)[18]
    print(f"{'all (plan + sql)':34} {statistics.mean(everything):8.2f}ms {p95_all:7.2f}ms {'':>10} "
          f"{statistics.mean(cpu_all):7.2f}ms")


if __name__ == "__main__":
    main()
