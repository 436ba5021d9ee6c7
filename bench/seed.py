"""Seeding: the same data on both servers, through their APIs (boto3, several threads, with progress), and for the
100,000-membership case on our server only, directly through our storage layer.

The pattern is the one moto 5.2.5 supports: moto's CreateMembership finds only collaborations of the caller's own
account, so one account creates each collaboration (no other members) and then joins it. Each pair is
CreateCollaboration + CreateMembership, so the account ends with N collaborations (all ACTIVE for it) and N
memberships.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import boto3
import botocore.config

from bench.signing import COLLABORATION_BODY, REGION, Endpoint


def client(endpoint: Endpoint, pool: int = 10):
    return boto3.session.Session().client(
        "cleanrooms", endpoint_url=endpoint.url, region_name=REGION,
        aws_access_key_id=endpoint.access_key_id, aws_secret_access_key=endpoint.secret_access_key,
        config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=pool,
                                      tcp_keepalive=True),
    )


class Progress:
    def __init__(self, label: str, total: int, every: float = 2.0, quiet: bool = False) -> None:
        self.label, self.total, self.every, self.quiet = label, total, every, quiet
        self.done = 0
        self.started = self.last = time.perf_counter()
        self.lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        with self.lock:
            self.done += n
            now = time.perf_counter()
            if not self.quiet and (now - self.last >= self.every or self.done == self.total):
                self.last = now
                rate = self.done / (now - self.started) if now > self.started else 0.0
                print(f"  {self.label}: {self.done}/{self.total} ({rate:.0f}/s)", file=sys.stderr, flush=True)


def seed_api(endpoint: Endpoint, count: int, *, threads: int = 8, label: str = "", start_index: int = 0,
             quiet: bool = False) -> dict:
    """Create `count` collaboration+membership pairs through the API; returns timing figures."""
    if count <= 0:
        return {"pairs": 0, "seconds": 0.0, "pairs_per_s": None, "threads": threads}
    progress = Progress(label or f"seeding {endpoint.name}", count, quiet=quiet)
    clients = [client(endpoint) for _ in range(threads)]  # created here: client creation is not thread-safe
    indices = iter(range(start_index, start_index + count))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(c) -> None:
        while not errors:
            with lock:
                i = next(indices, None)
            if i is None:
                return
            try:
                collaboration = c.create_collaboration(**dict(COLLABORATION_BODY, name=f"bench-{i:06d}"))
                c.create_membership(collaborationIdentifier=collaboration["collaboration"]["id"],
                                    queryLogStatus="DISABLED")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return
            progress.add()

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(c,), daemon=True) for c in clients]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"seeding {endpoint.name} failed: {errors[0]!r}") from errors[0]
    return {"pairs": count, "seconds": seconds, "pairs_per_s": count / seconds, "threads": threads}


def seed_storage(data_dir: Path, account_id: str, count: int, *, batch: int = 2000, label: str = "",
                 quiet: bool = False) -> dict:
    """Insert `count` pairs for `account_id` straight into our database with `opencleanrooms.storage`, producing
    the rows CreateCollaboration + CreateMembership would (the server may be running: SQLite WAL, the writer lock
    is held per batch)."""
    from opencleanrooms.services import arns, payment, summaries
    from opencleanrooms.storage import collaborations as collaboration_store
    from opencleanrooms.storage import memberships as membership_store
    from opencleanrooms.storage.database import Database, sqlite_url

    abilities = COLLABORATION_BODY["creatorMemberAbilities"]
    payments = payment.assign([payment.Participant(account_id, abilities, None, "creatorPaymentConfiguration")])
    collaboration_doc = {"description": COLLABORATION_BODY["description"],
                         "queryLogStatus": COLLABORATION_BODY["queryLogStatus"], "isMetricsEnabled": False}
    member_doc = {"abilities": abilities, "paymentConfiguration": payments[account_id]}
    membership_doc = {"queryLogStatus": "DISABLED", "isMetricsEnabled": False}
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    db = Database(sqlite_url(data_dir))
    db.migrate()
    progress = Progress(label or f"storage seeding {account_id}", count, quiet=quiet)
    started = time.perf_counter()
    base = round(time.time(), 3)
    try:
        for first in range(0, count, batch):
            with db.write() as conn:
                for i in range(first, min(count, first + batch)):
                    now = round(base + i / 1000, 3)
                    collaboration_id, membership_id = arns.new_id(), arns.new_id()
                    collaboration_store.insert(conn, {
                        "id": collaboration_id, "region": REGION,
                        "arn": arns.collaboration_arn(REGION, account_id, collaboration_id),
                        "creator_account_id": account_id, "creator_display_name": "Bench",
                        "name": f"bench-{i:06d}", "deleted": False, "create_time": now, "update_time": now,
                        "doc": collaboration_doc,
                    }, [{
                        "collaboration_id": collaboration_id, "region": REGION, "account_id": account_id,
                        "status": "ACTIVE", "listed": True, "display_name": "Bench", "membership_id": membership_id,
                        "create_time": now, "update_time": now, "doc": member_doc,
                    }])
                    membership_store.insert(conn, {
                        "id": membership_id, "region": REGION,
                        "arn": arns.membership_arn(REGION, account_id, membership_id), "account_id": account_id,
                        "collaboration_id": collaboration_id, "status": "ACTIVE", "create_time": now,
                        "update_time": now, "doc": membership_doc,
                    })
                    summaries.refresh(conn, collaboration_id)  # the pre-encoded list summaries, as the API writes
            progress.add(min(count, first + batch) - first)
    finally:
        db.dispose()
    seconds = time.perf_counter() - started
    return {"pairs": count, "seconds": seconds, "pairs_per_s": count / seconds if seconds else None,
            "method": "opencleanrooms.storage (direct inserts, not the API)"}


def walk(endpoint: Endpoint, operation: str = "list_memberships", key: str = "membershipSummaries") -> dict:
    """A full walk with the boto3 paginator (a fresh client, so that its creation is not timed)."""
    c = client(endpoint)
    c.list_collaborations(maxResults=1)  # open the connection and load the model before timing
    started, client_cpu = time.perf_counter(), time.process_time()
    items = pages = 0
    for page in c.get_paginator(operation).paginate(PaginationConfig={"PageSize": 100}):
        items += len(page[key])
        pages += 1
    return {"seconds": time.perf_counter() - started, "items": items, "pages": pages,
            "client_cpu_s": time.process_time() - client_cpu}
