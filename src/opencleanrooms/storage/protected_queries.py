"""Storage for protected queries: the query rows, who may see each, and the query log. Created by migration 5.

A query belongs to the membership that ran it; its result receivers' memberships see it too, so visibility is a
row per (membership, query) in `protected_query_views`, and a membership's list is a keyset range on that table.
The output-shaped fields of a query (sqlParameters, resultConfiguration, result, error, statistics, ...) sit in
`doc`; what the runner needs to run it (the engine SQL, the tables' catalog references, the destinations) sits in
`spec`, which is never shown to anyone. Queries are history: they outlive the memberships that ran or received
them (a member who leaves can no longer reach them, as its membership is gone), so membership ids carry no
foreign key. Status changes are conditional updates (`WHERE status IN (...)`), so a
query is claimed by exactly one runner and a finished query never changes again, whichever process gets there
first. A running query's runner renews `lease_until`; a query whose lease ran out was abandoned by a runner that
died, and any runner may close it.
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage import runs
from opencleanrooms.storage.runs import ACTIVE_STATUSES  # noqa: F401  (part of this store's interface)
from opencleanrooms.storage.schema import Seq, metadata

FINAL_STATUSES = ("SUCCESS", "FAILED", "CANCELLED", "TIMED_OUT")

protected_queries = runs.run_table(
    "protected_queries", sa.Index("ix_protected_queries_account_status", "account_id", "status"))
# One row per membership that sees the query: the runner's and each result receiver's.
protected_query_views = runs.view_table("protected_query_views", protected_queries, "query_seq")

# The query log of a membership whose collaboration and membership both log queries: what ran, by whom, how it
# ended. Rows are written when the query is accepted and completed when it ends.
query_log = sa.Table(
    "query_log",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("membership_id", sa.String(36), nullable=False),
    sa.Column("query_id", sa.String(36), nullable=False),
    sa.Column("runner_account_id", sa.String(12), nullable=False),
    sa.Column("query_text", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("end_time", sa.Float, nullable=True),
    sa.Column("error_code", sa.String(32), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Index("ix_query_log_membership", "membership_id", "seq"),
    sa.Index("ix_query_log_query", "query_id"),
)

TABLES: list[sa.Table] = [protected_queries, protected_query_views, query_log]

L = query_log

_runs = runs.Runs(protected_queries, protected_query_views, "query_seq")
get_visible = _runs.get_visible
get = _runs.get
page_for_membership = _runs.page_for_membership
count_active = _runs.count_active
claimable = _runs.claimable
renew_leases = _runs.renew_leases
abandoned = _runs.abandoned


def insert(conn: sa.Connection, row: dict, viewers: list[str], log_memberships: list[str]) -> int:
    """A new query, visible to `viewers` (membership ids), logged for `log_memberships`."""
    seq = _runs.insert(conn, row, viewers)
    if log_memberships:
        text = row["doc"].get("sqlParameters", {}).get("queryString") or row["spec"].get("log_text", "")
        conn.execute(L.insert(), [{
            "membership_id": m, "query_id": row["id"], "runner_account_id": row["account_id"], "query_text": text,
            "status": row["status"], "create_time": row["create_time"],
            "end_time": row["update_time"] if row["status"] in FINAL_STATUSES else None,
            "error_code": (row["doc"].get("error") or {}).get("code"),
            "error_message": (row["doc"].get("error") or {}).get("message")} for m in log_memberships])
    return seq


def transition(conn: sa.Connection, query_id: str, from_statuses, status: str, now: float, *,
               doc: dict | None = None, **values) -> bool:
    """Move the query to `status` if it is in one of `from_statuses`; True when this call made the change. The
    query log follows the status."""
    done = _runs.transition(conn, query_id, from_statuses, status, now, doc=doc, **values)
    if done:
        error = (doc or {}).get("error") or {}
        conn.execute(L.update().where(L.c.query_id == query_id).values(
            status=status, end_time=now if status in FINAL_STATUSES else None,
            error_code=error.get("code"), error_message=error.get("message")))
    return done


def log_for_membership(conn: sa.Connection, membership_id: str, limit: int = 100):
    return conn.execute(
        sa.select(L).where(L.c.membership_id == membership_id).order_by(L.c.seq.desc()).limit(limit)
    ).mappings().all()
