"""Collaborations and their members (one row per invited account, the creator included)."""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.keyset import KeysetQuery
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


_MEMBERS_PAGE = KeysetQuery(sa.select(M), M.c.seq, {"collaboration_id": M.c.collaboration_id}, ascending=True)
_ACCOUNT_PAGE = KeysetQuery(
    sa.select(M.c.collaboration_seq.label("seq"), M.c.summary).where(M.c.listed.is_(True)),
    M.c.collaboration_seq, {"region": M.c.region, "account_id": M.c.account_id, "status": M.c.status})


def page_members(conn: sa.Connection, collaboration_id: str, after: int | None, limit: int):
    """Members in invitation order (the creator first)."""
    rows, last = _MEMBERS_PAGE.fetch(conn, after, limit, collaboration_id=collaboration_id)
    return [row._mapping for row in rows], last


def members_of(conn: sa.Connection, collaboration_id: str):
    """In a fixed order (seq), so that writers rewriting them lock rows in the same order."""
    return conn.execute(
        sa.select(M).where(M.c.collaboration_id == collaboration_id).order_by(M.c.seq)).mappings().all()


def set_member_summary(conn: sa.Connection, seq: int, summary: str) -> None:
    conn.execute(M.update().where(M.c.seq == seq).values(summary=summary))


def ids_missing_summaries(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.select(M.c.collaboration_id).where(M.c.summary.is_(None)).distinct()).scalars())


def page_for_account(conn: sa.Connection, region: str, account_id: str, status: str | None,
                     after: int | None, limit: int):
    """The caller's collaborations, newest first, as (seq, pre-encoded summary) rows."""
    return _ACCOUNT_PAGE.fetch_tuples(conn, after, limit, region=region, account_id=account_id, status=status)


def add_member(conn: sa.Connection, collaboration_id: str, row: dict) -> None:
    """A member row for an account invited to an existing collaboration (after its creation)."""
    seq = conn.execute(sa.select(C.c.seq).where(C.c.id == collaboration_id)).scalar_one()
    conn.execute(M.insert().values(collaboration_id=collaboration_id, collaboration_seq=seq, **row))
