"""A server started with `--engine spark --spark-remote sc://...` runs protected queries over HTTP on a Spark
Connect server and answers exactly what the DuckDB server answers for the same request.

Two server processes, one per engine, each with its own database and results directory, over the same two-member
world as test_protected_queries; the Spark Connect server is the session's local one (tests/support/spark.py).
"""

from __future__ import annotations

import os

import pytest

from opencleanrooms.results import read_result
from tests.e2e.test_protected_queries import build_world, expected, start, wait
from tests.support.builders import Party
from tests.support.server import ServerProcess

QUERY = ("SELECT c.segment, COUNT(DISTINCT i.user_id) AS users, SUM(i.clicks) AS clicks "
         "FROM customers c INNER JOIN impressions i ON c.user_id = i.user_id GROUP BY c.segment")
# Custom rule: free-form SQL with the shared error policy (a failed CAST and a division by zero are NULL) and
# Spark's date functions.
CUSTOM = ("SELECT c.age_band, CAST(MAX(c.segment) AS INT) AS seg_number, SUM(i.clicks) / 0 AS by_zero, "
          "date_add(DATE '2024-02-28', CAST(c.age_band AS INT)) AS day, COUNT(*) AS n "
          "FROM customers c JOIN impressions i ON c.user_id = i.user_id GROUP BY c.age_band ORDER BY c.age_band")


@pytest.fixture(scope="module")
def servers(tmp_path_factory, spark_remote):
    base = tmp_path_factory.mktemp("engines")
    duck = ServerProcess(base / "duckdb").start()
    spark = ServerProcess(base / "spark", "--engine", "spark", "--spark-remote", spark_remote,
                          "--query-timeout", "120").start()
    try:
        yield duck, spark
    finally:
        duck.stop()
        spark.stop()


def result_text(query: dict) -> list[str]:
    """The result files' lines, as the receiver reads them (header first, rows sorted)."""
    location = query["result"]["output"]["s3"]["location"]
    assert location.startswith("file://") or location.startswith("/"), location
    directory = location.removeprefix("file://")
    lines = []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name)) as fh:
            lines += fh.read().splitlines()
    return [lines[0]] + sorted(lines[1:])


def run_on(server: ServerProcess, tmp_path, name: str, sql: str, rule_type: str, **extra) -> tuple[dict, object]:
    world = build_world(server, lambda: Party(server), tmp_path / name, rule_type=rule_type)
    query = start(world, sql, **extra)
    return wait(world.alice.client, world.mid(world.alice), query["id"], timeout=180), world


def test_spark_server_answers_what_the_duckdb_server_answers(servers, tmp_path):
    duck, spark = servers
    (tmp_path / "d").mkdir()
    (tmp_path / "s").mkdir()
    on_duck, world = run_on(duck, tmp_path, "d", QUERY, "AGGREGATION")
    on_spark, _ = run_on(spark, tmp_path, "s", QUERY, "AGGREGATION")
    assert on_duck["status"] == "SUCCESS", on_duck
    assert on_spark["status"] == "SUCCESS", on_spark
    assert result_text(on_spark) == result_text(on_duck)
    table = read_result(on_spark["result"]["output"]["s3"]["location"])
    assert sorted(tuple(r.values()) for r in table.to_pylist()) == expected(
        world, "SELECT c.segment, COUNT(DISTINCT i.user_id), SUM(i.clicks) FROM customers c "
               "JOIN impressions i ON c.user_id = i.user_id GROUP BY c.segment")


def test_custom_sql_with_the_shared_error_policy_and_compute_hints(servers, tmp_path):
    duck, spark = servers
    (tmp_path / "d").mkdir()
    (tmp_path / "s").mkdir()
    compute = {"worker": {"type": "CR.1X", "number": 4}}
    on_duck, _ = run_on(duck, tmp_path, "d", CUSTOM, "CUSTOM")
    on_spark, _ = run_on(spark, tmp_path, "s", CUSTOM, "CUSTOM", computeConfiguration=compute)
    assert on_duck["status"] == "SUCCESS", on_duck.get("error")
    assert on_spark["status"] == "SUCCESS", on_spark.get("error")
    assert on_spark["computeConfiguration"] == compute  # reported back as given
    lines = result_text(on_spark)
    assert lines == result_text(on_duck)
    assert lines[0] == '"age_band","seg_number","by_zero","day","n"'
    assert lines[1:] == ["0,,,2024-02-28,300", "10,,,2024-03-09,300", "20,,,2024-03-19,300"]


