"""Tags, keyed by resource ARN."""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.schema import tags as T


def get(conn: sa.Connection, arn: str) -> dict[str, str]:
    rows = conn.execute(sa.select(T.c["key"], T.c["value"]).where(T.c.resource_arn == arn))
    return {key: value for key, value in rows}


def put(conn: sa.Connection, arn: str, tags: dict[str, str]) -> None:
    if not tags:
        return
    conn.execute(T.delete().where(T.c.resource_arn == arn, T.c["key"].in_(list(tags))))
    conn.execute(T.insert(), [{"resource_arn": arn, "key": k, "value": v} for k, v in tags.items()])


def remove(conn: sa.Connection, arn: str, keys: list[str] | None = None) -> None:
    """Remove the given keys, or every tag of the resource when keys is None."""
    query = T.delete().where(T.c.resource_arn == arn)
    if keys is not None:
        query = query.where(T.c["key"].in_(keys))
    conn.execute(query)
