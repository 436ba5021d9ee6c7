"""Storage for collaboration change requests (tables and queries). Tables are created by migration 4.

A change request belongs to one collaboration. Its status is a real column (List filters on it); the changes, the
approvals and `isAutoApproved` sit in the JSON `doc`, shaped as the output's members.
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.keyset import KeysetQuery
from opencleanrooms.storage.schema import JSONDoc, Seq, metadata

change_requests = sa.Table(
    "collaboration_change_requests",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("collaboration_id", sa.String(36), sa.ForeignKey("collaborations.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("doc", JSONDoc, nullable=False),  # isAutoApproved, changes, approvals
    sa.Index("ix_change_requests_collaboration", "collaboration_id", "seq"),
    sa.Index("ix_change_requests_collaboration_status", "collaboration_id", "status", "seq"),
)

TABLES: list[sa.Table] = [change_requests]  # every table this module defines, in creation order

CR = change_requests


def insert(conn: sa.Connection, row: dict) -> None:
    conn.execute(CR.insert().values(**row))


def get(conn: sa.Connection, collaboration_id: str, change_request_id: str, *, for_update: bool = False):
    """The change request if it belongs to this collaboration, or None."""
    query = sa.select(CR).where(CR.c.id == change_request_id, CR.c.collaboration_id == collaboration_id)
    if for_update:
        query = query.with_for_update()  # PostgreSQL row lock; SQLite writers are serialised already
    return conn.execute(query).mappings().first()


def update(conn: sa.Connection, change_request_id: str, **values) -> None:
    conn.execute(CR.update().where(CR.c.id == change_request_id).values(**values))


_PAGE = KeysetQuery(sa.select(CR), CR.c.seq, {"collaboration_id": CR.c.collaboration_id, "status": CR.c.status})


def page_for_collaboration(conn: sa.Connection, collaboration_id: str, status: str | None, after: int | None,
                           limit: int):
    """The collaboration's change requests, newest first."""
    rows, last = _PAGE.fetch(conn, after, limit, collaboration_id=collaboration_id, status=status)
    return [row._mapping for row in rows], last
