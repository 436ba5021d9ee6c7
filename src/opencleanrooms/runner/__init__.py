"""The query runner: claims SUBMITTED protected queries from the shared database and runs them off the request path.

Every server process (and, later, every `opencleanrooms worker`) runs one. A dispatcher thread claims the oldest
SUBMITTED queries with a conditional update (SUBMITTED -> STARTED, so exactly one runner wins each query, whatever
the number of processes) as long as a slot of its bounded pool is free, and a heartbeat renews the leases of the
queries it runs and notices cancellations asked for through any process. A query whose runner died (its lease ran
out) is closed by whichever runner notices: FAILED with a retryable TRANSIENT_ERROR (or CANCELLED, if its
cancellation had been asked for); it is never run twice. This package imports nothing of the services or HTTP.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from opencleanrooms import catalog, results
from opencleanrooms.engines import CancelToken, EngineError, Limits, QueryCancelled, QueryTimedOut, TableScan, open_engine
from opencleanrooms.runner import dp
from opencleanrooms.storage import protected_queries as store
from opencleanrooms.storage.database import Database

log = logging.getLogger("opencleanrooms.runner")

INTERRUPTED = {"code": "TRANSIENT_ERROR", "retry": {"retryable": True},
               "message": "The query was interrupted because the server running it stopped; start it again."}


@dataclass(frozen=True)
class RunnerSettings:
    engine: str = "duckdb"
    engine_options: dict = field(default_factory=dict)  # for open_engine (Spark: remote="sc://...")
    workers: int = 2  # queries run at once by this runner
    limits: Limits = Limits()
    results_dir: str = "results"  # where results go when the server has no S3 endpoint
    poll_seconds: float = 0.5
    lease_seconds: float = 30.0


class QueryRunner:
    def __init__(self, db: Database, s3: catalog.S3Settings | None, settings: RunnerSettings) -> None:
        self._db, self._s3, self._settings = db, s3, settings
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._engine = open_engine(settings.engine, **settings.engine_options)
        self._pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="query")
        self._running: dict[str, CancelToken] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> QueryRunner:
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
        self._pool.shutdown(wait=True, cancel_futures=True)
        for thread in self._threads:
            thread.join(timeout=5)
        self._engine.close()

    # -------------------------------------------------------------------------------------------- loops

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._close_abandoned()
                self._claim()
            except Exception:  # the database may be briefly unavailable; try again on the next tick
                log.exception("query runner %s: dispatch failed", self.name)
            self._wake.wait(self._settings.poll_seconds)
            self._wake.clear()

    def _heartbeat_loop(self) -> None:
        interval = min(self._settings.poll_seconds, self._settings.lease_seconds / 3)
        while not self._stop.wait(interval):
            with self._lock:
                running = dict(self._running)
            if not running:
                continue
            try:
                with self._db.write() as conn:
                    cancelled = store.renew_leases(conn, list(running), time.time() + self._settings.lease_seconds)
            except Exception:
                log.exception("query runner %s: lease renewal failed", self.name)
                continue
            for query_id in cancelled:
                running[query_id].cancel()

    def _claim(self) -> None:
        with self._lock:
            free = self._settings.workers - len(self._running)
        if free <= 0 or self._stop.is_set():
            return
        with self._db.read() as conn:  # an idle runner takes no write lock
            if not store.claimable(conn, 1):
                return
        now = time.time()
        claimed = []
        with self._db.write() as conn:
            for query_id in store.claimable(conn, free):
                if store.transition(conn, query_id, ["SUBMITTED"], "STARTED", now, runner=self.name,
                                    lease_until=now + self._settings.lease_seconds):
                    claimed.append(query_id)
        for query_id in claimed:
            token = CancelToken()
            with self._lock:
                self._running[query_id] = token
            self._pool.submit(self._run, query_id, token)

    def _close_abandoned(self) -> None:
        now = time.time()
        with self._db.read() as conn:
            if not store.abandoned(conn, now):
                return
        with self._db.write() as conn:
            for query_id in store.abandoned(conn, now):
                row = store.get(conn, query_id)
                if row["status"] == "CANCELLING":
                    store.transition(conn, query_id, ["CANCELLING"], "CANCELLED", now,
                                     doc=_finished(row, now))
                else:
                    store.transition(conn, query_id, ["STARTED"], "FAILED", now,
                                     doc=_finished(row, now, error=INTERRUPTED))

    # -------------------------------------------------------------------------------------------- one query

    def _run(self, query_id: str, token: CancelToken) -> None:
        row = None
        try:
            with self._db.read() as conn:
                row = store.get(conn, query_id)
            status, extra = self._execute(row, token)
            self._finish(row, status, **extra)
        except Exception:
            log.exception("query %s failed unexpectedly", query_id)
            if row is not None:  # otherwise the lease runs out and another runner closes it
                self._finish(row, "FAILED", error={"code": "INTERNAL_ERROR", "retry": {"retryable": True},
                                                  "message": "The query failed because of an internal error."})
        finally:
            with self._lock:
                self._running.pop(query_id, None)
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
                table, sensitivity = dp.release(table, spec["dp"]["aggregations"], spec["dp"]["usersNoisePerQuery"])
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
        if spec.get("dp"):
            extra["differential_privacy"] = {"sensitivityParameters": sensitivity}
        return "SUCCESS", extra

    def _scans(self, spec: dict) -> list[TableScan]:
        """The plan's relations. An engine that reads the catalog's locations itself (Spark, on a cluster that
        cannot see this server's disk) gets those locations and the catalog's schema; DuckDB gets local files."""
        remote = getattr(self._engine, "reads_locations", False)
        scans = []
        for table in spec["tables"]:
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
        if self._s3 is not None and self._s3.endpoint_url:
            destination = results.S3Destination(output["bucket"], output["key_prefix"], self._s3)
        else:
            destination = results.LocalDestination(self._settings.results_dir, output["bucket"],
                                                   output["key_prefix"])
        return results.write_result(table, fmt=output["format"], single_file=output["single_file"],
                                    destination=destination, query_id=query_id)

    def _finish(self, row, status: str, *, error: dict | None = None, result: dict | None = None,
                deliveries: list | None = None, differential_privacy: dict | None = None) -> None:
        now = time.time()
        doc = _finished(row, now, error=error, result=result)
        if differential_privacy is not None:  # with the bounds the run released privately
            doc["differentialPrivacy"] = differential_privacy
        if deliveries is not None:
            doc["deliveries"] = deliveries  # where each receiver's copy is; never shown through the API
        with self._db.write() as conn:
            if store.transition(conn, row["id"], ["STARTED"], status, now, doc=doc):
                return
            # Cancellation was asked for while the query ran: it ends CANCELLED whatever else happened.
            store.transition(conn, row["id"], ["CANCELLING"], "CANCELLED", now, doc=_finished(row, now))


def _finished(row, now: float, *, error: dict | None = None, result: dict | None = None) -> dict:
    doc = dict(row["doc"], statistics={"totalDurationInMillis": max(0, int(round((now - row["create_time"]) * 1000)))})
    if error is not None:
        doc["error"] = error
    if result is not None:
        doc["result"] = result
    return doc


def _error(exc) -> dict:
    return {"code": exc.code, "message": exc.message, "retry": {"retryable": bool(exc.retryable)}}


def _result(report: dict, outputs: list[dict], locations: list[str]) -> dict:
    """ProtectedQueryResult: the runner's own S3 location and/or the member receivers, as the request asked."""
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
