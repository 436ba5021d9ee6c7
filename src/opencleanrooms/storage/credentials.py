"""Access keys: key id -> secret and the 12-digit account the key belongs to."""

from __future__ import annotations

import time

import sqlalchemy as sa

from opencleanrooms.storage.schema import credentials as K


def lookup(conn: sa.Connection, access_key_id: str):
    return conn.execute(sa.select(K).where(K.c.access_key_id == access_key_id)).mappings().first()


def put(conn: sa.Connection, access_key_id: str, secret: str, account_id: str, *, is_demo: bool = False) -> None:
    conn.execute(K.delete().where(K.c.access_key_id == access_key_id))
    conn.execute(K.insert().values(access_key_id=access_key_id, secret_access_key=secret, account_id=account_id,
                                   is_demo=is_demo, create_time=time.time()))


def delete(conn: sa.Connection, access_key_id: str) -> bool:
    return conn.execute(K.delete().where(K.c.access_key_id == access_key_id)).rowcount > 0


def all_keys(conn: sa.Connection):
    return conn.execute(sa.select(K).order_by(K.c.account_id, K.c.access_key_id)).mappings().all()


def count(conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(K)).scalar_one()
