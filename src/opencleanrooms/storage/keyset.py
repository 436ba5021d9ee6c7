"""Keyset pages: `WHERE seq < :after ORDER BY seq DESC LIMIT n+1` on an index, so a page costs the same at any depth."""

from __future__ import annotations

import sqlalchemy as sa


def fetch_page(conn: sa.Connection, query: sa.Select, seq: sa.ColumnElement, after: int | None, limit: int,
               *, ascending: bool = False):
    """Return (rows, last_seq_or_None); last_seq is set only when more rows follow."""
    if after is not None:
        query = query.where(seq > after if ascending else seq < after)
    query = query.order_by(seq.asc() if ascending else seq.desc()).limit(limit + 1)
    rows = conn.execute(query).mappings().all()
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, rows[-1]["seq"]
    return rows, None
