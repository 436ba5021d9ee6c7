"""Storage for analysis log exports (tables and queries). Tables are created by migration 10.

An export copies the redacted log of one protected query to a member's S3 location. Exports are history, like the
queries they export: there is no operation to delete one, so they outlive the membership that started them (which
then can no longer reach them) and membership ids carry no foreign key. An export is written IN_PROGRESS and then
moved, once, to SUCCESS or FAILED by a conditional update; `deadline` bounds how long it may stay IN_PROGRESS (past
it, the process writing it is taken to have stopped, and readers report it FAILED).
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.keyset import KeysetQuery
from opencleanrooms.storage.schema import JSONDoc, Seq, metadata

analysis_log_exports = sa.Table(
    "analysis_log_exports",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),  # the member who started it
    sa.Column("collaboration_id", sa.String(36), nullable=False),
    sa.Column("membership_id", sa.String(36), nullable=False),  # no foreign key: an export outlives a membership
    sa.Column("analysis_id", sa.String(36), nullable=False),  # the protected query
    sa.Column("analysis_type", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # IN_PROGRESS | SUCCESS | FAILED
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("deadline", sa.Float, nullable=False),
    sa.Column("doc", JSONDoc, nullable=False),  # resultConfiguration, error; `location` (never shown)
    sa.Index("ix_analysis_log_exports_membership", "membership_id", "seq"),
    sa.Index("ix_analysis_log_exports_analysis", "analysis_id", "status"),
)

TABLES: list[sa.Table] = [analysis_log_exports]

E = analysis_log_exports


def insert(conn: sa.Connection, row: dict) -> None:
    conn.execute(E.insert().values(**row))


def get(conn: sa.Connection, membership_id: str, export_id: str):
    """The membership's export, or None: one of another membership, like an unknown id, is None."""
    return conn.execute(
        sa.select(E).where(E.c.id == export_id, E.c.membership_id == membership_id)
    ).mappings().first()


def in_progress_to(conn: sa.Connection, analysis_id: str, bucket: str, key_prefix: str, now: float) -> bool:
    """Whether an export of that query to that bucket and key prefix is still IN_PROGRESS (and within its
    deadline)."""
    rows = conn.execute(
        sa.select(E.c.doc).where(E.c.analysis_id == analysis_id, E.c.status == "IN_PROGRESS", E.c.deadline > now)
    ).scalars().all()
    return any(_destination(doc) == (bucket, key_prefix) for doc in rows)


def in_progress_of(conn: sa.Connection, membership_id: str):
    """The membership's exports that are IN_PROGRESS."""
    return conn.execute(
        sa.select(E).where(E.c.membership_id == membership_id, E.c.status == "IN_PROGRESS")
    ).mappings().all()


def finish(conn: sa.Connection, export_id: str, status: str, now: float, doc: dict) -> bool:
    """Move an IN_PROGRESS export to its final status (once); True when this call made the change."""
    return conn.execute(
        E.update().where(E.c.id == export_id, E.c.status == "IN_PROGRESS")
        .values(status=status, update_time=now, doc=doc)
    ).rowcount == 1


_PAGE = KeysetQuery(sa.select(E.c.seq, E.c.id, E.c.analysis_id, E.c.analysis_type, E.c.status, E.c.create_time),
                    E.c.seq, {"membership_id": E.c.membership_id, "analysis_id": E.c.analysis_id,
                              "status": E.c.status})


def page_for_membership(conn: sa.Connection, membership_id: str, analysis_id: str | None, status: str | None,
                        after: int | None, limit: int):
    """The membership's exports, newest first, optionally of one query and in one status (as stored)."""
    return _PAGE.fetch(conn, after, limit, membership_id=membership_id, analysis_id=analysis_id, status=status)


def _destination(doc: dict) -> tuple[str, str]:
    s3 = doc["resultConfiguration"]["outputConfiguration"]["s3"]
    return s3["bucket"], s3.get("keyPrefix", "")
