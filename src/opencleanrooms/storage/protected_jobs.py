"""Storage for protected jobs (PySpark): the job rows and who may see each. Created by migration 7.

Jobs are kept like protected queries (storage/protected_queries.py): the output-shaped fields in `doc`, what the
runner needs (the artifacts' locations and approved hashes, the tables' catalog references, the destinations) in
`spec`, never shown; visibility is a row per (membership, job) in `protected_job_views` (the job's runner and its
result receivers); status changes are conditional updates, so exactly one runner claims a job and a finished job
never changes again; a running job's runner renews `lease_until`. The functions the runner calls have the same
names and meanings as the query store's, so one runner serves both.
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.keyset import KeysetQuery
from opencleanrooms.storage.schema import JSONDoc, Seq, metadata

ACTIVE_STATUSES = ("SUBMITTED", "STARTED", "CANCELLING")
FINAL_STATUSES = ("SUCCESS", "FAILED", "CANCELLED")

protected_jobs = sa.Table(
    "protected_jobs",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),  # the member who started it
    sa.Column("collaboration_id", sa.String(36), sa.ForeignKey("collaborations.id"), nullable=False),
    sa.Column("membership_id", sa.String(36), nullable=False),  # no foreign key: a job outlives a membership
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("doc", JSONDoc, nullable=False),
    sa.Column("spec", JSONDoc, nullable=False),
    sa.Column("runner", sa.String(64), nullable=True),  # the runner that claimed it
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Index("ix_protected_jobs_status", "status", "seq"),
    sa.Index("ix_protected_jobs_membership_status", "membership_id", "status"),
)

protected_job_views = sa.Table(
    "protected_job_views",
    metadata,
    sa.Column("membership_id", sa.String(36), primary_key=True),
    sa.Column("job_seq", sa.BigInteger, sa.ForeignKey("protected_jobs.seq"), primary_key=True),
)

TABLES: list[sa.Table] = [protected_jobs, protected_job_views]

J, V = protected_jobs, protected_job_views

_PAGE = KeysetQuery(
    sa.select(J.c.seq, J.c.id, J.c.region, J.c.account_id, J.c.membership_id, J.c.create_time, J.c.status, J.c.doc)
    .select_from(V.join(J, J.c.seq == V.c.job_seq)),
    J.c.seq, {"membership_id": V.c.membership_id, "status": J.c.status})


def insert(conn: sa.Connection, row: dict, viewers: list[str]) -> int:
    seq = conn.execute(J.insert().values(**row)).inserted_primary_key[0]
    conn.execute(V.insert(), [{"membership_id": m, "job_seq": seq} for m in dict.fromkeys(viewers)])
    return seq


def get_visible(conn: sa.Connection, membership_id: str, job_id: str):
    """The job if that membership may see it, else None."""
    return conn.execute(
        sa.select(J).select_from(V.join(J, J.c.seq == V.c.job_seq))
        .where(V.c.membership_id == membership_id, J.c.id == job_id)
    ).mappings().first()


def get(conn: sa.Connection, job_id: str):
    return conn.execute(sa.select(J).where(J.c.id == job_id)).mappings().first()


def page_for_membership(conn: sa.Connection, membership_id: str, status: str | None, after: int | None, limit: int):
    """The jobs the membership sees, newest first."""
    return _PAGE.fetch(conn, after, limit, membership_id=membership_id, status=status)


def count_active(conn: sa.Connection, *, membership_id: str) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(J).where(
        J.c.status.in_(ACTIVE_STATUSES), J.c.membership_id == membership_id)).scalar_one()


def transition(conn: sa.Connection, job_id: str, from_statuses, status: str, now: float, *,
               doc: dict | None = None, **values) -> bool:
    """Move the job to `status` if it is in one of `from_statuses`; True when this call made the change."""
    changes = dict(values, status=status, update_time=now)
    if doc is not None:
        changes["doc"] = doc
    return conn.execute(
        J.update().where(J.c.id == job_id, J.c.status.in_(tuple(from_statuses))).values(**changes)
    ).rowcount == 1


def claimable(conn: sa.Connection, limit: int) -> list[str]:
    """Ids of the oldest SUBMITTED jobs."""
    return list(conn.execute(
        sa.select(J.c.id).where(J.c.status == "SUBMITTED").order_by(J.c.seq).limit(limit)).scalars())


def renew_leases(conn: sa.Connection, job_ids: list[str], lease_until: float) -> list[str]:
    """Extend the leases of running jobs; returns those whose cancellation was asked for."""
    if not job_ids:
        return []
    conn.execute(J.update().where(J.c.id.in_(job_ids), J.c.status.in_(("STARTED", "CANCELLING")))
                 .values(lease_until=lease_until))
    return list(conn.execute(
        sa.select(J.c.id).where(J.c.id.in_(job_ids), J.c.status == "CANCELLING")).scalars())


def abandoned(conn: sa.Connection, now: float) -> list[str]:
    """Running jobs whose runner stopped renewing the lease."""
    return list(conn.execute(
        sa.select(J.c.id).where(J.c.status.in_(("STARTED", "CANCELLING")), J.c.lease_until < now)).scalars())
