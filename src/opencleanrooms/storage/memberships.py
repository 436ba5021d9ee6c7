"""Memberships: the resource an account owns once it has joined a collaboration."""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.keyset import KeysetQuery
from opencleanrooms.storage.schema import collaborations as C
from opencleanrooms.storage.schema import members as M
from opencleanrooms.storage.schema import memberships as MS

# A membership joined with what its summary shows of the collaboration and of the member row, so that names and
# abilities are always read where they live (and are therefore current).
_JOINED = (
    sa.select(
        MS,
        C.c.arn.label("collaboration_arn"),
        C.c.name.label("collaboration_name"),
        C.c.creator_account_id.label("collaboration_creator_account_id"),
        C.c.creator_display_name.label("collaboration_creator_display_name"),
        C.c.doc.label("collaboration_doc"),
        M.c.doc.label("member_doc"),
    )
    .join(C, C.c.id == MS.c.collaboration_id)
    .join(M, sa.and_(M.c.collaboration_id == MS.c.collaboration_id, M.c.account_id == MS.c.account_id))
)


def insert(conn: sa.Connection, row: dict) -> None:
    conn.execute(MS.insert().values(**row))


def get(conn: sa.Connection, region: str, account_id: str, membership_id: str):
    return conn.execute(
        _JOINED.where(MS.c.id == membership_id, MS.c.region == region, MS.c.account_id == account_id)
    ).mappings().first()


def count_for_account(conn: sa.Connection, region: str, account_id: str) -> int:
    return conn.execute(
        sa.select(sa.func.count()).where(MS.c.region == region, MS.c.account_id == account_id)
    ).scalar_one()


def update(conn: sa.Connection, membership_id: str, **values) -> None:
    conn.execute(MS.update().where(MS.c.id == membership_id).values(**values))


def set_status_for_collaboration(conn: sa.Connection, collaboration_id: str, status: str, now: float) -> None:
    conn.execute(
        MS.update().where(MS.c.collaboration_id == collaboration_id).values(status=status, update_time=now)
    )


def delete(conn: sa.Connection, membership_id: str) -> None:
    conn.execute(MS.delete().where(MS.c.id == membership_id))


_ACCOUNT_PAGE = KeysetQuery(sa.select(MS.c.seq, MS.c.summary), MS.c.seq,
                            {"region": MS.c.region, "account_id": MS.c.account_id, "status": MS.c.status})


def page_for_account(conn: sa.Connection, region: str, account_id: str, status: str | None,
                     after: int | None, limit: int):
    """The account's memberships, newest first, as (seq, pre-encoded summary) rows."""
    return _ACCOUNT_PAGE.fetch_tuples(conn, after, limit, region=region, account_id=account_id, status=status)


def joined_for_collaboration(conn: sa.Connection, collaboration_id: str):
    """In a fixed order (seq), so that writers rewriting them lock rows in the same order."""
    return conn.execute(
        _JOINED.where(MS.c.collaboration_id == collaboration_id).order_by(MS.c.seq)).mappings().all()


def set_summary(conn: sa.Connection, membership_id: str, summary: str) -> None:
    conn.execute(MS.update().where(MS.c.id == membership_id).values(summary=summary))


def collaboration_ids_missing_summaries(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.select(MS.c.collaboration_id).where(MS.c.summary.is_(None)).distinct()).scalars())