def test_a_refused_and_a_failing_query_fail_alike(servers, tmp_path):
    duck, spark = servers
    for name in ("d", "s"):
        (tmp_path / name).mkdir()
    results = {}
    for server, name in ((duck, "d"), (spark, "s")):
        world = build_world(server, lambda s=server: Party(s), tmp_path / name, rule_type="CUSTOM")
        mid = world.mid(world.alice)
        refused = start(world, "SELECT * FROM parquet.`/etc/passwd`")
        missing = start(world, "SELECT nothing FROM customers")
        results[name] = [wait(world.alice.client, mid, q["id"], timeout=120) for q in (refused, missing)]
    for on_duck, on_spark in zip(results["d"], results["s"]):
        assert on_duck["status"] == on_spark["status"] == "FAILED", (on_duck, on_spark)
        assert on_duck["error"]["code"] == on_spark["error"]["code"] == "MALFORMED_QUERY"
    # the file read is refused by the policy layer before any engine sees it: the same answer, word for word
    assert results["d"][0]["error"] == results["s"][0]["error"]


def test_differential_privacy_queries_release_the_same_parameters(servers, tmp_path):
    """A DP query's exact, user-bounded cells come from the engine; the noise and the private bounds are added
    after. Both engines give the same cells, so the released sensitivity parameters are the same, but for the
    bounds, which are drawn afresh on each server."""
    from tests.e2e.test_differential_privacy_queries import EPSILON, NOISE, answer, dp_world

    sql = ("SELECT COUNT(DISTINCT user_id) AS users, AVG(clicks) AS mean FROM impressions "
           "WHERE campaign_id <> 'none'")
    released = {}
    for server, name in zip(servers, ("d", "s")):
        (tmp_path / name).mkdir()
        world = dp_world(server, lambda s=server: Party(s), tmp_path / name)
        world.bob.client.create_privacy_budget_template(
            membershipIdentifier=world.mid(world.bob), privacyBudgetType="DIFFERENTIAL_PRIVACY", autoRefresh="NONE",
            parameters={"differentialPrivacy": {"epsilon": EPSILON, "usersNoisePerQuery": NOISE}})
        done = wait(world.alice.client, world.mid(world.alice), start(world, sql)["id"], timeout=180)
        row = answer(done)
        assert abs(row["users"] - 150) < 14 * NOISE, row
        released[name] = done["differentialPrivacy"]["sensitivityParameters"]
    # the private bounds are themselves a noisy release: the rest is decided by the cells alone
    noisy = ("minColumnValue", "maxColumnValue")
    assert [{k: v for k, v in p.items() if k not in noisy} for p in released["s"]] == \
        [{k: v for k, v in p.items() if k not in noisy} for p in released["d"]]
    assert [set(p) for p in released["s"]] == [set(p) for p in released["d"]]


def test_queries_through_an_id_mapping_table_answer_alike(servers, tmp_path):
    """An ID mapping table's data (one Parquet file a population job wrote) is read by either engine."""
    from tests.e2e.test_id_mappings import THROUGH_MAPPING, make_queryable, mapping_table, run_query
    from tests.e2e.test_table_associations import Account, collaborate

    sql = f"SELECT p.country, COUNT(DISTINCT v.visitor) AS visitors {THROUGH_MAPPING} GROUP BY p.country"
    answers = {}
    for server, name in zip(servers, ("d", "s")):
        (tmp_path / name).mkdir()
        alice, bob = Account(server), Account(server)
        collab = collaborate(alice, bob)
        table = mapping_table(server, alice, bob, collab, tmp_path / name)
        alice.client.populate_id_mapping_table(membershipIdentifier=collab.mid(alice),
                                               idMappingTableIdentifier=table["id"])
        make_queryable(alice, bob, collab)
        done, answers[name] = run_query(server, alice, bob, collab, sql, timeout=180)
        assert done["status"] == "SUCCESS", done
    assert answers["d"] == answers["s"] == [("DE", "1"), ("FR", "2")]
