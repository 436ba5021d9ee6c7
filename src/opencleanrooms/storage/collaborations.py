"""Collaborations and their members (one row per invited account, the creator included)."""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.keyset import fetch_page
from opencleanrooms.storage.schema import collaborations as C
from opencleanrooms.storage.schema import members as M


def insert(conn: sa.Connection, collaboration: dict, member_rows: list[dict]) -> int:
    seq = conn.execute(C.insert().values(**collaboration)).inserted_primary_key[0]
    for row in member_rows:
        conn.execute(M.insert().values(collaboration_seq=seq, **row))
    return seq


def get(conn: sa.Connection, region: str, collaboration_id: str):
    """The live (not deleted) collaboration, or None."""
    return conn.execute(
        sa.select(C).where(C.c.id == collaboration_id, C.c.region == region, C.c.deleted.is_(False))
    ).mappings().first()


def get_any(conn: sa.Connection, collaboration_id: str):
    return conn.execute(sa.select(C).where(C.c.id == collaboration_id)).mappings().first()


def count_created(conn: sa.Connection, region: str, account_id: str) -> int:
    return conn.execute(
        sa.select(sa.func.count()).where(
            C.c.region == region, C.c.creator_account_id == account_id, C.c.deleted.is_(False)
        )
    ).scalar_one()


def update(conn: sa.Connection, collaboration_id: str, **values) -> None:
    conn.execute(C.update().where(C.c.id == collaboration_id).values(**values))


def mark_deleted(conn: sa.Connection, collaboration_id: str, now: float) -> None:
    conn.execute(C.update().where(C.c.id == collaboration_id).values(deleted=True, update_time=now))
    conn.execute(M.update().where(M.c.collaboration_id == collaboration_id).values(listed=False))


def get_member(conn: sa.Connection, collaboration_id: str, account_id: str):
    return conn.execute(
        sa.select(M).where(M.c.collaboration_id == collaboration_id, M.c.account_id == account_id)
    ).mappings().first()


def update_member(conn: sa.Connection, collaboration_id: str, account_id: str, **values) -> None:
    conn.execute(
        M.update().where(M.c.collaboration_id == collaboration_id, M.c.account_id == account_id).values(**values)
    )


def page_members(conn: sa.Connection, collaboration_id: str, after: int | None, limit: int):
    """Members in invitation order (the creator first)."""
    query = sa.select(M).where(M.c.collaboration_id == collaboration_id)
    return fetch_page(conn, query, M.c.seq, after, limit, ascending=True)


def page_for_account(conn: sa.Connection, region: str, account_id: str, status: str | None,
                     after: int | None, limit: int):
    """The caller's collaborations, newest first, each with the caller's member row."""
    query = (
        sa.select(
            M.c.collaboration_seq.label("seq"),
            M.c.status.label("member_status"),
            M.c.membership_id,
            C.c.id, C.c.arn, C.c.name, C.c.creator_account_id, C.c.creator_display_name,
            C.c.create_time, C.c.update_time, C.c.doc,
        )
        .join(C, C.c.id == M.c.collaboration_id)
        .where(M.c.region == region, M.c.account_id == account_id, M.c.listed.is_(True))
    )
    if status is not None:
        query = query.where(M.c.status == status)
    return fetch_page(conn, query, M.c.collaboration_seq, after, limit)
