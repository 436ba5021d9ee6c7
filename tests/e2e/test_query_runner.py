"""The query runner across processes: time limits, a server killed mid-query, two processes on one database.

Each test starts its own server processes (settings differ from the shared server's), over the same two-member
world as test_protected_queries.
"""

from __future__ import annotations

import signal
import time

from tests.e2e.test_protected_queries import FINAL, SLOW, build_world, rows, start, wait, wait_for
from tests.support.builders import Party
from tests.support.server import ServerProcess


def test_a_query_past_its_time_limit_ends_timed_out(tmp_path):
    server = ServerProcess(tmp_path / "server", "--query-timeout", "1.5").start()
    try:
        world = build_world(server, lambda: Party(server), tmp_path, rule_type="CUSTOM")
        query = start(world, SLOW)
        began = time.monotonic()
        done = wait(world.alice.client, world.mid(world.alice), query["id"])
        assert done["status"] == "TIMED_OUT", done
        assert done["error"]["code"] == "INSUFFICIENT_COMPUTE" and time.monotonic() - began < 15
    finally:
        server.stop()


def test_a_query_whose_server_died_is_failed_retryable_after_restart(tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text("query_lease_seconds = 2.0\n")
    server = ServerProcess(tmp_path / "server", "--config", str(config)).start()
    world = build_world(server, lambda: Party(server), tmp_path, rule_type="CUSTOM")
    mid = world.mid(world.alice)
    query = start(world, SLOW)
    assert wait_for(world.alice.client, mid, query["id"], {"STARTED"} | FINAL)["status"] == "STARTED"
    server.stop(signal.SIGKILL)
    server.start()
    try:
        done = wait(world.alice.client, mid, query["id"], timeout=30)
        assert done["status"] == "FAILED", done
        assert done["error"]["code"] == "TRANSIENT_ERROR" and done["error"]["retry"] == {"retryable": True}
        # the restarted server runs new queries
        assert rows(wait(world.alice.client, mid, start(world, "SELECT COUNT(*) AS n FROM customers")["id"])) == [(200,)]
    finally:
        server.stop()


def test_two_processes_run_each_query_exactly_once(tmp_path):
    server = ServerProcess(tmp_path / "server", "--workers", "2").start()
    try:
        world = build_world(server, lambda: Party(server), tmp_path, rule_type="CUSTOM")
        mid = world.mid(world.alice)
        ids = []
        for i in range(12):
            ids.append(start(world, f"SELECT COUNT(*) + {i} AS n FROM customers")["id"])
            if len(ids) % 4 == 0:  # stay under the concurrency quota of 5
                for query_id in ids[-4:]:
                    wait(world.alice.client, mid, query_id)
        results = [rows(wait(world.alice.client, mid, query_id)) for query_id in ids]
        assert results == [[(200 + i,)] for i in range(12)]
        with server.db.read() as conn:
            runners = conn.exec_driver_sql(
                "SELECT runner, COUNT(*) FROM protected_queries GROUP BY runner").fetchall()
        assert sum(count for _, count in runners) == 12  # each claimed once, by one runner
    finally:
        server.stop()
