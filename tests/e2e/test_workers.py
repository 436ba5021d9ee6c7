"""`opencleanrooms worker`: API servers and workers scale apart. An API server that runs nothing (`--query-workers
0 --job-workers 0`) accepts queries and jobs; two worker processes on the same database run them, each exactly once.

Run it on PostgreSQL (OPENCLEANROOMS_TEST_BACKEND=postgresql) for the deployment it stands for; it passes on SQLite
too (processes sharing one database file). Two PySpark jobs run here (a JVM each, in parallel on the two workers).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
from botocore.exceptions import ClientError

from opencleanrooms.results import read_result
from tests.e2e import test_protected_jobs as jobs
from tests.e2e import test_protected_queries as queries
from tests.e2e.test_protected_jobs import jobs_server  # noqa: F401  (a fixture)
from tests.support.server import ServerProcess

QUERIES = 8


class Worker:
    def __init__(self, server: ServerProcess, config, index: int) -> None:
        self.log_path = server.data_dir / f"worker-{index}.log"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "opencleanrooms", "worker", *server.storage_args, "--config", str(config),
             "--query-workers", "2", "--job-workers", "1"], stdout=log, stderr=subprocess.STDOUT)

    def name(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"OpenCleanRooms worker (\S+):", self.log_path.read_text(errors="replace"))
            if found:
                return found.group(1)
            assert self.process.poll() is None, self.log_path.read_text(errors="replace")
            time.sleep(0.1)
        raise AssertionError(f"the worker did not start: {self.log_path.read_text(errors='replace')}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.mark.spark_job
@jobs.needs_spark
def test_two_workers_run_each_query_and_job_exactly_once(jobs_server, tmp_path):
    _, s3, settings, config = jobs_server
    api = ServerProcess(tmp_path / "api", "--config", str(config), "--query-workers", "0", "--job-workers", "0",
                        "--quota", "concurrent_queries_per_membership=20", "--quota", "concurrent_queries=20").start()
    workers = []
    try:
        try:
            s3.create_bucket(Bucket="alice-results")  # where the query world's results go
        except ClientError:
            pass
        for directory in ("queries", "jobs-0", "jobs-1"):
            (tmp_path / directory).mkdir()
        world = queries.build_world(api, lambda: jobs.Party(api), tmp_path / "queries", rule_type="CUSTOM")
        job_worlds = [jobs.build_world(api, s3, settings, tmp_path / f"jobs-{i}") for i in range(2)]
        mid = world.mid(world.alice)
        query_ids = [queries.start(world, f"SELECT COUNT(*) + {i} AS n FROM customers")["id"] for i in range(QUERIES)]
        job_ids = [jobs.start(w, t, job={"parameters": {"min_clicks": "3"}})["id"] for w, t in job_worlds]
        time.sleep(1)
        # nothing runs on the API server
        assert {queries.wait_for(world.alice.client, mid, q, {"STARTED"} | queries.FINAL, timeout=0)["status"]
                for q in query_ids} == {"SUBMITTED"}

        workers = [Worker(api, config, i) for i in range(2)]
        names = {w.name() for w in workers}
        results = []
        for query_id in query_ids:
            done = queries.wait(world.alice.client, mid, query_id, timeout=120)
            assert done["status"] == "SUCCESS", done
            table = read_result(done["result"]["output"]["s3"]["location"], settings)
            results.append([tuple(r.values()) for r in table.to_pylist()])
        assert results == [[(200 + i,)] for i in range(QUERIES)]
        for (w, _), job_id in zip(job_worlds, job_ids):
            done = jobs.wait_for(w.alice.client, w.mid(w.alice), job_id, timeout=300)
            assert done["status"] == "SUCCESS", done
            assert len(jobs.job_objects(w, job_id)) >= 2  # overlap/ and probes/, written once

        with api.db.read() as conn:
            query_runners = dict(conn.exec_driver_sql(
                "SELECT id, runner FROM protected_queries WHERE id IN ({})".format(
                    ",".join(f"'{q}'" for q in query_ids))).fetchall())
            job_runners = dict(conn.exec_driver_sql(
                "SELECT id, runner FROM protected_jobs WHERE id IN ({})".format(
                    ",".join(f"'{j}'" for j in job_ids))).fetchall())
        # each claimed once (a claim is a conditional SUBMITTED -> STARTED update), by a worker
        assert set(query_runners) == set(query_ids) and set(query_runners.values()) <= names
        assert set(job_runners) == set(job_ids) and set(job_runners.values()) <= names
        assert len(set(job_runners.values())) == 2  # one job slot each: the two jobs ran side by side
    finally:
        codes = [w.stop() for w in workers]
        api.stop()
    assert codes == [0, 0]


@jobs.needs_spark
def test_a_worker_stopped_under_a_job_records_it_interrupted(jobs_server, tmp_path):
    """SIGTERM to a worker kills the sandbox of the job it runs and ends the job FAILED with TRANSIENT_ERROR (start
    it again), not CANCELLED: its member did not cancel it."""
    _, s3, settings, config = jobs_server
    api = ServerProcess(tmp_path / "api", "--config", str(config), "--query-workers", "0", "--job-workers", "0").start()
    worker = None
    try:
        sleeper = b"import time\ndef entrypoint(context):\n    time.sleep(600)\n"
        world, template = jobs.build_world(api, s3, settings, tmp_path, script=sleeper)
        mid = world.mid(world.alice)
        job = jobs.start(world, template)
        worker = Worker(api, config, 0)
        worker.name()
        assert jobs.wait_for(world.alice.client, mid, job["id"], {"STARTED"} | jobs.FINAL, timeout=60)[
            "status"] == "STARTED"
        time.sleep(2)  # into the sandbox
        assert worker.stop() == 0
        worker = None
        done = jobs.wait_for(world.alice.client, mid, job["id"], timeout=10)
        assert done["status"] == "FAILED" and done["error"]["code"] == "TRANSIENT_ERROR", done
        assert set(done["error"]) == {"code", "message"}  # ProtectedJobError has no retry hint
    finally:
        if worker is not None:
            worker.stop()
        api.stop()
