"""The runner: claims SUBMITTED protected queries and jobs from the shared database and runs them off the request path.

Every server process runs one (unless started with no query and no job workers), and so does every `opencleanrooms
worker`. A dispatcher thread claims the oldest SUBMITTED queries and jobs with a conditional update (SUBMITTED ->
STARTED, so exactly one runner wins each, whatever the number of processes) as long as a slot of that kind's bounded
pool is free, and a heartbeat renews the leases of what it runs and notices cancellations asked for through any
process. Work whose runner died (its lease ran out) is closed by whichever runner notices: FAILED with TRANSIENT_ERROR
(or CANCELLED, if its cancellation had been asked for); it is never run twice. Queries and jobs differ only in their
store (storage/protected_queries.py, storage/protected_jobs.py, same function names), how one runs (here for queries,
runner/jobs.py for jobs) and their error shape. This package imports nothing of the services or HTTP.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from opencleanrooms import catalog, results
from opencleanrooms.engines import CancelToken, EngineError, Limits, QueryCancelled, QueryTimedOut, TableScan, open_engine
from opencleanrooms.catalog.glue_types import arrow_glue_type
from opencleanrooms.runner import dp
from opencleanrooms.storage import intermediate_tables as intermediate_store
from opencleanrooms.storage import protected_jobs as job_store
from opencleanrooms.storage import protected_queries as store
from opencleanrooms.storage.database import Database

log = logging.getLogger("opencleanrooms.runner")

PURGE_SECONDS = 5.0  # how often a runner looks for expired intermediate table versions to delete
INTERRUPTED = {"code": "TRANSIENT_ERROR", "retry": {"retryable": True},
               "message": "The query was interrupted because the server running it stopped; start it again."}
JOB_INTERRUPTED = {"code": "TRANSIENT_ERROR",
                   "message": "The job was interrupted because the worker running it stopped; start it again."}


@dataclass(frozen=True)
class JobSettings:
    """How protected jobs run (runner/jobs.py): at most `workers` at once per runner, each in a sandbox with a time
    limit and the Spark driver's memory."""

    workers: int = 1
    timeout_seconds: float = 1800.0
    memory_mb: int = 1024
    sandbox: str = "bwrap"  # the sandbox command; jobs fail when it is missing, they never run unconfined


@dataclass(frozen=True)
class RunnerSettings:
    engine: str = "duckdb"
    engine_options: dict = field(default_factory=dict)  # for open_engine (Spark: remote="sc://...")
    workers: int = 2  # queries run at once by this runner
    limits: Limits = Limits()
    results_dir: str = "results"  # where results go when the server has no S3 endpoint
    poll_seconds: float = 0.5
    lease_seconds: float = 30.0
    jobs: JobSettings = JobSettings(workers=0)
    scratch_dir: str | None = None  # where jobs' scratch directories go (default: the system's temporary dir)


@dataclass
class _Kind:
    """One kind of work: its store, its pool and what one run does."""

    name: str
    store: object
    workers: int
    execute: object  # (row, CancelToken) -> (status, extras for finish)
    interrupted: dict
    error_keys: tuple[str, ...]
    pool: ThreadPoolExecutor | None = None


