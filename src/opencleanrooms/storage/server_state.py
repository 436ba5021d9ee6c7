"""Small named values the server keeps for itself, shared by every process (for example the token-signing key)."""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from opencleanrooms.storage.schema import server_state as S

# The advisory lock key of start-up writes that every server process makes (demo keys, the token key, backfills):
# read-then-insert, so processes starting together must take turns.
LOCK = ("server-state",)


def get_or_create_secret(conn: sa.Connection, name: str) -> str:
    value = conn.execute(sa.select(S.c.value).where(S.c.name == name)).scalar()
    if value is None:
        value = secrets.token_hex(32)
        conn.execute(S.insert().values(name=name, value=value))
    return value


def put(conn: sa.Connection, name: str, value: str) -> None:
    conn.execute(S.delete().where(S.c.name == name))
    conn.execute(S.insert().values(name=name, value=value))


def exists(conn: sa.Connection, name: str) -> bool:
    return conn.execute(sa.select(S.c.name).where(S.c.name == name)).first() is not None


def remove(conn: sa.Connection, name: str) -> None:
    conn.execute(S.delete().where(S.c.name == name))
