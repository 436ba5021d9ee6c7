"""Storage for protected queries: the query rows, who may see each, and the query log. Created by migration 5.

A query belongs to the membership that ran it; its result receivers' memberships see it too, so visibility is a
row per (membership, query) in `protected_query_views`, and a membership's list is a keyset range on that table.
The output-shaped fields of a query (sqlParameters, resultConfiguration, result, error, statistics, ...) sit in
`doc`; what the runner needs to run it (the engine SQL, the tables' catalog references, the destinations) sits in
`spec`, which is never shown to anyone. Status changes are conditional updates (`WHERE status IN (...)`), so a
query is claimed by exactly one runner and a finished query never changes again, whichever process gets there
first. A running query's runner renews `lease_until`; a query whose lease ran out was abandoned by a runner that
died, and any runner may close it.
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.keyset import KeysetQuery
from opencleanrooms.storage.schema import JSONDoc, Seq, metadata

ACTIVE_STATUSES = ("SUBMITTED", "STARTED", "CANCELLING")
FINAL_STATUSES = ("SUCCESS", "FAILED", "CANCELLED", "TIMED_OUT")

protected_queries = sa.Table(
    "protected_queries",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),  # the member who ran it
    sa.Column("collaboration_id", sa.String(36), sa.ForeignKey("collaborations.id"), nullable=False),
    sa.Column("membership_id", sa.String(36), sa.ForeignKey("memberships.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("doc", JSONDoc, nullable=False),
    sa.Column("spec", JSONDoc, nullable=False),
    sa.Column("runner", sa.String(64), nullable=True),  # the runner that claimed it
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Index("ix_protected_queries_status", "status", "seq"),
    sa.Index("ix_protected_queries_account_status", "account_id", "status"),
)

# One row per membership that sees the query: the runner's and each result receiver's.
protected_query_views = sa.Table(
    "protected_query_views",
    metadata,
    sa.Column("membership_id", sa.String(36), sa.ForeignKey("memberships.id"), primary_key=True),
    sa.Column("query_seq", sa.BigInteger, sa.ForeignKey("protected_queries.seq"), primary_key=True),
)

# The query log of a membership whose collaboration and membership both log queries: what ran, by whom, how it
# ended. Rows are written when the query is accepted and completed when it ends.
query_log = sa.Table(
    "query_log",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("membership_id", sa.String(36), sa.ForeignKey("memberships.id"), nullable=False),
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

Q, V, L = protected_queries, protected_query_views, query_log

_PAGE = KeysetQuery(
    sa.select(Q.c.seq, Q.c.id, Q.c.membership_id, Q.c.create_time, Q.c.status, Q.c.doc)
    .select_from(V.join(Q, Q.c.seq == V.c.query_seq)),
    Q.c.seq, {"membership_id": V.c.membership_id, "status": Q.c.status})


def insert(conn: sa.Connection, row: dict, viewers: list[str], log_memberships: list[str]) -> int:
    """A new query, visible to `viewers` (membership ids), logged for `log_memberships`."""
    seq = conn.execute(Q.insert().values(**row)).inserted_primary_key[0]
    conn.execute(V.insert(), [{"membership_id": m, "query_seq": seq} for m in dict.fromkeys(viewers)])
    if log_memberships:
        text = row["doc"].get("sqlParameters", {}).get("queryString") or row["spec"].get("log_text", "")
        conn.execute(L.insert(), [{
            "membership_id": m, "query_id": row["id"], "runner_account_id": row["account_id"], "query_text": text,
            "status": row["status"], "create_time": row["create_time"],
            "end_time": row["update_time"] if row["status"] in FINAL_STATUSES else None,
            "error_code": (row["doc"].get("error") or {}).get("code"),
            "error_message": (row["doc"].get("error") or {}).get("message")} for m in log_memberships])
    return seq


def get_visible(conn: sa.Connection, membership_id: str, query_id: str):
    """The query if that membership may see it, else None."""
    return conn.execute(
        sa.select(Q).select_from(V.join(Q, Q.c.seq == V.c.query_seq))
        .where(V.c.membership_id == membership_id, Q.c.id == query_id)
    ).mappings().first()


def get(conn: sa.Connection, query_id: str):
    return conn.execute(sa.select(Q).where(Q.c.id == query_id)).mappings().first()


def page_for_membership(conn: sa.Connection, membership_id: str, status: str | None, after: int | None, limit: int):
    """The queries the membership sees, newest first."""
    return _PAGE.fetch(conn, after, limit, membership_id=membership_id, status=status)


def count_active(conn: sa.Connection, *, account_id: str | None = None, membership_id: str | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(Q).where(Q.c.status.in_(ACTIVE_STATUSES))
    if account_id is not None:
        query = query.where(Q.c.account_id == account_id)
    if membership_id is not None:
        query = query.where(Q.c.membership_id == membership_id)
    return conn.execute(query).scalar_one()


def transition(conn: sa.Connection, query_id: str, from_statuses, status: str, now: float, *,
               doc: dict | None = None, **values) -> bool:
    """Move the query to `status` if it is in one of `from_statuses`; True when this call made the change. The
    query log follows the status."""
    changes = dict(values, status=status, update_time=now)
    if doc is not None:
        changes["doc"] = doc
    done = conn.execute(
        Q.update().where(Q.c.id == query_id, Q.c.status.in_(tuple(from_statuses))).values(**changes)
    ).rowcount == 1
    if done:
        error = (doc or {}).get("error") or {}
        conn.execute(L.update().where(L.c.query_id == query_id).values(
            status=status, end_time=now if status in FINAL_STATUSES else None,
            error_code=error.get("code"), error_message=error.get("message")))
    return done


def claimable(conn: sa.Connection, limit: int) -> list[str]:
    """Ids of the oldest SUBMITTED queries."""
    return list(conn.execute(
        sa.select(Q.c.id).where(Q.c.status == "SUBMITTED").order_by(Q.c.seq).limit(limit)).scalars())


def renew_leases(conn: sa.Connection, query_ids: list[str], lease_until: float) -> list[str]:
    """Extend the leases of running queries; returns those whose cancellation was asked for."""
    if not query_ids:
        return []
    conn.execute(Q.update().where(Q.c.id.in_(query_ids), Q.c.status.in_(("STARTED", "CANCELLING")))
                 .values(lease_until=lease_until))
    return list(conn.execute(
        sa.select(Q.c.id).where(Q.c.id.in_(query_ids), Q.c.status == "CANCELLING")).scalars())


def abandoned(conn: sa.Connection, now: float) -> list[str]:
    """Running queries whose runner stopped renewing the lease."""
    return list(conn.execute(
        sa.select(Q.c.id).where(Q.c.status.in_(("STARTED", "CANCELLING")), Q.c.lease_until < now)).scalars())


def log_for_membership(conn: sa.Connection, membership_id: str, limit: int = 100):
    return conn.execute(
        sa.select(L).where(L.c.membership_id == membership_id).order_by(L.c.seq.desc()).limit(limit)
    ).mappings().all()