class QueryRunner:
    def __init__(self, db: Database, s3: catalog.S3Settings | None, settings: RunnerSettings) -> None:
        self._db, self._s3, self._settings = db, s3, settings
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._engine = open_engine(settings.engine, **settings.engine_options)
        self._kinds: dict[str, _Kind] = {}
        if settings.workers > 0:
            self._kinds["query"] = _Kind("query", store, settings.workers, self._execute, INTERRUPTED,
                                         ("code", "message", "retry"))
        if settings.jobs.workers > 0:
            from opencleanrooms.runner.jobs import JobExecutor

            jobs = JobExecutor(db, s3, settings, self._engine)
            self._kinds["job"] = _Kind("job", job_store, settings.jobs.workers, jobs.execute, JOB_INTERRUPTED,
                                       ("code", "message"))
        for kind in self._kinds.values():
            kind.pool = ThreadPoolExecutor(max_workers=kind.workers, thread_name_prefix=kind.name)
        self._running: dict[tuple[str, str], CancelToken] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_purge = 0.0

    # -------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> QueryRunner:
        if not self._kinds:  # an API server that leaves queries and jobs to `opencleanrooms worker` processes
            return self
        for target in (self._dispatch_loop, self._heartbeat_loop):
            thread = threading.Thread(target=target, name=f"runner-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming; cancel what runs and record it as interrupted (retryable)."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            running = dict(self._running)
        for token in running.values():
            token.cancel()
        for kind in self._kinds.values():
            kind.pool.shutdown(wait=True, cancel_futures=True)
        for thread in self._threads:
            thread.join(timeout=5)
        self._engine.close()

    # -------------------------------------------------------------------------------------------- loops

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            for kind in self._kinds.values():
                try:
                    self._close_abandoned(kind)
                    self._claim(kind)
                except Exception:  # the database may be briefly unavailable; try again on the next tick
                    log.exception("runner %s: dispatch of %ss failed", self.name, kind.name)
            if "query" in self._kinds:  # intermediate table versions are query results
                try:
                    self._purge_expired()
                except Exception:
                    log.exception("runner %s: purging expired intermediate table versions failed", self.name)
            self._wake.wait(self._settings.poll_seconds)
            self._wake.clear()

    def _heartbeat_loop(self) -> None:
        interval = min(self._settings.poll_seconds, self._settings.lease_seconds / 3)
        while not self._stop.wait(interval):
            with self._lock:
                running = dict(self._running)
            for kind in self._kinds.values():
                ids = [work_id for (name, work_id) in running if name == kind.name]
                if not ids:
                    continue
                try:
                    with self._db.write() as conn:
                        cancelled = kind.store.renew_leases(conn, ids, time.time() + self._settings.lease_seconds)
                except Exception:
                    log.exception("runner %s: lease renewal failed", self.name)
                    continue
                for work_id in cancelled:
                    running[(kind.name, work_id)].cancel()

    def _claim(self, kind: _Kind) -> None:
        with self._lock:
            free = kind.workers - sum(1 for name, _ in self._running if name == kind.name)
        if free <= 0 or self._stop.is_set():
            return
        with self._db.read() as conn:  # an idle runner takes no write lock
            if not kind.store.claimable(conn, 1):
                return
        now = time.time()
        claimed = []
        with self._db.write() as conn:
            for work_id in kind.store.claimable(conn, free):
                if kind.store.transition(conn, work_id, ["SUBMITTED"], "STARTED", now, runner=self.name,
                                         lease_until=now + self._settings.lease_seconds):
                    claimed.append(work_id)
        for work_id in claimed:
            token = CancelToken()
            with self._lock:
                self._running[(kind.name, work_id)] = token
            kind.pool.submit(self._run, kind, work_id, token)

    def _purge_expired(self) -> None:
        """Delete the data of intermediate table versions past their retention (at most every PURGE_SECONDS)."""
        now = time.time()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_SECONDS
        with self._db.read() as conn:
            expired = intermediate_store.expired_with_data(conn, now)
        for version_id, doc in expired:
            results.delete_local_result(doc.get("location") or "", self._settings.results_dir)
            with self._db.write() as conn:
                intermediate_store.mark_purged(conn, version_id, now)

    def _close_abandoned(self, kind: _Kind) -> None:
        now = time.time()
        with self._db.read() as conn:
            if not kind.store.abandoned(conn, now):
                return
        with self._db.write() as conn:
            for work_id in kind.store.abandoned(conn, now):
                row = kind.store.get(conn, work_id)
                if row["status"] == "CANCELLING":
                    kind.store.transition(conn, work_id, ["CANCELLING"], "CANCELLED", now,
                                          doc=_finished(row, now))
                else:
                    kind.store.transition(conn, work_id, ["STARTED"], "FAILED", now,
                                          doc=_finished(row, now, error=kind.interrupted))

    # -------------------------------------------------------------------------------------------- one query

    def _run(self, kind: _Kind, work_id: str, token: CancelToken) -> None:
        row = None
        try:
            with self._db.read() as conn:
                row = kind.store.get(conn, work_id)
            status, extra = kind.execute(row, token)
            self._finish(kind, row, status, **extra)
        except Exception:
            log.exception("%s %s failed unexpectedly", kind.name, work_id)
            if row is not None:  # otherwise the lease runs out and another runner closes it
                self._finish(kind, row, "FAILED", error={"code": "INTERNAL_ERROR", "retry": {"retryable": True},
                                                        "message": f"The {kind.name} failed because of an internal "
                                                                   "error."})
        finally:
            with self._lock:
                self._running.pop((kind.name, work_id), None)
            self._wake.set()

    def _execute(self, row, token: CancelToken) -> tuple[str, dict]:
        spec = row["spec"]
        try:
            scans = self._scans(spec)
            limits = self._settings.limits
            if row["doc"].get("computeConfiguration"):  # resource hints for engines that can size a query
                limits = replace(limits, resource_hints=row["doc"]["computeConfiguration"])
            table = self._engine.execute(spec["sql"][self._engine.name], scans, limits, token)
            if spec.get("dp"):  # exact user-bounded cells in, the noisy answer out (and nothing exact)
                table, sensitivity = dp.release(table, spec["dp"]["aggregations"], spec["dp"]["usersNoisePerQuery"],
                                                spec["dp"].get("release"))
            if spec.get("intermediate"):  # the columns an intermediate table's version has, as populate named them
                table = _named(table, spec["intermediate"]["columns"])
            locations = [self._write(output, table, row["id"]) for output in spec["outputs"]]
        except QueryCancelled:
            return "CANCELLED", {}
        except QueryTimedOut as exc:
            return "TIMED_OUT", {"error": _error(exc)}
        except EngineError as exc:
            if self._stop.is_set():
                return "FAILED", {"error": INTERRUPTED}
            return "FAILED", {"error": _error(exc)}
        except results.ResultWriteError as exc:
            return "FAILED", {"error": _error(exc)}
        except catalog.CatalogError as exc:
            log.warning("query %s: a table cannot be read: %s", row["id"], exc)
            return "FAILED", {"error": {"code": "INVALID_RESOURCE", "retry": {"retryable": False},
                                        "message": "A table the query reads cannot be read: its data is missing or "
                                                   f"unreadable. The server log has the details (query {row['id']})."}}
        deliveries = [{"accountId": o["account_id"], "location": loc} for o, loc in zip(spec["outputs"], locations)]
        extra = {"result": _result(spec["report"], spec["outputs"], locations), "deliveries": deliveries}
        if spec.get("intermediate"):
            extra["populated"] = (locations[0], [(f.name, arrow_glue_type(f.type)) for f in table.schema])
        if spec.get("dp"):
            extra["differential_privacy"] = {"sensitivityParameters": sensitivity}
        return "SUCCESS", extra

    def _scans(self, spec: dict) -> list[TableScan]:
        """The plan's relations. An engine that reads the catalog's locations itself (Spark, on a cluster that
        cannot see this server's disk) gets those locations and the catalog's schema; DuckDB gets local files."""
        remote = getattr(self._engine, "reads_locations", False)
        scans = []
        for table in spec["tables"]:
            if "location" in table:  # an intermediate table's version: Parquet this server wrote
                scans.append(TableScan(name=table["scan"], scan=_stored_scan(table["location"]),
                                       columns=tuple(table["columns"]), label=table["label"]))
                continue
            with self._db.read() as conn:
                source = catalog.require_table(conn, table["account_id"], table["region"], table["database"],
                                               table["table"])
            if remote:
                schema = tuple((c.name, c.type) for c in catalog.read_schema(source, self._s3))
                scan = catalog.locate_scan(source, self._s3)
            else:
                schema, scan = None, catalog.prepare_scan(source, self._s3)
            scans.append(TableScan(name=table["scan"], scan=scan, columns=tuple(table["columns"]),
                                   label=table["label"], schema=schema))
        return scans

    def _write(self, output: dict, table, query_id: str) -> str:
        if output["kind"] == "intermediate":  # kept by this server, under its results directory
            destination = results.LocalDestination(self._settings.results_dir, "",
                                                   f"intermediate-tables/{output['table_id']}")
            return results.write_result(table, fmt="PARQUET", single_file=False, destination=destination,
                                        query_id=query_id)
        if self._s3 is not None and self._s3.endpoint_url:
            destination = results.S3Destination(output["bucket"], output["key_prefix"], self._s3)
        else:
            destination = results.LocalDestination(self._settings.results_dir, output["bucket"],
                                                   output["key_prefix"])
        return results.write_result(table, fmt=output["format"], single_file=output["single_file"],
                                    destination=destination, query_id=query_id)

    def _finish(self, kind: _Kind, row, status: str, *, error: dict | None = None, result: dict | None = None,
                deliveries: list | None = None, differential_privacy: dict | None = None,
                populated: tuple | None = None) -> None:
        now = time.time()
        if status == "CANCELLED" and self._stop.is_set():  # stopped under it, not cancelled by its member
            status, error = "FAILED", kind.interrupted
        if error is not None:  # each kind's error shape (a job's error has no retry hint)
            error = {key: value for key, value in error.items() if key in kind.error_keys}
        doc = _finished(row, now, error=error, result=result)
        if differential_privacy is not None:  # with the bounds the run released privately
            doc["differentialPrivacy"] = differential_privacy
        if deliveries is not None:
            doc["deliveries"] = deliveries  # where each receiver's copy is; never shown through the API
        with self._db.write() as conn:
            if kind.store.transition(conn, row["id"], ["STARTED"], status, now, doc=doc):
                if populated is not None:  # the version has its data in the transaction that ends its query
                    intermediate_store.mark_populated(conn, row["id"], now, *populated)
                return
            # Cancellation was asked for while it ran: it ends CANCELLED whatever else happened.
            kind.store.transition(conn, row["id"], ["CANCELLING"], "CANCELLED", now, doc=_finished(row, now))


def _finished(row, now: float, *, error: dict | None = None, result: dict | None = None) -> dict:
    doc = dict(row["doc"], statistics={"totalDurationInMillis": max(0, int(round((now - row["create_time"]) * 1000)))})
    if error is not None:
        doc["error"] = error
    if result is not None:
        doc["result"] = result
    return doc


def _error(exc) -> dict:
    return {"code": exc.code, "message": exc.message, "retry": {"retryable": bool(exc.retryable)}}


def _named(table, columns: list[str]):
    """The result with the column names populate recorded (lower case), when it has as many columns."""
    if len(columns) != table.num_columns:
        return table
    return table.rename_columns(list(columns))


def _stored_scan(location: str) -> catalog.Scan:
    """The Parquet files of a results location this server wrote (file://<dir>/), or one Parquet file (the data of
    an ID mapping table)."""
    directory = urllib.parse.unquote(location[len("file://"):]) if location.startswith("file://") else location
    if directory.endswith(".parquet") and os.path.isfile(directory):
        return catalog.Scan(format="parquet", files=(directory,))
    try:
        files = sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".parquet"))
    except OSError:
        files = []
    if not files:
        raise catalog.TableUnreadable("the stored data of a table the query reads has no data files")
    return catalog.Scan(format="parquet", files=tuple(files))


def _result(report: dict, outputs: list[dict], locations: list[str]) -> dict | None:
    """ProtectedQueryResult: the runner's own S3 location and/or the member receivers, as the request asked
    (none for a population: its result is the intermediate table's new version)."""
    if report.get("intermediate"):
        return None
    s3 = next((location for output, location in zip(outputs, locations) if output["kind"] == "s3"), None)
    members = [{"accountId": output["account_id"]} for output in outputs if output["kind"] == "member"]
    if report.get("distribute"):
        output: dict = {}
        if s3 is not None:
            output["s3"] = {"location": s3}
        if members:
            output["memberList"] = members
        return {"output": {"distribute": output}}
    if s3 is not None:
        return {"output": {"s3": {"location": s3}}}
    return {"output": {"memberList": members}}
